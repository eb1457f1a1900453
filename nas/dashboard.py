"""A study's dashboard: plotly figures, one self-contained HTML file, and optuna-dashboard.

* :func:`build_figures`: accuracy against every cost (objective or measured) with the 2-D Pareto
  front, the placement map of every front architecture, the hypervolume over trials and over
  epochs, the learning curves and the parameter importances per objective. Where trials
  recorded their measurement noise (``val_acc_se``) the accuracy figures carry 95% error bars
  and a band of the trials statistically tied with the front; baselines are labelled stars.
  Where the study has a confirm study (``nas confirm``), a figure of the confirmed front: means
  over seeds with their intervals next to the search's single runs.
* :func:`front_table_html` and :func:`confirm_table_html`: the front and the confirmation as
  HTML tables that sort on a header click.
* :func:`baseline_sentence`: the front's gain over the baselines, against its noise.
* :func:`write_dashboard`: all of it in one HTML file with plotly.js inlined once, so it opens
  offline and can be mailed or archived next to the study.
* :func:`serve_optuna_dashboard`: Optuna's own live dashboard on the same storage.

Everything is computed from the study through :mod:`nas.report`, :mod:`nas.pareto` and
:mod:`nas.confirm`; nothing is cached between calls.
"""

from __future__ import annotations

import html
import math
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
import pandas as pd
import plotly.graph_objects as go
from optuna.importance import FanovaImportanceEvaluator, get_param_importances
from optuna.trial import TrialState
from plotly.colors import qualitative
from plotly.subplots import make_subplots

import attn_blocks
from search_spaces.backbones import backbone_sites
from search_spaces.spec import NO_ATTENTION, BlockChoice

from . import trial_schema as schema
from .config import COSTS
from .confirm import ALPHA, confirm_frame, find_confirm_study, verdict
from .pareto import TIE_STANDARD_ERRORS, is_candidate, non_dominated_sort, tied_with_front
from .report import (
    FINISHED,
    Reference,
    baseline_gains,
    front_frame,
    hypervolume_history,
    objective_directions,
    objective_names,
    reference_point,
    summary,
    trials_frame,
)

if TYPE_CHECKING:
    from optuna.artifacts._protocol import ArtifactStore

#: Axis titles of the costs.
COST_LABELS = {
    "flops": "FLOPs",
    "params": "parameters",
    "latency_ms_b1": "latency, batch 1 (ms)",
    "latency_ms_bN": "latency, batch N (ms)",
    "activation_bytes": "activation memory (bytes)",
}
#: fANOVA on fewer completed trials than this is noise; the figure says so instead.
MIN_IMPORTANCE_TRIALS = 3
NO_ATTENTION_COLOUR = "#9e9e9e"
FRONT_LINE = "Pareto front"
PRUNED_MARKS = "pruned here"
#: Legend entry of the baselines' stars in the accuracy-against-cost figures.
BASELINES = "baselines"
#: Name of the shaded band of trials statistically tied with the front.
BAND = f"within {TIE_STANDARD_ERRORS:g} s.e. of the front"
#: Outline of the trials tied with the front.
TIED_OUTLINE = "#d62728"
#: Standard errors either side of a single measurement for its 95% interval (normal approx.).
Z95 = 1.96
#: Trace names of the confirmed-front figure.
CONFIRMED_MEANS = "mean over seeds, 95% CI"
CONFIRMED_FRONT = "confirmed front"
SEARCH_RUNS = "search (one run)"
SIGNIFICANT = f"gain over none significant (Holm p < {ALPHA:g})"
TEMPLATE = "plotly_white"


# -- attention types and their colours ----------------------------------------------------------


def attention_type(arch: Mapping[str, Any] | None) -> str:
    """The block at most of an architecture's sites, ``"none"`` excluded (ties: the first in
    site order); ``"none"`` for an architecture without attention."""
    blocks = [s.get("block", "none") for s in (arch or {}).get("sites", {}).values()]
    counts = Counter(b for b in blocks if b != "none")
    return counts.most_common(1)[0][0] if counts else "none"


def attention_colours(types: set[str]) -> dict[str, str]:
    """A colour per attention type of a study: grey for ``"none"``, distinct hues for the blocks
    in registry order, so every figure of a dashboard colours a block alike."""
    palette = [c for c in qualitative.D3 if c != "#7F7F7F"] + qualitative.Dark2
    blocks = [b for b in _type_order(types) if b != "none"]
    colours = {b: palette[i % len(palette)] for i, b in enumerate(blocks)}
    return {"none": NO_ATTENTION_COLOUR, **colours}


def _type_order(types: set[str]) -> list[str]:
    known = attn_blocks.available()
    return sorted(types, key=lambda b: (known.index(b) if b in known else len(known), b))


def _label(choice: Mapping[str, Any]) -> str:
    """``se(r=8)@post`` for a stored block choice (a block from a plugin that is not registered
    in this process is shown by name and position)."""
    try:
        return BlockChoice.from_dict(choice).label()
    except ValueError:
        return f"{choice.get('block', 'none')}@{choice.get('position', 'standard')}"


def _hover_summary(text: str) -> str:
    return text.replace(" | ", "<br>")


# -- figures ------------------------------------------------------------------------------------


def build_figures(study: optuna.Study, reference: Reference | None = None) -> dict[str, go.Figure]:
    """The dashboard's figures, in display order: ``front_<cost>`` per cost, ``confirm`` where
    the study has a confirm study (:func:`confirmation`), ``placement``, ``hypervolume``,
    ``learning_curves`` and ``importances``."""
    reference = reference or reference_point(study)
    frame = trials_frame(study)
    trials = study.get_trials(deepcopy=False)
    attention = {t.number: attention_type(schema.ARCH.get(t)) for t in trials}
    blocks = {
        c.get("block", "none")
        for t in trials
        for c in schema.ARCH.get(t, {}).get("sites", {}).values()
    }
    colours = attention_colours(blocks | set(attention.values()))
    frame["attention"] = frame["trial"].map(attention)
    tied = {t.number for t in tied_with_front(study)}
    figures = {
        f"front_{cost}": front_figure(study, frame, cost, colours, tied)
        for cost in front_costs(study, frame)
    }
    confirmed = confirmation(study)
    if confirmed is not None:
        figures["confirm"] = confirm_figure(*confirmed)
    figures["placement"] = placement_figure(study, colours)
    figures["hypervolume"] = hypervolume_figure(study, reference)
    figures["learning_curves"] = learning_curves_figure(study, attention, colours)
    figures["importances"] = importances_figure(study)
    return figures


def front_costs(study: optuna.Study, frame: pd.DataFrame) -> list[str]:
    """The cost objectives, then every other cost some trial measured (in ``COSTS`` order)."""
    names = objective_names(study)
    objectives = [n for n in names[1:] if n in COSTS]
    measured = [
        c
        for c in COSTS
        if c not in objectives
        and f"cost_{c}" in frame.columns
        and pd.to_numeric(frame[f"cost_{c}"], errors="coerce").notna().any()
    ]
    return objectives + measured


def _cost_column(study: optuna.Study, cost: str) -> str:
    return cost if cost in objective_names(study) else f"cost_{cost}"


def front_figure(
    study: optuna.Study,
    frame: pd.DataFrame,
    cost: str,
    colours: Mapping[str, str],
    tied: set[int] | None = None,
) -> go.Figure:
    """Accuracy (the first objective) against ``cost`` for every finished trial, coloured by
    attention type, pruned trials as open markers, and the 2-D front of the complete, feasible
    trials as a step line. ``frame`` is :func:`trials_frame` plus an ``attention`` column;
    ``colours`` maps attention types to colours (:func:`attention_colours`); ``tied`` holds the
    trials statistically tied with the front (default :func:`nas.pareto.tied_with_front`).

    Where trials recorded ``val_acc_se``: 95% error bars (:data:`Z95` standard errors, normal
    approximation) on every marker, and a band from the front down to :data:`TIE_STANDARD_ERRORS`
    standard errors of its members, the tied trials outlined. Baselines are stars labelled with
    their name (their own legend entry), the baseline ``none`` a dotted horizontal line."""
    accuracy, acc_direction = objective_names(study)[0], objective_directions(study)[0]
    x_column = _cost_column(study, cost)
    finished = frame[frame["state"].isin([s.name for s in FINISHED])].copy()
    finished["x"] = pd.to_numeric(finished[x_column], errors="coerce")
    finished["y"] = pd.to_numeric(finished[accuracy], errors="coerce")
    finished = finished[np.isfinite(finished["x"]) & np.isfinite(finished["y"])]
    column = finished["val_acc_se"] if "val_acc_se" in finished else pd.Series(dtype=float)
    finished["se"] = pd.to_numeric(column, errors="coerce").reindex(finished.index)
    column = finished["baseline"] if "baseline" in finished else pd.Series(dtype=str)
    finished["baseline"] = column.reindex(finished.index).fillna("").astype(str)
    if tied is None:
        tied = {t.number for t in tied_with_front(study)}
    finished["tied"] = finished["trial"].isin(tied)
    x_format = ".3f" if cost.startswith("latency") else ",.0f"
    fig = go.Figure()
    searched = finished[finished["baseline"] == ""]
    for block in _type_order(set(searched["attention"])):
        for state, symbol in (("COMPLETE", "circle"), ("PRUNED", "circle-open")):
            rows = searched[(searched["attention"] == block) & (searched["state"] == state)]
            if rows.empty:
                continue
            width = 2 if state == "PRUNED" else 0.5
            fig.add_trace(
                _points(
                    rows,
                    accuracy,
                    cost,
                    x_format,
                    colour=colours[block],
                    name=block if state == "COMPLETE" else f"{block} (pruned)",
                    legendgroup=block,
                    marker={
                        "color": colours[block],
                        "symbol": symbol,
                        "size": 10,
                        "line": _outline(rows, width),
                    },
                )
            )
    baselines = finished[finished["baseline"] != ""]
    if not baselines.empty:
        pruned = (baselines["state"] == "PRUNED").to_numpy()
        fig.add_trace(
            _points(
                baselines,
                accuracy,
                cost,
                x_format,
                colour="#555",
                name=BASELINES,
                legendgroup=BASELINES,
                mode="markers+text",
                text=list(baselines["baseline"]),
                textposition="top center",
                marker={
                    "color": [colours[a] for a in baselines["attention"]],
                    "symbol": ["star-open" if p else "star" for p in pruned],
                    "size": 17,
                    "line": _outline(baselines, [2.5 if p else 1.0 for p in pruned]),
                },
            )
        )
    front = front_2d(study, frame, accuracy, x_column, acc_direction)
    band = None
    if acc_direction == "maximize" and len(front):
        x_end = max(float(finished["x"].max()), float(front["x"].max()))
        band = _band(front, finished, x_end, sorted(finished.loc[finished["tied"], "trial"]))
    if band is not None:
        fig.add_trace(band)
    fig.add_trace(
        go.Scatter(
            x=front["x"],
            y=front["y"],
            mode="lines",
            line={"shape": "hv", "color": "#222", "width": 1.5},
            name=FRONT_LINE,
            customdata=front["trial"],
            hovertemplate=f"front: trial %{{customdata}}<br>{accuracy}=%{{y:.4f}}<extra></extra>",
        )
    )
    none = finished[(finished["baseline"] == "none") & (finished["state"] == "COMPLETE")]
    if not none.empty:
        fig.add_hline(
            y=float(none["y"].iloc[0]),
            line={"dash": "dot", "color": "#555", "width": 1.5},
            annotation_text="baseline none",
            annotation_position="bottom right",
        )
    kind = "objective" if x_column == cost else "measured cost, not an objective"
    notes = [f"{kind}; open markers: pruned trials (partial training, never on the front)"]
    if finished["se"].notna().any():
        notes.append(
            f"error bars: 95% of each single run, ±{Z95:g} s.e. (binomial, normal approximation)"
        )
    if not baselines.empty:
        notes.append("stars: the hand-made baselines" + ("; dotted: none" if len(none) else ""))
    if band is not None:
        notes.append(
            f"shaded: within {TIE_STANDARD_ERRORS:g} s.e. of the front; trials in it are "
            "statistically tied with it (red outline)"
        )
    fig.update_layout(
        title={
            "text": f"{accuracy} against {COST_LABELS.get(cost, cost)}"
            + "".join(f"<br><sup>{n}</sup>" for n in notes),
            "y": 1,
            "yanchor": "top",
            "pad": {"t": 14},
        },
        xaxis_title=COST_LABELS.get(cost, cost),
        yaxis_title=accuracy,
        legend_title="attention",
        template=TEMPLATE,
        height=420 + 22 * len(notes),
        margin={"t": 50 + 22 * len(notes)},
    )
    return fig


def _outline(rows: pd.DataFrame, width: float | list[float]) -> dict[str, Any]:
    """Marker outlines: dark, ``width`` wide; :data:`TIED_OUTLINE` and thicker for the trials
    tied with the front (per point only where there are some)."""
    if not rows["tied"].any():
        return {"width": width, "color": "#333"}
    widths = width if isinstance(width, list) else [width] * len(rows)
    tied = rows["tied"].to_numpy()
    return {
        "width": [3.0 if t else w for t, w in zip(tied, widths, strict=True)],
        "color": [TIED_OUTLINE if t else "#333" for t in tied],
    }


def _points(
    rows: pd.DataFrame, accuracy: str, cost: str, x_format: str, colour: str, **trace: Any
) -> go.Scatter:
    """A scatter of trials (columns ``trial``, ``summary``, ``state``, ``baseline``, ``tied``,
    ``x``, ``y``, ``se``), with symmetric 95% error bars where a standard error was recorded.
    ``customdata``: trial, summary, state, the interval's half-width as text, what the trial is
    (a baseline, tied with the front)."""
    half = Z95 * rows["se"].to_numpy(dtype=float)
    finite = np.isfinite(half)
    notes = [
        "".join(
            [
                f"<br>baseline {b}" if b else "",
                "<br>statistically tied with the front" if t else "",
            ]
        )
        for b, t in zip(rows["baseline"], rows["tied"], strict=True)
    ]
    customdata = np.column_stack(
        [
            rows["trial"],
            rows["summary"].map(_hover_summary),
            rows["state"],
            [f" ± {h:.4f} (95%)" if f else "" for h, f in zip(half, finite, strict=True)],
            notes,
        ]
    )
    error_y = None
    if finite.any():
        error_y = {
            "type": "data",
            "symmetric": True,
            "array": [float(h) if f else None for h, f in zip(half, finite, strict=True)],
            "color": colour,
            "thickness": 1.2,
            "width": 4,
        }
    return go.Scatter(
        x=rows["x"],
        y=rows["y"],
        mode=trace.pop("mode", "markers"),
        error_y=error_y,
        customdata=customdata,
        hovertemplate=(
            "trial %{customdata[0]} (%{customdata[2]})%{customdata[4]}<br>%{customdata[1]}<br>"
            f"{accuracy}=%{{y:.4f}}%{{customdata[3]}}<br>{cost}=%{{x:{x_format}}}<extra></extra>"
        ),
        **trace,
    )


def _band(
    front: pd.DataFrame, finished: pd.DataFrame, x_end: float, tied: list[int]
) -> go.Scatter | None:
    """The region from the front's step line down to :data:`TIE_STANDARD_ERRORS` standard
    errors of the front member in force at each cost (up to ``x_end``), one closed polygon;
    None where no front member recorded a standard error. Its ``meta`` holds the ``tied``
    trials, and its hover names them."""
    se = front["trial"].map(finished.set_index("trial")["se"]).to_numpy(dtype=float)
    if not np.isfinite(se).any():
        return None
    xs, ys = front["x"].to_numpy(dtype=float), front["y"].to_numpy(dtype=float)
    lows = ys - TIE_STANDARD_ERRORS * np.nan_to_num(se)
    step_x, upper, lower = [], [], []
    for i in range(len(xs)):
        end = xs[i + 1] if i + 1 < len(xs) else max(x_end, xs[i])
        step_x += [xs[i], end]
        upper += [ys[i], ys[i]]
        lower += [lows[i], lows[i]]
    named = ", ".join(map(str, tied)) if tied else "none"
    return go.Scatter(
        x=step_x + step_x[::-1],
        y=upper + lower[::-1],
        mode="lines",
        fill="toself",
        fillcolor="rgba(120, 120, 120, 0.18)",
        line={"width": 0},
        name=BAND,
        meta=list(tied),
        hoveron="fills",
        hoverinfo="text",
        text=f"within {TIE_STANDARD_ERRORS:g} s.e. of the front<br>statistically tied with the "
        f"front: trials {named}",
    )


def front_2d(
    study: optuna.Study, frame: pd.DataFrame, accuracy: str, x_column: str, direction: str
) -> pd.DataFrame:
    """The complete, feasible trials that no other one dominates in (``accuracy``, the cost in
    ``x_column``), sorted by cost: columns ``trial``, ``x``, ``y``."""
    candidates = {t.number for t in study.get_trials(deepcopy=False) if is_candidate(t)}
    rows = frame[frame["trial"].isin(candidates)]
    points = pd.DataFrame(
        {
            "trial": rows["trial"],
            "x": pd.to_numeric(rows[x_column], errors="coerce"),
            "y": pd.to_numeric(rows[accuracy], errors="coerce"),
        }
    ).dropna()
    if points.empty:
        return points
    first = non_dominated_sort(points[["y", "x"]].to_numpy(), [direction, "minimize"])[0]
    return points.iloc[first].sort_values(["x", "trial"]).reset_index(drop=True)


# -- the confirmed front ------------------------------------------------------------------------


def confirmation(study: optuna.Study) -> tuple[optuna.Study, pd.DataFrame] | None:
    """The study's confirm study (``nas confirm``, :func:`nas.confirm.find_confirm_study`) and
    its :func:`~nas.confirm.confirm_frame`, or None where it has none."""
    confirm = find_confirm_study(study)
    if confirm is None:
        return None
    return confirm, confirm_frame(confirm, study)


def confirm_figure(confirm: optuna.Study, frame: pd.DataFrame) -> go.Figure:
    """Mean validation accuracy over the confirm study's seeds with its 95% Student-t interval
    against the first cost (the architectures by name in a single-objective study), the
    confirmed front as a step line, rings on the architectures whose gain over ``none`` is
    significant, the baseline ``none`` dotted, and the search's single run of each architecture
    as a faint diamond: the gap to the mean is the winner's curse of picking by one run."""
    names = objective_names(confirm)
    accuracy = names[0]
    cost = names[1] if len(names) > 1 else None
    seeds = len((schema.confirm_plan(confirm) or {}).get("seeds", []))
    fig = go.Figure()
    rows = frame.copy()
    if not rows.empty:
        rows["y"] = pd.to_numeric(rows["val_acc_mean"], errors="coerce")
        rows["x"] = pd.to_numeric(rows[cost], errors="coerce") if cost else rows["architecture"]
        rows = rows[rows["y"].notna() & rows["x"].notna()]
    x_label = COST_LABELS.get(cost, cost) if cost else "architecture"
    title = (
        f"Confirmed front: {accuracy} over {seeds} seeds against {x_label}<br><sup>mean and 95% "
        "Student-t interval over seeds; blue: on the confirmed front; rings: gain over none "
        f"significant (Holm p < {ALPHA:g})</sup><br><sup>faint diamonds: the search's single "
        "run of the same architecture (its gap to the mean is the winner's curse)</sup>"
    )
    fig.update_layout(
        title=title,
        xaxis_title=x_label,
        yaxis_title=accuracy,
        template=TEMPLATE,
        height=500,
        margin={"t": 110},
    )
    if rows.empty:
        fig.add_annotation(text="no complete repeats yet", showarrow=False)
        return fig
    mean = rows["y"].to_numpy(dtype=float)
    low = pd.to_numeric(rows["val_acc_low"], errors="coerce").to_numpy(dtype=float)
    high = pd.to_numeric(rows["val_acc_high"], errors="coerce").to_numpy(dtype=float)
    on_front = rows["on_confirmed_front"].astype(bool).to_numpy()
    x_format = ":.3f" if cost and cost.startswith("latency") else (":,.0f" if cost else "")
    customdata = np.column_stack(
        [
            rows["architecture"],
            rows["summary"].map(_hover_summary),
            rows["seeds"],
            [_interval(m, lo, hi) for m, lo, hi in zip(mean, low, high, strict=True)],
            [
                ""
                if not math.isfinite(g)
                else f"<br>gain over none {_interval(g, lo, hi, True)} points, Holm p = {p:.3g}"
                for g, lo, hi, p in zip(
                    rows["gain_vs_none"],
                    rows["gain_vs_none_low"],
                    rows["gain_vs_none_high"],
                    rows["p_holm"],
                    strict=True,
                )
            ],
        ]
    )
    fig.add_trace(
        go.Scatter(
            x=rows["x"],
            y=rows["y"],
            mode="markers",
            name=CONFIRMED_MEANS,
            error_y={
                "type": "data",
                "symmetric": False,
                "array": _nullable(high - mean),
                "arrayminus": _nullable(mean - low),
                "thickness": 1.5,
                "width": 6,
                "color": "#444",
            },
            marker={
                "size": 11,
                "color": ["#1F77B4" if f else NO_ATTENTION_COLOUR for f in on_front],
                "line": {"width": 1, "color": "#222"},
            },
            customdata=customdata,
            hovertemplate="%{customdata[0]} (%{customdata[2]} seeds)<br>%{customdata[1]}<br>"
            f"{accuracy} (%) %{{customdata[3]}}%{{customdata[4]}}<br>"
            f"{cost or 'architecture'}=%{{x{x_format}}}<extra></extra>",
        )
    )
    search = pd.to_numeric(rows["search_val_acc"], errors="coerce")
    if search.notna().any():
        shown = rows[search.notna()]
        fig.add_trace(
            go.Scatter(
                x=shown["x"],
                y=search[search.notna()],
                mode="markers",
                name=SEARCH_RUNS,
                opacity=0.5,
                marker={"symbol": "diamond-open", "size": 10, "color": "#444"},
                customdata=shown["architecture"],
                hovertemplate=f"%{{customdata}}: the search's single run<br>{accuracy}="
                "%{y:.4f}<extra></extra>",
            )
        )
    if cost:
        front = rows[on_front].sort_values(["x", "architecture"])
        fig.add_trace(
            go.Scatter(
                x=front["x"],
                y=front["y"],
                mode="lines",
                line={"shape": "hv", "color": "#1F77B4", "width": 1.5},
                name=CONFIRMED_FRONT,
                customdata=front["architecture"],
                hovertemplate=f"confirmed front: %{{customdata}}<br>{accuracy}=%{{y:.4f}}"
                "<extra></extra>",
            )
        )
    significant = rows[rows["significant"].astype(bool)]
    if not significant.empty:
        fig.add_trace(
            go.Scatter(
                x=significant["x"],
                y=significant["y"],
                mode="markers",
                name=SIGNIFICANT,
                marker={
                    "symbol": "circle-open",
                    "size": 22,
                    "color": "#2CA02C",
                    "line": {"width": 2.5},
                },
                customdata=significant["architecture"],
                hovertemplate="%{customdata}: significant gain over none<extra></extra>",
            )
        )
    none = rows[rows["architecture"] == "baseline none"]
    if not none.empty:
        fig.add_hline(
            y=float(none["y"].iloc[0]),
            line={"dash": "dot", "color": "#555", "width": 1.5},
            annotation_text="baseline none (mean)",
            annotation_position="bottom right",
        )
    return fig


def _nullable(values: np.ndarray) -> list[float | None]:
    return [float(v) if math.isfinite(v) else None for v in values]


def _interval(mean: float, low: float, high: float, signed: bool = False) -> str:
    """``61.20 [55.03, 64.97]``: a fraction's mean and 95% interval in percent (points, with a
    sign, for ``signed`` differences); the mean alone where there is no interval, ``""`` where
    there is no mean."""
    if not _finite(mean):
        return ""
    spec = "+.2f" if signed else ".2f"
    text = f"{100 * mean:{spec}}"
    if _finite(low) and _finite(high):
        text += f" [{100 * low:{spec}}, {100 * high:{spec}}]"
    return text


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float, np.number)) and math.isfinite(value)


def confirm_table_html(confirm: optuna.Study, frame: pd.DataFrame) -> str:
    """The confirm study's verdicts (:func:`~nas.confirm.confirm_frame`) as a sortable table:
    accuracies and the gain over ``none`` as ``mean [low, high]`` in percent (95% intervals over
    seeds), the costs, the search's single-run accuracy, the Holm-adjusted p-value, whether the
    gain is significant and whether the architecture is on the confirmed front. Each cell's
    ``data-value`` is the raw number (the mean for an interval)."""
    costs = objective_names(confirm)[1:]
    headers = [
        "architecture",
        "summary",
        "seeds",
        "val_acc % [95% CI]",
        "test_acc % [95% CI]",
        *costs,
        "search val_acc % (one run)",
        "gain vs none, points [95% CI]",
        "p (Holm)",
        "significant",
        "on confirmed front",
    ]
    rows = []
    for _, r in frame.iterrows():
        compared = _finite(r["gain_vs_none"])
        rows.append(
            [
                (r["architecture"], r["architecture"]),
                (r["summary"], r["summary"]),
                (r["seeds"], _format(r["seeds"])),
                (
                    r["val_acc_mean"],
                    _interval(r["val_acc_mean"], r["val_acc_low"], r["val_acc_high"]),
                ),
                (
                    r["test_acc_mean"],
                    _interval(r["test_acc_mean"], r["test_acc_low"], r["test_acc_high"]),
                ),
                *((r[c], _format(r[c])) for c in costs),
                (r["search_val_acc"], _interval(r["search_val_acc"], math.nan, math.nan)),
                (
                    r["gain_vs_none"],
                    _interval(
                        r["gain_vs_none"], r["gain_vs_none_low"], r["gain_vs_none_high"], True
                    ),
                ),
                (r["p_holm"], f"{r['p_holm']:.3g}" if compared else ""),
                (bool(r["significant"]), ("yes" if r["significant"] else "no") if compared else ""),
                (bool(r["on_confirmed_front"]), "yes" if r["on_confirmed_front"] else "no"),
            ]
        )
    return _sortable_table(headers, rows)


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
    fig.update_yaxes(title_text="normalised hypervolume", rangemode="tozero")
    return fig


def learning_curves_figure(
    study: optuna.Study, attention: Mapping[int, str], colours: Mapping[str, str]
) -> go.Figure:
    """Accuracy per epoch (the intermediate values) of every trial, one trace each, coloured by
    attention type; pruned trials dashed, with an x where the pruner stopped them."""
    accuracy = objective_names(study)[0]
    fig = go.Figure()
    shown: set[str] = set()
    marks_x, marks_y, marks_trial = [], [], []
    for t in study.get_trials(deepcopy=False):
        if not t.intermediate_values:
            continue
        steps = sorted(t.intermediate_values)
        block = attention.get(t.number, "none")
        pruned = t.state == TrialState.PRUNED
        fig.add_trace(
            go.Scatter(
                x=steps,
                y=[t.intermediate_values[s] for s in steps],
                mode="lines",
                name=block,
                legendgroup=block,
                showlegend=block not in shown,
                meta=t.number,
                line={"color": colours[block], "dash": "dash" if pruned else "solid"},
                opacity=0.8,
                hovertemplate=f"trial %{{meta}} ({t.state.name})<br>epoch %{{x}}<br>"
                f"{accuracy}=%{{y:.4f}}<extra></extra>",
            )
        )
        shown.add(block)
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
                marker={"symbol": "x", "size": 10, "color": "#111"},
                customdata=marks_trial,
                hovertemplate="trial %{customdata} pruned after epoch %{x}<extra></extra>",
            )
        )
    fig.update_layout(
        title=f"Learning curves ({accuracy} per epoch)<br><sup>dashed: pruned trials; x: the "
        "epoch the pruner stopped them</sup>",
        xaxis_title="epoch",
        yaxis_title=accuracy,
        legend_title="attention",
        template=TEMPLATE,
        height=460,
    )
    return fig


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


def placement_grid(arch: Mapping[str, Any]) -> pd.DataFrame:
    """The block choice (``{block, params, position}``) at each insertion site of an
    architecture: rows ``stage<i>``, columns ``block <j>``, from the backbone's sites whatever
    the search granularity; ``None`` where the backbone has no site."""
    sites = backbone_sites(arch["backbone"], **dict(arch.get("backbone_args", {})))
    stages, indices = sorted({s.stage for s in sites}), sorted({s.index for s in sites})
    cells: list[list[dict[str, Any] | None]] = [[None] * len(indices) for _ in stages]
    chosen = arch.get("sites", {})
    for s in sites:
        choice = chosen.get(s.name, NO_ATTENTION.to_dict())
        cells[stages.index(s.stage)][indices.index(s.index)] = dict(choice)
    return pd.DataFrame(
        cells, index=[f"stage{i}" for i in stages], columns=[f"block {j}" for j in indices]
    )


def placement_figure(study: optuna.Study, colours: Mapping[str, str]) -> go.Figure:
    """One stage x block grid per front architecture (best first objective first): each cell
    is the block at that insertion site, coloured by block type and labelled with its
    parameters and position."""
    front = front_frame(study)
    names = objective_names(study)
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    grids = {
        n: placement_grid(schema.ARCH.get(trials[n]))
        for n in front["trial"]
        if schema.ARCH.has(trials[n])
    }
    if not grids:
        fig = go.Figure(layout={"title": "Placement of attention on the front", "height": 200})
        fig.add_annotation(text="no complete trials on the front yet", showarrow=False)
        return fig
    cells = [c for g in grids.values() for c in g.to_numpy().ravel() if c is not None]
    blocks = _type_order({c["block"] for c in cells})
    scale = [
        [(k + edge) / len(blocks), colours[block]]
        for k, block in enumerate(blocks)
        for edge in (0, 1)
    ]
    values = front.set_index("trial")
    titles = [
        f"trial {n}<br>" + ", ".join(f"{m}={_format(values.loc[n, m])}" for m in names)
        for n in grids
    ]
    # Side by side as far as the cells stay readable (about four cells across a row of figures).
    stages = max(len(g) for g in grids.values())
    per_row = max(1, min(len(grids), 4 // max(len(g.columns) for g in grids.values())))
    n_rows = math.ceil(len(grids) / per_row)
    fig = make_subplots(
        rows=n_rows,
        cols=per_row,
        subplot_titles=titles,
        horizontal_spacing=0.08,
        vertical_spacing=min(0.15, 0.6 / n_rows),
    )
    for i, (n, grid) in enumerate(grids.items()):
        row, col = divmod(i, per_row)
        fig.add_trace(
            go.Heatmap(
                z=grid.map(lambda c: math.nan if c is None else blocks.index(c["block"])),
                x=list(grid.columns),
                y=list(grid.index),
                text=grid.map(lambda c: "" if c is None else _label(c)).to_numpy(),
                texttemplate="%{text}",
                name=f"trial {n}",
                meta=n,
                colorscale=scale,
                zmin=-0.5,
                zmax=len(blocks) - 0.5,
                showscale=False,
                xgap=3,
                ygap=3,
                hovertemplate="%{y} %{x}: %{text}<extra>trial %{meta}</extra>",
            ),
            row=row + 1,
            col=col + 1,
        )
        fig.update_yaxes(autorange="reversed", row=row + 1, col=col + 1)
    fig.update_layout(
        title="Placement of attention on the front<br><sup>stage x block grid of insertion "
        "sites; label: block(r=reduction, k=kernel)@position</sup>",
        template=TEMPLATE,
        height=130 + n_rows * (90 + 45 * stages),
        margin={"t": 130},
    )
    return fig


def _format(value: Any) -> str:
    """``1,518,264`` for whole numbers, four significant digits otherwise, ``""`` for NaN."""
    if isinstance(value, (int, float, np.number)) and not isinstance(value, (bool, np.bool_)):
        if not math.isfinite(value):
            return ""
        return f"{int(value):,}" if float(value).is_integer() else f"{value:.4g}"
    return str(value)


# -- the sortable table -------------------------------------------------------------------------

_SORTER = """
document.querySelectorAll("table.sortable th").forEach((th, col) => {
  th.addEventListener("click", () => {
    const table = th.closest("table");
    const up = th.getAttribute("aria-sort") !== "ascending";
    table.querySelectorAll("th").forEach((h) => h.removeAttribute("aria-sort"));
    th.setAttribute("aria-sort", up ? "ascending" : "descending");
    const key = (row) => {
      const v = row.cells[col].dataset.value;
      return v !== "" && !isNaN(v) ? Number(v) : v;
    };
    const rows = [...table.tBodies[0].rows].sort((a, b) => {
      const x = key(a), y = key(b);
      const order = typeof x === "number" && typeof y === "number"
        ? x - y : String(x).localeCompare(String(y));
      return up ? order : -order;
    });
    table.tBodies[0].append(...rows);
  });
});
"""


def front_table_html(study: optuna.Study) -> str:
    """The front (:func:`~nas.report.front_frame`) as ``<table class="sortable">``: a click on
    a header sorts by that column, a second click reverses. Each cell's raw value is in its
    ``data-value`` attribute. The sorter script is :data:`_SORTER` (included by
    :func:`write_dashboard`)."""
    front = front_frame(study)
    return _sortable_table(
        [c.removeprefix("cost_") for c in front.columns],
        [[(v, _format(v)) for v in row] for row in front.itertuples(index=False)],
    )


def _sortable_table(headers: list[str], rows: list[list[tuple[Any, str]]]) -> str:
    """``<table class="sortable">`` of ``rows`` of (raw value, text) cells: the raw value in
    each cell's ``data-value`` (what :data:`_SORTER` sorts on), the text shown."""
    head = "".join(f'<th title="click to sort">{html.escape(h)}</th>' for h in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td data-value="{html.escape(str(v))}">{html.escape(text)}</td>' for v, text in row
        )
        + "</tr>"
        for row in rows
    )
    return f'<table class="sortable"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


# -- the HTML file ------------------------------------------------------------------------------

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 1500px; color: #222;
       padding: 0 1rem; }
h1 { margin-bottom: 0.2rem; } .facts { color: #444; line-height: 1.6; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(600px, 1fr)); gap: 1rem; }
.grid > div { min-width: 0; }
table.sortable { border-collapse: collapse; font-size: 0.9rem; margin: 1rem 0; }
table.sortable th, table.sortable td { border: 1px solid #ccc; padding: 0.3rem 0.6rem;
       text-align: right; }
table.sortable td { white-space: nowrap; }
table.sortable td:nth-child(2) { text-align: left; white-space: normal; }
table.sortable th { background: #f3f3f3; cursor: pointer; user-select: none; }
th[aria-sort="ascending"]::after { content: " ▲"; }
th[aria-sort="descending"]::after { content: " ▼"; }
"""


def baseline_sentence(study: optuna.Study, gains: Mapping[str, Any] | None = None) -> str:
    """One sentence for the dashboard's header: the most accurate front member's gain over the
    baseline ``none`` and over the best baseline, each with the standard error of the difference
    (one run each) and whether it exceeds the noise (:data:`TIE_STANDARD_ERRORS` of them); or
    that the study has no baselines. ``gains`` is :func:`nas.report.baseline_gains`."""
    gains = baseline_gains(study) if gains is None else gains
    if not gains:
        if any(schema.BASELINE.has(t) for t in study.get_trials(deepcopy=False)):
            return (
                "baselines: no complete baseline and front member to compare yet (a pruned "
                "baseline's accuracy is that of an unfinished run)"
            )
        return "the study has no baselines: the front is not compared with hand-made architectures"
    accuracy = objective_names(study)[0]
    best = gains["best_front"]
    k = gains.get("tie_standard_errors", TIE_STANDARD_ERRORS)
    parts = []
    if "vs_none" in gains:
        parts.append(_gain_text("baseline none", gains["none"], gains["vs_none"], k))
    top = gains["best_baseline"]
    if "vs_none" in gains and top["name"] == "none":
        parts.append("none is also the best baseline")
    else:
        parts.append(
            _gain_text(f"the best baseline, {top['name']}", top, gains["vs_best_baseline"], k)
        )
    return (
        f"best front {accuracy} {best['val_acc']:.4f} (trial {best['trial']}): "
        + "; ".join(parts)
        + " (one run each)"
    )


def _gain_text(label: str, other: Mapping[str, Any], gain: Mapping[str, Any], k: float) -> str:
    text = (
        f"{100 * gain['gain']:+.2f} points over {label} ({other['val_acc']:.4f}, trial "
        f"{other['trial']})"
    )
    if gain.get("se") is None:
        return f"{text}, no standard error recorded"
    verdict_ = "exceeds the noise" if gain["exceeds_noise"] else "does not exceed the noise"
    return (
        f"{text}, s.e. {100 * gain['se']:.2f} points: {verdict_} ({k:g} s.e. = "
        f"{100 * k * gain['se']:.2f} points)"
    )


def write_dashboard(
    study: optuna.Study, path: str | Path, reference: Reference | None = None
) -> Path:
    """Write the dashboard as one self-contained HTML file (plotly.js inlined once, no network
    access when opened): study name, objectives and directions, trial counts, reference point,
    final hypervolume, the gains over the baselines and the trials tied with the front, the
    figures of :func:`build_figures`, the sortable front table (after the front figures) and,
    where the study has a confirm study, the confirmed front (its table, figure and verdict)."""
    reference = reference or reference_point(study)
    facts = summary(study, reference)
    figures = build_figures(study, reference)
    confirmed = confirmation(study) if "confirm" in figures else None
    config = {"displaylogo": False, "responsive": True}
    divs = {
        key: fig.to_html(full_html=False, include_plotlyjs=i == 0, div_id=key, config=config)
        for i, (key, fig) in enumerate(figures.items())
    }
    fronts = [d for key, d in divs.items() if key.startswith("front_")]
    others = [d for key, d in divs.items() if not key.startswith("front_") and key != "confirm"]
    objectives = ", ".join(f"{n} ({d})" for n, d in facts["objectives"].items())
    counts = ", ".join(f"{v} {k.lower()}" for k, v in sorted(facts["trials"].items()))
    tied = facts.get("tied_with_front") or []
    tied_line = (
        f"<br>trials statistically tied with the front (within {TIE_STANDARD_ERRORS:g} s.e. of "
        f"the difference from a front member of no greater cost): {', '.join(map(str, tied))}"
        if tied
        else ""
    )
    confirm_section = ""
    if confirmed is not None:
        confirm, frame = confirmed
        plan = schema.confirm_plan(confirm) or {}
        confirm_section = f"""<h2>Confirmed front</h2>
<div class="facts">
study {html.escape(confirm.study_name)}: {len(frame)} architectures retrained with
{len(plan.get("seeds", []))} fresh seeds each (95% Student-t intervals over seeds; gains paired by
seed, Holm-adjusted)<br>
<b>{html.escape(verdict(frame))}</b>
</div>
{confirm_table_html(confirm, frame)}
{divs["confirm"]}
"""
    name = html.escape(study.study_name)
    text = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{name} - attention-nas dashboard</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>Study {name}</h1>
<div class="facts">
objectives: {html.escape(objectives)}<br>
trials: {sum(facts["trials"].values())} ({html.escape(counts)}); {facts["epochs_spent"]}
training epochs spent; {facts["front_size"]} architectures on the front<br>
hypervolume {facts["hypervolume"]:.6g} (normalised {facts["hypervolume_norm"]:.4f}) against the
reference point {html.escape(reference.describe())}<br>
{html.escape(baseline_sentence(study, facts["baselines"]))}{tied_line}
</div>
<div class="grid">{"".join(fronts)}</div>
<h2>Pareto front</h2>
{front_table_html(study)}
{confirm_section}{"".join(others)}
<script>{_SORTER}</script>
</body>
</html>
"""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return out


# -- optuna-dashboard ---------------------------------------------------------------------------


def serve_optuna_dashboard(
    storage_url: str,
    host: str = "127.0.0.1",
    port: int = 8080,
    artifact_store: ArtifactStore | None = None,
) -> None:
    """Serve optuna-dashboard on a study storage (a journal file or a database URL) until
    interrupted; our metric names and trial user attrs (summary, arch, cost) show there, and,
    given the study's ``artifact_store``, the trials' weights can be downloaded from it."""
    from .storage import open_storage

    try:
        from optuna_dashboard import run_server
    except ImportError:
        raise RuntimeError(
            "optuna-dashboard is not installed: pip install optuna-dashboard"
        ) from None
    if "://" not in storage_url and not Path(storage_url).exists():
        raise FileNotFoundError(f"no study storage at {storage_url}")
    run_server(open_storage(storage_url), host=host, port=port, artifact_store=artifact_store)
