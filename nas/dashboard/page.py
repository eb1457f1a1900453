"""The dashboard as one self-contained HTML file: the figures in display order, the sortable front
table, the baseline sentence, plotly.js inlined once."""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
import plotly.graph_objects as go

from .. import trial_schema as schema
from ..confirm import verdict
from ..pareto import TIE_STANDARD_ERRORS, tied_with_front
from ..report import (
    Reference,
    baseline_gains,
    front_frame,
    objective_names,
    reference_point,
    summary,
    trials_frame,
)
from ._common import _format, _sortable_table, attention_colours, attention_type
from .confirmation import confirm_facts, confirm_figure, confirm_table_html, confirmation
from .curves import hypervolume_figure, learning_curves_figure
from .front import front_costs, front_figure
from .importance import importances_figure
from .placement import placement_figure


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


# -- the HTML file ------------------------------------------------------------------------------

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 1500px; color: #222;
       padding: 0 1rem; }
h1 { margin-bottom: 0.2rem; } .facts { color: #444; line-height: 1.6; } .warning { color: #a35200; }
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
    study: optuna.Study,
    path: str | Path,
    reference: Reference | None = None,
    facts: Mapping[str, Any] | None = None,
) -> Path:
    """Write the dashboard as one self-contained HTML file (plotly.js inlined once, no network
    access when opened): study name, objectives and directions, trial counts, reference point,
    final hypervolume, the gains over the baselines and the trials tied with the front, the
    figures of :func:`build_figures`, the sortable front table (after the front figures) and,
    where the study has a confirm study, the confirmed front (its table, figure and verdict).
    ``facts``: :func:`nas.report.summary` where the caller has it already (``nas report``)."""
    reference = reference or reference_point(study)
    facts = facts if facts is not None else summary(study, reference)
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
    pruning = facts["pruning"] or {}
    pruning_line = (f"<br>{html.escape(pruning['note'])}" if pruning.get("note") else "") + (
        f'<br><b class="warning">{html.escape(pruning["warning"])}</b>'
        if pruning.get("warning")
        else ""
    )
    tied_line = (
        f"<br>trials statistically tied with the front (within {TIE_STANDARD_ERRORS:g} s.e. of "
        f"the difference from a front member of no greater cost): {', '.join(map(str, tied))}"
        if tied
        else ""
    )
    confirm_section = ""
    if confirmed is not None:
        confirm, frame = confirmed
        confirm_section = f"""<h2>Confirmed front</h2>
<div class="facts">
study {html.escape(confirm.study_name)}: {len(frame)} architectures retrained with
{html.escape(confirm_facts(confirm, frame))}<br>
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
{html.escape(baseline_sentence(study, facts["baselines"]))}{tied_line}{pruning_line}
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
