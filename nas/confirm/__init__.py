"""Repeats and a confirmed front: ``nas confirm STUDY --top K --seeds S``.

One training run of a small network is one draw from a noisy process: on small budgets the
seed-to-seed spread of an accuracy is as large as the effects of the attention placement a search
looks for. A confirm study retrains the K most accurate architectures of a study's Pareto front
(filled from the next non-dominated fronts where the first holds fewer) and its baselines
(``none`` and the blocks placed everywhere) with S fresh seeds each: full epochs, no pruning, the
same data splits. It is an Optuna study of its own, ``<study>-confirm`` in the same storage,
whose trials are queued up front (``replicate`` r, ``source_trial`` n), so it resumes after a
kill and takes more workers (``nas worker --study <study>-confirm``) like any study. Repeat r
trains every architecture with the r-th seed (model weights, batch order and augmentation), so
the seeds are the blocks of a paired design.

:func:`confirm_frame` turns the repeats into verdicts and the **confirmed front**
(:mod:`nas.confirm.frame` says how). With ``--seeds auto --max-seeds M`` (:func:`run_confirm`)
the study looks at planned seed counts (3, 6, ... M) and adds seeds only to the architectures still
undecided against ``none``; each look tests at 0.05 / looks (a Bonferroni split over the
planned looks), so the family-wise error over every look stays at most 0.05.

Modules: :mod:`.planning` (what to repeat, the seeds, the stored plan, queueing the runs),
:mod:`.runs` (the runs as stored: failed ones queued again, up to a cap, the unfinished ones),
:mod:`.rounds` (the verdicts look by look, the sequential ``--seeds auto`` design),
:mod:`.frame` (the table of verdicts, the confirmed front, the one-line summaries).
"""

from .frame import (
    GAIN_COLUMNS,
    agreement_line,
    confirm_frame,
    median_repeat,
    model_line,
    power_line,
    supernet_agreement,
    verdict,
    write_table,
)
from .planning import (
    ALPHA,
    AUTO_FIRST,
    COMPARISONS,
    CONFIDENCE,
    CONFIRM_SUFFIX,
    POWER,
    UNEQUAL_VARIANCES,
    Planned,
    confirm_config,
    confirm_seeds,
    confirm_study_name,
    find_confirm_study,
    looks_schedule,
    plan_architectures,
    plan_looks,
    prepare_confirm,
    ranked_trials,
    searched_config,
)
from .rounds import Verdicts, next_round, run_confirm, verdicts
from .runs import MAX_ATTEMPTS, GaveUp, gave_up, gave_up_message, unfinished

__all__ = [
    "ALPHA",
    "AUTO_FIRST",
    "COMPARISONS",
    "CONFIDENCE",
    "CONFIRM_SUFFIX",
    "GAIN_COLUMNS",
    "MAX_ATTEMPTS",
    "POWER",
    "UNEQUAL_VARIANCES",
    "GaveUp",
    "Planned",
    "Verdicts",
    "agreement_line",
    "confirm_config",
    "confirm_frame",
    "confirm_seeds",
    "confirm_study_name",
    "find_confirm_study",
    "gave_up",
    "gave_up_message",
    "looks_schedule",
    "median_repeat",
    "model_line",
    "next_round",
    "plan_architectures",
    "plan_looks",
    "power_line",
    "prepare_confirm",
    "ranked_trials",
    "run_confirm",
    "searched_config",
    "supernet_agreement",
    "unfinished",
    "verdict",
    "verdicts",
    "write_table",
]
