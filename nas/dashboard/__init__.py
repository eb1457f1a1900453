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

Modules: one per kind of figure (:mod:`.front`, :mod:`.confirmation`, :mod:`.curves`,
:mod:`.importance`, :mod:`.placement`), :mod:`.page` (the HTML file that assembles them),
:mod:`.serve` (optuna-dashboard), :mod:`._common` (labels, colours, formatting).
"""

from ._common import (
    BAND,
    BASELINES,
    CONFIRMED_FRONT,
    CONFIRMED_MEANS,
    COST_LABELS,
    FRONT_LINE,
    PRUNED_MARKS,
    SEARCH_RUNS,
    SIGNIFICANT,
    TIED_OUTLINE,
    TIED_RINGS,
    attention_colours,
    attention_type,
)
from .confirmation import confirm_figure, confirm_table_html, confirmation
from .curves import hypervolume_figure, learning_curves_figure
from .front import front_2d, front_costs, front_figure
from .importance import importances_figure, param_importances
from .page import baseline_sentence, build_figures, front_table_html, write_dashboard
from .placement import placement_figure, placement_grid
from .serve import serve_optuna_dashboard

__all__ = [
    "BAND",
    "BASELINES",
    "CONFIRMED_FRONT",
    "CONFIRMED_MEANS",
    "COST_LABELS",
    "FRONT_LINE",
    "PRUNED_MARKS",
    "SEARCH_RUNS",
    "SIGNIFICANT",
    "TIED_OUTLINE",
    "TIED_RINGS",
    "attention_colours",
    "attention_type",
    "baseline_sentence",
    "build_figures",
    "confirm_figure",
    "confirm_table_html",
    "confirmation",
    "front_2d",
    "front_costs",
    "front_figure",
    "front_table_html",
    "hypervolume_figure",
    "importances_figure",
    "learning_curves_figure",
    "param_importances",
    "placement_figure",
    "placement_grid",
    "serve_optuna_dashboard",
    "write_dashboard",
]
