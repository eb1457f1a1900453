"""Progress over a study: the hypervolume over trials and over epochs, and the learning curves."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import optuna
import plotly.graph_objects as go
from optuna.trial import TrialState
from plotly.subplots import make_subplots

from .. import trial_schema as schema
from ..pareto import front_trials
from ..report import (
    Reference,
    hypervolume_history,
    objective_names,
)
from ._common import PRUNED_MARKS, TEMPLATE


def hypervolume_figure(study: optuna.Study, reference: Reference) -> go.Figure:
    """The front's normalised hypervolume after each finished trial, against trials finished
    and against training epochs spent, with the reference point in the title."""
    history = hypervolume_history(study, reference)
    fig = make_subplots(
        rows=1, cols=2, subplot_titles=("over trials finished", "over training epochs spent")
    )
    for col, x in ((1, "finished"), (2, "epochs_spent")):
        fig.add_trace(
            go.Scatter(
                x=history[x],
                y=history["hypervolume_norm"],
                mode="lines+markers",
                line={"shape": "hv", "color": "#1F77B4"},
                name=x,
                showlegend=False,
                customdata=np.column_stack([history["trial"], history["hypervolume"]])
                if len(history)
                else None,
                hovertemplate="after trial %{customdata[0]}<br>normalised %{y:.4f}<br>"
                "hypervolume %{customdata[1]:.6g}<extra></extra>",
            ),
            row=1,
            col=col,
        )
    ideal = ", ".join(f"{n}={v:.6g}" for n, v in zip(reference.names, reference.ideal, strict=True))
    fig.update_layout(
        title=f"Hypervolume of the front (normalised)<br><sup>reference point "
        f"{reference.describe()}; 1.0 = the box up to the ideal point {ideal}</sup>",
        template=TEMPLATE,
        height=400,
        margin={"t": 110},
    )
    fig.update_xaxes(title_text="trials finished", row=1, col=1)
    fig.update_xaxes(title_text="training epochs spent", row=1, col=2)
    fig.update_yaxes(title_text="normalised hypervolume")
    return fig


#: Colour and legend entry of the learning curves of trials off the front.
OFF_FRONT_COLOUR = "#c4c4c4"
OFF_FRONT = "not on the front"


def learning_curves_figure(
    study: optuna.Study, attention: Mapping[int, str], colours: Mapping[str, str]
) -> go.Figure:
    """Accuracy per epoch (the intermediate values) of every trial, one trace each: the front's
    members (:func:`nas.pareto.front_trials`) drawn on top in their attention type's colour and
    named in the legend, every other trial thin and grey; pruned trials dashed, with an x where
    the pruner stopped them."""
    accuracy = objective_names(study)[0]
    on_front = {t.number for t in front_trials(study)}
    trials = [t for t in study.get_trials(deepcopy=False) if t.intermediate_values]
    trials.sort(key=lambda t: (t.number in on_front, t.number))  # the front last, so on top
    fig = go.Figure()
    marks_x, marks_y, marks_trial = [], [], []
    first_off_front = True
    for t in trials:
        steps = sorted(t.intermediate_values)
        block = attention.get(t.number, "none")
        pruned = t.state == TrialState.PRUNED
        member = t.number in on_front
        fig.add_trace(
            go.Scatter(
                x=steps,
                y=[t.intermediate_values[s] for s in steps],
                mode="lines",
                name=f"trial {t.number} ({block})" if member else OFF_FRONT,
                legendgroup=None if member else OFF_FRONT,
                showlegend=member or first_off_front,
                meta=t.number,
                line={
                    "color": colours[block] if member else OFF_FRONT_COLOUR,
                    "dash": "dash" if pruned else "solid",
                    "width": 2.5 if member else 1,
                },
                opacity=1.0 if member else 0.7,
                hovertemplate=f"trial %{{meta}} ({t.state.name})<br>epoch %{{x}}<br>"
                f"{accuracy}=%{{y:.4f}}<extra></extra>",
            )
        )
        first_off_front = first_off_front and member
        if pruned:
            epoch = schema.PRUNED_AT_EPOCH.get(t, steps[-1])
            marks_x.append(epoch)
            marks_y.append(t.intermediate_values[epoch])
            marks_trial.append(t.number)
    if marks_x:
        fig.add_trace(
            go.Scatter(
                x=marks_x,
                y=marks_y,
                mode="markers",
                name=PRUNED_MARKS,
                marker={"symbol": "x", "size": 8, "color": "#777"},
                customdata=marks_trial,
                hovertemplate="trial %{customdata} pruned after epoch %{x}<extra></extra>",
            )
        )
    fig.update_layout(
        title=f"Learning curves ({accuracy} per epoch)<br><sup>coloured: the front's members; "
        "grey: the other trials; dashed: pruned, x: the epoch the pruner stopped them</sup>",
        xaxis_title="epoch",
        yaxis_title=accuracy,
        legend_title="front",
        template=TEMPLATE,
        height=460,
    )
    return fig
