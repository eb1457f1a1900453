"""Accuracy against each cost: every trial, the 2-D Pareto front, error bars and the band of trials
tied with it, baselines as stars."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import optuna
import pandas as pd
import plotly.graph_objects as go

from ..config import COSTS
from ..pareto import TIE_STANDARD_ERRORS, is_candidate, non_dominated_sort, tied_with_front
from ..report import (
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
        step_line(
            front,
            ids="trial",
            color="#222",
            name=FRONT_LINE,
            hover=f"front: trial %{{customdata}}<br>{accuracy}=%{{y:.4f}}<extra></extra>",
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
