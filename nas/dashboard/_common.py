"""What the dashboard's figures and tables share: axis titles, labels, the colour of each attention
type, number formatting."""

from __future__ import annotations

import html
import math
from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

import attn_blocks
from search_spaces.spec import BlockChoice

from ..confirm import ALPHA
from ..pareto import TIE_STANDARD_ERRORS

#: Axis titles of the costs.
COST_LABELS = {
    "flops": "FLOPs",
    "params": "parameters",
    "latency_ms_b1": "latency, batch 1 (ms)",
    "latency_ms_bN": "latency, batch N (ms)",
    "activation_bytes": "activation memory (bytes)",
    "ort_latency_ms_b1": "ONNX Runtime CPU latency, batch 1 (ms)",
    "ort_latency_ms_bN": "ONNX Runtime CPU latency, batch N (ms)",
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
#: Colour and legend entry of the rings around the trials tied with the front.
TIED_OUTLINE = "#d62728"
TIED_RINGS = "tied with the front"
#: Standard errors either side of a single measurement for its 95% interval (normal approx.).
Z95 = 1.96
#: Trace names of the confirmed-front figure.
CONFIRMED_MEANS = "mean over seeds, 95% CI"
CONFIRMED_FRONT = "confirmed front"
SEARCH_RUNS = "search (one run)"
SIGNIFICANT = f"gain over none significant (Holm p < {ALPHA:g})"
TEMPLATE = "plotly_white"


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


def _format(value: Any) -> str:
    """``1,518,264`` for whole numbers, four significant digits otherwise, ``""`` for NaN."""
    if isinstance(value, (int, float, np.number)) and not isinstance(value, (bool, np.bool_)):
        if not math.isfinite(value):
            return ""
        return f"{int(value):,}" if float(value).is_integer() else f"{value:.4g}"
    return str(value)


def _sortable_table(headers: list[str], rows: list[list[tuple[Any, str]]]) -> str:
    """``<table class="sortable">`` of ``rows`` of (raw value, text) cells: the raw value in
    each cell's ``data-value`` (what the page's sorter script sorts on), the text shown."""
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


def step_line(rows: pd.DataFrame, *, ids: str, color: str, name: str, hover: str) -> go.Scatter:
    """A front through ``rows`` (columns ``x``, ``y``, sorted by ``x``) as a step line: each
    front point's accuracy holds until the next, cheaper-to-dearer."""
    return go.Scatter(
        x=rows["x"],
        y=rows["y"],
        mode="lines",
        line={"shape": "hv", "color": color, "width": 1.5},
        name=name,
        customdata=rows[ids],
        hovertemplate=hover,
    )
