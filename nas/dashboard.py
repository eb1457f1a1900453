"""A study's dashboard: plotly figures, one self-contained HTML file, and optuna-dashboard.

* :func:`build_figures`: accuracy against every cost (objective or measured) with the 2-D Pareto
  front, the placement map of every front architecture, the hypervolume over trials and over
  epochs, the learning curves and the parameter importances per objective.
* :func:`front_table_html`: the front as an HTML table that sorts on a header click.
* :func:`write_dashboard`: all of it in one HTML file with plotly.js inlined once, so it opens
  offline and can be mailed or archived next to the study.
* :func:`serve_optuna_dashboard`: Optuna's own live dashboard on the same storage.

Everything is computed from the study through :mod:`nas.report` and :mod:`nas.pareto`; nothing is
cached between calls.
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
from .pareto import is_candidate, non_dominated_sort
from .report import (
    FINISHED,
    Reference,
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
    """The dashboard's figures, in display order: ``front_<cost>`` per cost, ``placement``,
    ``hypervolume``, ``learning_curves`` and ``importances``."""
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
    figures = {
        f"front_{cost}": front_figure(study, frame, cost, colours)
        for cost in front_costs(study, frame)
    }
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
    study: optuna.Study, frame: pd.DataFrame, cost: str, colours: Mapping[str, str]
) -> go.Figure:
    """Accuracy (the first objective) against ``cost`` for every finished trial, coloured by
    attention type, pruned trials as open markers, and the 2-D front of the complete, feasible
    trials as a step line. ``frame`` is :func:`trials_frame` plus an ``attention`` column;
    ``colours`` maps attention types to colours (:func:`attention_colours`)."""
    accuracy, acc_direction = objective_names(study)[0], objective_directions(study)[0]
    x_column = _cost_column(study, cost)
    finished = frame[frame["state"].isin([s.name for s in FINISHED])].copy()
    finished["x"] = pd.to_numeric(finished[x_column], errors="coerce")
    finished["y"] = pd.to_numeric(finished[accuracy], errors="coerce")
    finished = finished[np.isfinite(finished["x"]) & np.isfinite(finished["y"])]
    x_format = ".3f" if cost.startswith("latency") else ",.0f"
    fig = go.Figure()
    for block in _type_order(set(finished["attention"])):
        for state, symbol in (("COMPLETE", "circle"), ("PRUNED", "circle-open")):
            rows = finished[(finished["attention"] == block) & (finished["state"] == state)]
            if rows.empty:
                continue
            fig.add_trace(
                go.Scatter(
                    x=rows["x"],
                    y=rows["y"],
                    mode="markers",
                    name=block if state == "COMPLETE" else f"{block} (pruned)",
                    legendgroup=block,
                    marker={
                        "color": colours[block],
                        "symbol": symbol,
                        "size": 10,
                        "line": {"width": 2 if state == "PRUNED" else 0.5, "color": "#333"},
                    },
                    customdata=np.column_stack(
                        [rows["trial"], rows["summary"].map(_hover_summary), rows["state"]]
                    ),
                    hovertemplate=(
                        "trial %{customdata[0]} (%{customdata[2]})<br>%{customdata[1]}<br>"
                        f"{accuracy}=%{{y:.4f}}<br>{cost}=%{{x:{x_format}}}<extra></extra>"
                    ),
                )
            )
    front = front_2d(study, frame, accuracy, x_column, acc_direction)
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
    kind = "objective" if x_column == cost else "measured cost, not an objective"
    fig.update_layout(
        title=f"{accuracy} against {COST_LABELS.get(cost, cost)}<br><sup>{kind}; open markers: "
        "pruned trials (partial training, never on the front)</sup>",
        xaxis_title=COST_LABELS.get(cost, cost),
        yaxis_title=accuracy,
        legend_title="attention",
        template=TEMPLATE,
        height=460,
    )
    return fig


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
    """``1,518,264`` for whole numbers, four significant digits otherwise."""
    if isinstance(value, (int, float, np.number)) and math.isfinite(value):
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
    head = "".join(
        f'<th title="click to sort">{html.escape(c.removeprefix("cost_"))}</th>'
        for c in front.columns
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td data-value="{html.escape(str(v))}">{html.escape(_format(v))}</td>' for v in row
        )
        + "</tr>"
        for row in front.itertuples(index=False)
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
table.sortable td:nth-child(2) { text-align: left; }
table.sortable th { background: #f3f3f3; cursor: pointer; user-select: none; }
th[aria-sort="ascending"]::after { content: " ▲"; }
th[aria-sort="descending"]::after { content: " ▼"; }
"""


def write_dashboard(
    study: optuna.Study, path: str | Path, reference: Reference | None = None
) -> Path:
    """Write the dashboard as one self-contained HTML file (plotly.js inlined once, no network
    access when opened): study name, objectives and directions, trial counts, reference point,
    final hypervolume, the figures of :func:`build_figures` and the sortable front table (after
    the front figures)."""
    reference = reference or reference_point(study)
    facts = summary(study, reference)
    figures = build_figures(study, reference)
    config = {"displaylogo": False, "responsive": True}
    divs = [
        fig.to_html(full_html=False, include_plotlyjs=i == 0, div_id=key, config=config)
        for i, (key, fig) in enumerate(figures.items())
    ]
    fronts = [d for key, d in zip(figures, divs, strict=True) if key.startswith("front_")]
    others = [d for key, d in zip(figures, divs, strict=True) if not key.startswith("front_")]
    objectives = ", ".join(f"{n} ({d})" for n, d in facts["objectives"].items())
    counts = ", ".join(f"{v} {k.lower()}" for k, v in sorted(facts["trials"].items()))
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
reference point {html.escape(reference.describe())}
</div>
<div class="grid">{"".join(fronts)}</div>
<h2>Pareto front</h2>
{front_table_html(study)}
{"".join(others)}
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
