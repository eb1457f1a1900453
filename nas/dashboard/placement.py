"""The placement map: which attention block sits at which site, for every front architecture."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import optuna
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from search_spaces.backbones import backbone_sites
from search_spaces.spec import NO_ATTENTION

from .. import trial_schema as schema
from ..report import (
    front_frame,
    objective_names,
)
from ._common import TEMPLATE, _format, _label, _type_order


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
