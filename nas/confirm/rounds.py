"""The verdicts against ``none``, look by look, and the sequential ``--seeds auto`` design.

With ``--seeds auto --max-seeds M`` (:func:`run_confirm`) the study looks at planned seed counts
(3, 6, ... M) and adds seeds only to the architectures still undecided against ``none``
(:func:`next_round`); each look tests at 0.05 / looks (a Bonferroni split over the planned
looks), so the family-wise error over every look stays at most 0.05 (:class:`Verdicts`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from .. import trial_schema as schema
from ..config import StudyConfig
from ..stats import ManyToOne, many_to_one
from ..storage import machine_lock
from .planning import ALPHA, COMPARISONS, UNEQUAL_VARIANCES, Planned, _enqueue, plan_looks
from .runs import _key_of, _scheduled, budget, gave_up, gave_up_message, requeue_failed


def _runs(confirm: optuna.Study) -> dict[str, dict[int, FrozenTrial]]:
    """The COMPLETE runs of a confirm study: ``{key: {repeat: trial}}``, in plan order."""
    plan = schema.confirm_plan(confirm) or {}
    runs: dict[str, dict[int, FrozenTrial]] = {key: {} for key in plan.get("architectures", [])}
    for t in confirm.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if schema.REPLICATE.has(t):
            runs.setdefault(_key_of(t), {})[int(schema.REPLICATE.get(t))] = t
    return runs


@dataclass(frozen=True)
class Verdicts:
    """The comparisons of a confirm study with ``none`` (rows of ``values``, ``none`` first).

    ``now`` compares on every complete run; for the verdicts, each look of the plan whose runs
    have all finished (``reached`` of ``looks``) is compared at ``alpha`` = ALPHA / looks (a
    Bonferroni split over the planned looks keeps the family-wise error across them at most
    ALPHA). An architecture is decided at the first look where its adjusted p is below
    ``alpha`` (``decided``: its seeds then; ``sign``: of its gain then); ``p_adjusted`` is
    min(1, looks x its smallest adjusted p), below ALPHA exactly where it was decided. Before
    any look is reached ``now`` stands in for it."""

    keys: list[str]
    values: np.ndarray
    looks: list[int]
    reached: int
    comparison: str
    alpha: float
    now: ManyToOne
    p_adjusted: dict[str, float]
    decided: dict[str, int]
    sign: dict[str, float]


def _table(runs: dict[str, dict[int, FrozenTrial]], keys: list[str], metric: str) -> np.ndarray:
    """``keys`` x repeats of validation (``val_acc``) or test accuracy; NaN where no complete
    run (or no test accuracy) exists."""
    width = 1 + max((r for key in keys for r in runs.get(key, {})), default=0)
    table = np.full((len(keys), width), math.nan)
    for i, key in enumerate(keys):
        for r, t in runs.get(key, {}).items():
            if metric == "val_acc":
                table[i, r] = t.values[0]
            elif schema.TEST_ACC.has(t):
                table[i, r] = schema.TEST_ACC.get(t)
    return table


def verdicts(confirm: optuna.Study, comparison: str | None = None) -> Verdicts | None:
    """The :class:`Verdicts` of a confirm study (``comparison``: ``dunnett`` or ``holm``,
    default the plan's); None where it has no run of ``none``."""
    plan = schema.confirm_plan(confirm) or {}
    runs = _runs(confirm)
    if not runs.get("baseline none"):
        return None
    keys = ["baseline none", *(k for k in runs if k != "baseline none")]
    values = _table(runs, keys, "val_acc")
    looks = plan_looks(plan) if plan.get("seeds") else [values.shape[1]]
    comparison = comparison or plan.get("comparison", COMPARISONS[0])
    alpha = ALPHA / len(looks)
    finished = {
        run: all(s.is_finished() for s in states) for run, states in _scheduled(confirm).items()
    }
    decided: dict[str, int] = {}
    sign: dict[str, float] = {}
    best: dict[str, float] = {}
    reached = 0
    for start, seeds in zip([0, *looks], looks, strict=False):
        waiting = [k for k in keys if k == "baseline none" or k not in decided]
        if not all(finished.get((r, k), False) for r in range(start, seeds) for k in waiting):
            break
        reached += 1
        _record(
            many_to_one(values[:, :seeds], comparison, alpha, UNEQUAL_VARIANCES),
            keys,
            seeds,
            alpha,
            decided,
            sign,
            best,
        )
    now = many_to_one(values, comparison, alpha, UNEQUAL_VARIANCES)
    if not reached:
        _record(now, keys, values.shape[1], alpha, decided, sign, best)
    p_adjusted = {k: min(1.0, len(looks) * p) for k, p in best.items()}
    return Verdicts(keys, values, looks, reached, comparison, alpha, now, p_adjusted, decided, sign)


def _record(
    result: ManyToOne,
    keys: list[str],
    seeds: int,
    alpha: float,
    decided: dict[str, int],
    sign: dict[str, float],
    best: dict[str, float],
) -> None:
    """Fold one look's comparisons into the verdicts so far."""
    for j, i in enumerate(result.rows):
        key, p = keys[i], float(result.p_adjusted[j])
        best[key] = min(best.get(key, 1.0), p)
        if key not in decided and p < alpha:
            decided[key], sign[key] = seeds, float(np.sign(result.gain[j]))


def next_round(confirm: optuna.Study) -> tuple[list[tuple[int, str]], str]:
    """The (repeat, key) runs the next look of a sequential design still needs queued, and
    why there are none: every verdict is decided, the budget (the last look) is spent, or runs
    already queued have not finished (another worker holds them)."""
    v = verdicts(confirm)
    if v is None:
        return [], "no run of none to compare with"
    sequential = len(v.looks) > 1
    undecided = [k for k in v.keys[1:] if k not in v.decided]
    if v.reached == len(v.looks):
        return [], f"the budget of {v.looks[-1]} seeds is spent" if sequential else ""
    if v.reached and not undecided:
        return [], f"every verdict against none is decided at {v.looks[v.reached - 1]} seeds"
    seeds = v.looks[v.reached]
    scheduled = _scheduled(confirm)
    # The first look's runs of every architecture are queued with the plan, a later look's for
    # those still undecided: what is missing is this look's.
    runs = [(r, k) for r in range(seeds) for k in ("baseline none", *undecided)]
    missing = [run for run in runs if run not in scheduled]
    if missing:
        return missing, ""
    return [], (
        f"runs of the look at {seeds} seeds are unfinished (held by another worker?); run the "
        "same command again when they are done"
    )


def run_confirm(
    confirm: optuna.Study,
    cfg: StudyConfig,
    url: str,
    run: Callable[[StudyConfig], optuna.Study],
) -> tuple[optuna.Study, str]:
    """Run the confirm study's queued runs (``run(cfg)``, e.g. :func:`nas.worker.run_search`),
    then queue again the runs whose trials all failed meanwhile (:func:`.runs.requeue_failed`)
    and, look by look, the next look's runs for ``none`` and the architectures still undecided
    (:func:`next_round`), and run those, until every verdict is decided, the budget is spent or
    a run gave up (:func:`.runs.gave_up`). Resumable: the looks reached are read back from the
    stored runs, and a run that has a trial waiting, running or complete is never queued again.
    Returns the study and why it stopped."""
    while True:
        confirm = run(cfg)
        with machine_lock(url, confirm.study_name):
            if stuck := gave_up(confirm):
                return confirm, gave_up_message(confirm.study_name, stuck)
            if not requeue_failed(confirm):
                missing, why = next_round(confirm)
                if not missing:
                    return confirm, why
                planned = _planned_from_runs(confirm)
                _enqueue(confirm, [(r, planned[key]) for r, key in missing])
            study = dataclasses.replace(cfg.study, n_trials=budget(confirm))
            cfg = dataclasses.replace(cfg, study=study)
            confirm.set_user_attr(schema.STUDY_CONFIG, cfg.to_dict())


def _planned_from_runs(confirm: optuna.Study) -> dict[str, Planned]:
    """Each architecture of a confirm study as its runs were queued (their fixed parameters)."""
    planned: dict[str, Planned] = {}
    for t in confirm.get_trials(deepcopy=False):
        if schema.REPLICATE.has(t) and _key_of(t) not in planned:
            params = dict(t.system_attrs.get("fixed_params") or t.params)
            baseline = schema.BASELINE.get(t) if schema.BASELINE.has(t) else None
            source = schema.SOURCE_TRIAL.get(t)
            planned[_key_of(t)] = Planned(_key_of(t), params, source, baseline)
    return planned
