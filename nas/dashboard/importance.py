"""Parameter importances per objective (fANOVA)."""

from __future__ import annotations

import optuna
import plotly.graph_objects as go
from optuna.importance import FanovaImportanceEvaluator, get_param_importances
from optuna.trial import TrialState

from ..report import (
    objective_names,
)
from ._common import MIN_IMPORTANCE_TRIALS, TEMPLATE


def param_importances(
    study: optuna.Study, seed: int = 0
) -> tuple[dict[str, dict[str, float]], list[str]]:
    """fANOVA importance of every parameter for each objective (``{objective: {param:
    importance}}``), seeded so the numbers repeat, and notes for objectives that have none."""
    names = objective_names(study)
    completed = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    if completed < MIN_IMPORTANCE_TRIALS:
        return {}, [
            f"parameter importances need {MIN_IMPORTANCE_TRIALS} completed trials; "
            f"the study has {completed}"
        ]
    importances, notes = {}, []
    for i, name in enumerate(names):
        try:
            found = get_param_importances(
                study,
                target=lambda t, i=i: t.values[i],
                evaluator=FanovaImportanceEvaluator(seed=seed),
            )
        except RuntimeError as exc:  # fANOVA: zero variance, e.g. a constant objective
            notes.append(f"{name}: no importances ({exc})")
            continue
        if found:
            importances[name] = {k: float(v) for k, v in found.items()}
        else:
            notes.append(f"{name}: no parameter is shared by all completed trials")
    return importances, notes


def importances_figure(study: optuna.Study) -> go.Figure:
    """Horizontal bars: each parameter's fANOVA importance for every objective, in order of
    importance for the first; a note in the figure where there is too little data."""
    importances, notes = param_importances(study)
    fig = go.Figure()
    if importances:
        first = next(iter(importances.values()))
        params = sorted({p for imp in importances.values() for p in imp}, key=first.get)
        for name, imp in importances.items():
            fig.add_trace(
                go.Bar(
                    x=[imp.get(p, 0.0) for p in params],
                    y=params,
                    orientation="h",
                    name=name,
                    hovertemplate="%{y}: %{x:.3f}<extra>" + name + "</extra>",
                )
            )
    if notes:
        fig.add_annotation(
            text="<br>".join(notes),
            xref="paper",
            yref="paper",
            x=0.5,
            y=0.5 if not importances else 1.0,
            yanchor="middle" if not importances else "bottom",
            showarrow=False,
        )
    n_params = len(fig.data[0].y) if importances else 0
    fig.update_layout(
        title="Parameter importances (fANOVA, complete trials)<br><sup>the share of each "
        "objective's variance a parameter explains</sup>",
        xaxis_title="importance",
        barmode="group",
        legend_title="objective",
        template=TEMPLATE,
        height=max(360, 140 + 14 * n_params * max(1, len(importances))),
    )
    return fig
