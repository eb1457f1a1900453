"""The confirmed front (``nas confirm``): means over seeds with their intervals next to the
search's single runs, as a figure and a sortable table."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import optuna
import pandas as pd
import plotly.graph_objects as go

from .. import trial_schema as schema
from ..confirm import ALPHA, CONFIDENCE, confirm_frame, find_confirm_study, plan_looks
from ..report import (
    objective_names,
)
from ._common import (
    CONFIRMED_FRONT,
    CONFIRMED_MEANS,
    COST_LABELS,
    NO_ATTENTION_COLOUR,
    SEARCH_RUNS,
    SIGNIFICANT,
    TEMPLATE,
    _format,
    _hover_summary,
    _sortable_table,
    step_line,
)


def confirmation(study: optuna.Study) -> tuple[optuna.Study, pd.DataFrame] | None:
    """The study's confirm study (``nas confirm``, :func:`nas.confirm.find_confirm_study`) and
    its :func:`~nas.confirm.confirm_frame`, or None where it has none."""
    confirm = find_confirm_study(study)
    if confirm is None:
        return None
    return confirm, confirm_frame(confirm, study)


def seeds_words(confirm: optuna.Study) -> str:
    """The seeds per architecture of a confirm study's plan: ``3``, or ``up to 10`` for a
    sequential one (``--seeds auto --max-seeds 10``)."""
    plan = schema.confirm_plan(confirm) or {}
    if not plan.get("seeds"):
        return "0"
    looks = plan_looks(plan)
    return f"up to {looks[-1]}" if len(looks) > 1 else str(looks[0])


def confirm_facts(confirm: optuna.Study, frame: pd.DataFrame) -> str:
    """What the confirmation ran and how :func:`~nas.confirm.confirm_frame` judged it, in plain
    text: the seeds (for a sequential plan its looks and the seeds complete so far), the model of
    the intervals and the test of the gains over ``none``."""
    plan = schema.confirm_plan(confirm) or {}
    looks = plan_looks(plan) if plan.get("seeds") else []
    seeds = f"{seeds_words(confirm)} fresh seeds each"
    if len(looks) > 1:
        done = pd.to_numeric(frame["seeds"], errors="coerce") if not frame.empty else None
        low, high = (int(done.min()), int(done.max())) if done is not None else (0, 0)
        run = f"{low}" if low == high else f"{low} to {high}"
        seeds += f", {run} complete so far, in looks at {', '.join(map(str, looks))} seeds"
    row = frame.iloc[0] if not frame.empty and "model" in frame else None
    means = f"{100 * CONFIDENCE:g}% intervals of the means on the logit scale"
    if row is None or not row["model"]:
        method = (
            f"{means}, Student-t over each architecture's seeds; no run of none to compare with"
        )
    elif row["model"] == "pooled":
        method = (
            f"{means}, from one residual variance pooled over every run; gains over none paired "
            f"by seed, Dunnett's many-to-one test with {100 * row['gain_confidence']:.3g}% "
            "simultaneous intervals"
        )
    else:
        method = (
            f"{means}, Student-t over each architecture's own seeds; gains over none paired by "
            f"seed, Holm-adjusted paired t-tests with {100 * row['gain_confidence']:.3g}% "
            f"intervals ({row['model_note'] or '--comparison holm'})"
        )
    if len(looks) > 1:
        method += (
            f"; each look tests at alpha {ALPHA:g}/{len(looks)}, Bonferroni over the planned looks"
        )
    return f"{seeds} ({method})"


def confirm_figure(confirm: optuna.Study, frame: pd.DataFrame) -> go.Figure:
    """Mean validation accuracy over the confirm study's seeds with its 95% interval (in [0, 1],
    :func:`~nas.confirm.confirm_frame`; the axis stays in [0, 1] too) against the first cost
    (the architectures by name in a single-objective study), the confirmed front as a step line,
    rings on the architectures whose gain over ``none`` is significant, the baseline ``none``
    dotted, and the search's single run of each architecture as a faint diamond: the gap to the
    mean is the winner's curse of picking by one run."""
    names = objective_names(confirm)
    accuracy = names[0]
    cost = names[1] if len(names) > 1 else None
    seeds = seeds_words(confirm)
    fig = go.Figure()
    rows = frame.copy()
    if not rows.empty:
        rows["y"] = pd.to_numeric(rows["val_acc_mean"], errors="coerce")
        rows["x"] = pd.to_numeric(rows[cost], errors="coerce") if cost else rows["architecture"]
        rows = rows[rows["y"].notna() & rows["x"].notna()]
    x_label = COST_LABELS.get(cost, cost) if cost else "architecture"
    title = (
        f"Confirmed front: {accuracy} over {seeds} seeds against {x_label}<br><sup>mean and 95% "
        "interval over seeds; blue: on the confirmed front; rings: gain over none "
        f"significant (adjusted p < {ALPHA:g})</sup><br><sup>faint diamonds: the search's single "
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
    x_format = ":.3f" if cost and "latency" in cost else (":,.0f" if cost else "")
    customdata = np.column_stack(
        [
            rows["architecture"],
            rows["summary"].map(_hover_summary),
            rows["seeds"],
            [_interval(m, lo, hi) for m, lo, hi in zip(mean, low, high, strict=True)],
            [
                ""
                if not math.isfinite(g)
                else f"<br>gain over none {_interval(g, lo, hi, True)} points, adjusted p = {p:.3g}"
                for g, lo, hi, p in zip(
                    rows["gain_vs_none"],
                    rows["gain_vs_none_low"],
                    rows["gain_vs_none_high"],
                    rows["p_adjusted"],
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
            step_line(
                front,
                ids="architecture",
                color="#1F77B4",
                name=CONFIRMED_FRONT,
                hover=f"confirmed front: %{{customdata}}<br>{accuracy}=%{{y:.4f}}<extra></extra>",
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
    shown = np.concatenate([low, high, mean, search.dropna().to_numpy(dtype=float)])
    shown = shown[np.isfinite(shown)]
    pad = 0.05 * max(float(shown.max() - shown.min()), 0.01)
    fig.update_yaxes(range=[max(0.0, shown.min() - pad), min(1.0, shown.max() + pad)])
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
    accuracies and the gain over ``none`` as ``mean [low, high]`` in percent (the means' 95%
    intervals; the gains' at ``gain_confidence``, 1 - 0.05 / looks for ``--seeds auto``), the
    costs, the search's single-run accuracy, the adjusted p-value (Dunnett or Holm, the
    ``p_adjusted`` column), whether the gain is significant and whether the architecture is on
    the confirmed front. Each cell's ``data-value`` is the raw number (the mean for an
    interval)."""
    costs = objective_names(confirm)[1:]
    headers = [
        "architecture",
        "summary",
        "seeds",
        "val_acc % [95% CI]",
        "test_acc % [95% CI]",
        *costs,
        "search val_acc % (one run)",
        f"gain vs none, points [{_gain_confidence(frame)} CI]",
        "p (adjusted)",
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
                (r["p_adjusted"], f"{r['p_adjusted']:.3g}" if compared else ""),
                (bool(r["significant"]), ("yes" if r["significant"] else "no") if compared else ""),
                (bool(r["on_confirmed_front"]), "yes" if r["on_confirmed_front"] else "no"),
            ]
        )
    return _sortable_table(headers, rows)


def _gain_confidence(frame: pd.DataFrame) -> str:
    """The confidence of the gains' intervals (95%; 1 - 0.05 / looks for ``--seeds auto``)."""
    confidence = frame["gain_confidence"].dropna() if "gain_confidence" in frame else []
    return f"{100 * confidence.iloc[0]:.3g}%" if len(confidence) else f"{100 * CONFIDENCE:g}%"
