"""Accuracy against each cost: every trial, the 2-D Pareto front, error bars and the band of trials
tied with it, baselines as stars."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import optuna
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..config import COSTS
from ..pareto import TIE_STANDARD_ERRORS, is_candidate, non_dominated_sort, tied_with_front
from ..report import (
    BOUNDED_METRICS,
    FINISHED,
    objective_directions,
    objective_names,
)
from ._common import (
    BAND,
    BASELINES,
    COST_LABELS,
    FRONT_LINE,
    TEMPLATE,
    TIED_OUTLINE,
    TIED_RINGS,
    Z95,
    _hover_summary,
    _type_order,
    step_line,
)


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


#: Figure height (px) and the share of its plot area the complete trials get over the pruned strip.
FIGURE_HEIGHT = 560
MAIN_SHARE = 0.74
#: Gap between the main plot and the pruned strip, as a share of the plot area.
STRIP_GAP = 0.1
#: Height (px) a baseline label needs in the label column (its box is 17 px), and the width of
#: a character.
LABEL_LINE_PX = 19
CHAR_PX = 7.5


def front_figure(
    study: optuna.Study,
    frame: pd.DataFrame,
    cost: str,
    colours: Mapping[str, str],
    tied: set[int] | None = None,
) -> go.Figure:
    """Accuracy (the first objective) against ``cost``: the complete trials coloured by attention
    type with the 2-D front of the complete, feasible trials as a step line, and the pruned
    trials (open markers) in a strip of their own below, so their partial accuracies never set
    the main axis, which spans the complete trials and the baselines. ``frame`` is
    :func:`trials_frame` plus an ``attention`` column; ``colours`` maps attention types to
    colours (:func:`attention_colours`); ``tied`` holds the trials statistically tied with the
    front (default :func:`nas.pareto.tied_with_front`).

    Where trials recorded ``val_acc_se``: 95% error bars (:data:`Z95` standard errors, normal
    approximation) on every marker, and a band from the front down to :data:`TIE_STANDARD_ERRORS`
    standard errors of its members, the tied trials ringed in red. Baselines are stars, named in a
    column right of the plot at their accuracy (spread so no two names overlap), the baseline
    ``none`` a dotted line; the legend sits below the plot."""
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
    x_format = ".3f" if "latency" in cost else ",.0f"
    has_pruned = bool((finished["state"] == "PRUNED").any())
    fig = make_subplots(
        rows=2 if has_pruned else 1,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=STRIP_GAP,
        row_heights=[MAIN_SHARE, 1 - MAIN_SHARE] if has_pruned else None,
    )
    searched = finished[finished["baseline"] == ""]
    for block in _type_order(set(searched["attention"])):
        for state, symbol in (("COMPLETE", "circle"), ("PRUNED", "circle-open")):
            rows = searched[(searched["attention"] == block) & (searched["state"] == state)]
            if rows.empty:
                continue
            width = 2 if state == "PRUNED" else 0.5
            trace = _points(
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
                    "line": _outline(width),
                },
            )
            fig.add_trace(trace, row=2 if state == "PRUNED" else 1, col=1)
    baselines = finished[finished["baseline"] != ""]
    for state, row in (("COMPLETE", 1), ("PRUNED", 2)):
        stars = baselines[baselines["state"] == state]
        if stars.empty:
            continue
        pruned = state == "PRUNED"
        fig.add_trace(
            _points(
                stars,
                accuracy,
                cost,
                x_format,
                colour="#555",
                name=f"{BASELINES} (pruned)" if pruned else BASELINES,
                legendgroup=BASELINES,
                text=list(stars["baseline"]),
                marker={
                    "color": [colours[a] for a in stars["attention"]],
                    "symbol": "star-open" if pruned else "star",
                    "size": 17,
                    "line": _outline(2.5 if pruned else 1.0),
                },
            ),
            row=row,
            col=1,
        )
    _legend_once(fig)
    front = front_2d(study, frame, accuracy, x_column, acc_direction)
    band = None
    if acc_direction == "maximize" and len(front):
        x_end = max(float(finished["x"].max()), float(front["x"].max()))
        band = _band(front, finished, x_end, sorted(finished.loc[finished["tied"], "trial"]))
    if band is not None:
        fig.add_trace(band, row=1, col=1)
    rings = finished[finished["tied"] & (finished["state"] == "COMPLETE")]
    if not rings.empty:
        fig.add_trace(_tied_rings(rings), row=1, col=1)
    fig.add_trace(
        step_line(
            front,
            ids="trial",
            color="#222",
            name=FRONT_LINE,
            hover=f"front: trial %{{customdata}}<br>{accuracy}=%{{y:.4f}}<extra></extra>",
        ),
        row=1,
        col=1,
    )
    complete = finished[finished["state"] == "COMPLETE"]
    none = complete[complete["baseline"] == "none"]
    if not none.empty:
        fig.add_hline(
            y=float(none["y"].iloc[0]),
            line={"dash": "dot", "color": "#555", "width": 1.5},
            row=1,
            col=1,
        )
    kind = "objective" if x_column == cost else "measured cost, not an objective"
    notes = [kind]
    if has_pruned:
        notes.append(
            "lower strip: pruned trials (open markers; partial training, never on the front)"
        )
    if finished["se"].notna().any():
        notes.append(
            f"error bars: 95% of each single run, ±{Z95:g} s.e. (binomial, normal approximation)"
        )
    if not baselines.empty:
        notes.append("stars: the hand-made baselines" + ("; dotted: none" if len(none) else ""))
    if band is not None:
        notes.append(
            f"shaded: within {TIE_STANDARD_ERRORS:g} s.e. of the front; trials in it are "
            "statistically tied with it (red rings)"
        )
    bounds = BOUNDED_METRICS.get(accuracy)
    y_range = accuracy_range(complete, band, bounds)
    legend_rows = _legend_rows(fig)
    margin = {"t": 48 + 19 * len(notes), "b": 58 + 24 * legend_rows, "l": 60}
    labels = complete[complete["baseline"] != ""]
    margin["r"] = 20 + int(CHAR_PX * (max(map(len, labels["baseline"]), default=0) + 3))
    if y_range is not None and not labels.empty:
        share = (1 - STRIP_GAP) * MAIN_SHARE if has_pruned else 1.0
        main_px = (FIGURE_HEIGHT - margin["t"] - margin["b"]) * share
        gap = LABEL_LINE_PX * (y_range[1] - y_range[0]) / max(main_px, 1.0)
        for y, name, block in zip(
            spread_labels(list(labels["y"]), gap, *y_range),
            labels["baseline"],
            labels["attention"],
            strict=True,
        ):
            fig.add_annotation(
                x=1.0,
                xref="paper",
                xanchor="left",
                xshift=6,
                y=y,
                yref="y",
                yanchor="middle",
                showarrow=False,
                text=f'<span style="color:{colours[block]}">★</span> {name}',
                font={"size": 12, "color": "#333"},
            )
    fig.update_layout(
        title={
            "text": f"{accuracy} against {COST_LABELS.get(cost, cost)}"
            + "".join(f"<br><sup>{n}</sup>" for n in notes),
            "x": 0.01,
            "xanchor": "left",
            "y": 1,
            "yanchor": "top",
            "pad": {"t": 14},
        },
        legend={
            "orientation": "h",
            "x": 0,
            "xanchor": "left",
            "y": 0,
            "yref": "container",
            "yanchor": "bottom",
            "title": {"text": "attention"},
        },
        template=TEMPLATE,
        height=FIGURE_HEIGHT,
        margin=margin,
    )
    fig.update_xaxes(title_text=COST_LABELS.get(cost, cost), row=2 if has_pruned else 1, col=1)
    fig.update_yaxes(title_text=accuracy, range=y_range, row=1, col=1)
    if has_pruned:
        fig.update_yaxes(title_text="pruned<br>(partial)", row=2, col=1)
    return fig


def accuracy_range(
    complete: pd.DataFrame, band: go.Scatter | None, bounds: tuple[float, float] | None
) -> list[float] | None:
    """The main axis' range: the complete trials' accuracies (columns ``y``, ``se``) with their
    95% error bars and the band, padded by 8%, inside ``bounds``; None where nothing completed."""
    if complete.empty:
        return None
    half = Z95 * complete["se"].fillna(0.0).to_numpy(dtype=float)
    values = complete["y"].to_numpy(dtype=float)
    low, high = float(np.min(values - half)), float(np.max(values + half))
    if band is not None:
        low = min(low, float(np.min(band.y)))
    pad = max(0.08 * (high - low), 0.005)
    low, high = low - pad, high + pad
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return [low, high]


def spread_labels(ys: list[float], gap: float, low: float, high: float) -> list[float]:
    """Heights for labels wanted at ``ys``, in the same order, consecutive ones at least ``gap``
    apart and kept in order: labels that would collide form a run centred on the mean of their
    wanted heights, moved inside [low, high] where it fits."""
    order = sorted(range(len(ys)), key=lambda i: (ys[i], i))
    wanted = [ys[i] for i in order]
    runs: list[tuple[float, list[int]]] = []  # (lowest label's height, members), bottom up
    for k in range(len(wanted)):
        members = [k]
        while True:
            span = gap * (len(members) - 1)
            start = sum(wanted[m] for m in members) / len(members) - span / 2
            start = max(min(start, high - span), low)
            if runs and runs[-1][0] + gap * len(runs[-1][1]) > start:
                members = runs.pop()[1] + members
                continue
            runs.append((start, members))
            break
    out = [0.0] * len(ys)
    for start, members in runs:
        for j, m in enumerate(members):
            out[order[m]] = start + j * gap
    return out


def _legend_once(fig: go.Figure) -> None:
    """A pruned-only attention type keeps its legend entry; one with complete trials shows it
    on the complete trace only."""
    complete = {t.legendgroup for t in fig.data if t.showlegend is not False and t.yaxis == "y"}
    for trace in fig.data:
        if trace.yaxis != "y" and trace.legendgroup in complete:
            trace.showlegend = False


def _legend_rows(fig: go.Figure, width_px: float = 560) -> int:
    """About how many rows the horizontal legend takes in a plot ``width_px`` wide."""
    names = [t.name for t in fig.data if t.showlegend is not False and t.name]
    widths = [40 + CHAR_PX * len(n) for n in ["attention", *names]]
    rows, used = 1, 0.0
    for w in widths:
        if used and used + w > width_px:
            rows, used = rows + 1, 0.0
        used += w
    return rows


def _outline(width: float) -> dict[str, Any]:
    return {"width": width, "color": "#333"}


def _tied_rings(tied: pd.DataFrame) -> go.Scatter:
    """Red rings around the trials statistically tied with the front (columns ``trial``, ``x``,
    ``y``): one legend entry, and the markers inside keep their attention colour."""
    return go.Scatter(
        x=tied["x"],
        y=tied["y"],
        mode="markers",
        name=TIED_RINGS,
        marker={"symbol": "circle-open", "size": 15, "line": {"width": 1.5}, "color": TIED_OUTLINE},
        customdata=tied["trial"],
        hovertemplate="trial %{customdata}: statistically tied with the front<extra></extra>",
    )


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
