"""Early stopping for multi-objective studies: curves in the storage, cost-aware pruners.

Optuna refuses ``Trial.report`` and ``Trial.should_prune`` when a study has several directions,
so it cannot prune multi-objective studies. Our studies maximise validation accuracy and minimise
costs (FLOPs, params, latency) that are known before training: only accuracy evolves per epoch.
Convention shared with the study engine: before training, a trial stores its costs in the
:data:`nas.trial_schema.COST` user attr and the pruner is told which cost names are objectives.
This module provides

* :func:`record_epoch`: stores the accuracy curve as the trial's intermediate values, for any
  number of directions (``FrozenTrial.intermediate_values``, optuna-dashboard curves);
* :class:`ParetoPercentilePruner` and :class:`MOASHAPruner`: Optuna's ``PercentilePruner`` and
  ``SuccessiveHalvingPruner`` (same arguments; the same decisions with ``cost_names=()``) that
  compare a trial only with trials that do not cost more, or rank it by non-dominated sorting;
* :func:`should_prune`: the pruning decision for single- and multi-objective studies;
* :func:`finish_pruned`: finishes a pruned trial as PRUNED while keeping its partial values;
* :class:`CurveAwareTPESampler`: TPE that does not crash on pruned multi-objective trials;
* :class:`PruningAwareNSGAIISampler`: NSGA-II whose generations close under pruning;
* :class:`PruningCallback`: the Lightning callback tying it together.

Steps are 0-based epochs (``trainer.current_epoch``). Pareto ranking is :mod:`nas.pareto`'s.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

import lightning.pytorch as pl
import numpy as np
import optuna
from optuna.pruners import BasePruner, NopPruner
from optuna.storages import BaseStorage
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, Trial, TrialState

from . import trial_schema as schema
from .config import asha_rungs
from .pareto import as_direction, crowding_distance, non_dominated_sort
from .rungs import AutoRungPruner

T = TypeVar("T")


# Optuna exposes no public accessor for a study's storage or a trial's storage id (its own
# pruners and ``Study.tell`` read ``study._storage`` and ``trial._trial_id``); these two
# functions are the only private accesses in the module.
def _storage(study: optuna.Study) -> BaseStorage:
    return study._storage


def _trial_id(trial: Trial | FrozenTrial) -> int:
    return trial._trial_id


def _one_of(name: str, value: T | None, old_name: str, old_value: T | None, default: T) -> T:
    """An argument given under its Optuna name or its old name (not both), else ``default``."""
    if value is not None and old_value is not None:
        raise ValueError(f"give {name} or its old name {old_name}, not both.")
    for given in (value, old_value):
        if given is not None:
            return given
    return default


def _require_at_least(**bounds: tuple[int, int]) -> None:
    """Raise for the first ``name=(value, low)`` with ``value < low``."""
    for name, (value, low) in bounds.items():
        if value < low:
            raise ValueError(f"{name} must be >= {low}, got {value}.")


# --------------------------------------------------------------------------------------------
# Curves in the storage.
# --------------------------------------------------------------------------------------------


def record_epoch(trial: Trial, epoch: int, value: float) -> None:
    """Store ``value`` (e.g. validation accuracy) at ``epoch`` as an intermediate value.

    Single-objective studies go through ``trial.report``. Multi-objective studies, where Optuna
    rejects ``report``, write through the study's storage (``set_trial_intermediate_value``) with
    the same rule as ``report``: a second value for an epoch is ignored with a warning.
    """
    if len(trial.study.directions) == 1:
        trial.report(value, epoch)
        return
    if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
        raise ValueError(f"epoch must be a non-negative int, got {epoch!r}.")
    storage, trial_id = _storage(trial.study), _trial_id(trial)
    if int(epoch) in storage.get_trial(trial_id).intermediate_values:
        warnings.warn(
            f"record_epoch ignored a second value for epoch {epoch} of trial {trial.number}.",
            stacklevel=2,
        )
        return
    storage.set_trial_intermediate_value(trial_id, int(epoch), float(value))


def trial_costs(trial: FrozenTrial, cost_names: Sequence[str]) -> np.ndarray:
    """The trial's costs named ``cost_names`` (:func:`nas.trial_schema.cost`), in that order."""
    costs = schema.cost(trial)
    if any(costs.get(name) is None for name in cost_names):
        raise ValueError(
            f"trial {trial.number} has costs {costs!r} but the pruner needs "
            f"{list(cost_names)}: call trial.set_user_attr({schema.COST.key!r}, {{...}}) with "
            "these names before training, or change cost_names."
        )
    return np.array([float(costs[name]) for name in cost_names], dtype=float)


class _CostAwarePruner(BasePruner):
    """Shared arguments of the pruners below; they accept studies with any number of directions.

    The curve (intermediate values) is the one objective that evolves during training; its
    direction is ``direction`` (in a single-objective study, give the study's). Costs are
    minimised and read with :func:`trial_costs`.
    """

    def __init__(self, cost_names: Sequence[str], direction: str | StudyDirection) -> None:
        if isinstance(cost_names, str):
            raise ValueError(
                f"cost_names must be a sequence of names, got the string {cost_names!r}; "
                f"write ({cost_names!r},)."
            )
        self.cost_names = tuple(cost_names)
        self.direction = as_direction(direction)

    def _sign(self) -> float:
        """+1 when larger curve values are better, so ``-sign * value`` is minimised."""
        return 1.0 if self.direction == StudyDirection.MAXIMIZE else -1.0


# --------------------------------------------------------------------------------------------
# Percentile rule (Optuna's PercentilePruner among cheaper-or-equal trials).
# --------------------------------------------------------------------------------------------


def _is_first_in_interval_step(
    step: int, steps: Iterable[int], n_warmup_steps: int, interval_steps: int
) -> bool:
    """Optuna's check-point rule: ``step`` is the first reported step at or after the latest
    point ``n_warmup_steps + k * interval_steps`` (steps may have gaps)."""
    grid_point = (step - n_warmup_steps) // interval_steps * interval_steps + n_warmup_steps
    return max((s for s in steps if s != step), default=-1) < grid_point


def _best_so_far(values: Iterable[float], direction: StudyDirection) -> float:
    """The best of a trial's intermediate values, NaN ignored; NaN when all are NaN."""
    finite = np.array([v for v in values if not math.isnan(v)], dtype=float)
    if not finite.size:
        return math.nan
    return float(finite.max() if direction == StudyDirection.MAXIMIZE else finite.min())


def _percentile_threshold(
    values: Sequence[float], percentile: float, direction: StudyDirection, n_min_trials: int
) -> float:
    """The value a trial must reach to keep the top ``percentile`` %; NaN (no decision) when
    fewer than ``n_min_trials`` values (NaN ones included) or no finite value is given."""
    finite = np.array([v for v in values if not math.isnan(v)], dtype=float)
    if len(values) < n_min_trials or not finite.size:
        return math.nan
    q = 100.0 - percentile if direction == StudyDirection.MAXIMIZE else percentile
    return float(np.percentile(finite, q))


class ParetoPercentilePruner(_CostAwarePruner):
    """Optuna's ``PercentilePruner`` among the trials that cost no more.

    The percentile rule of Optuna (``percentile=50`` is ``MedianPruner``'s median rule; Golovin
    et al., "Google Vizier", KDD 2017): at a checked step a trial is pruned when its best
    intermediate value so far is worse than the ``percentile`` threshold of its *peers'* values
    at that step, i.e. when it is not in their top ``percentile`` %. Its peers are the COMPLETE
    trials that cost no more than it on every cost in ``cost_names``: a trial is only pruned
    when no more expensive trials do better, so it is (provisionally) dominated, and a cheap
    trial on the Pareto front is never pruned by expensive, more accurate ones. With
    ``cost_names=()`` every COMPLETE trial is a peer and the decisions are Optuna's.

    Optuna's rules throughout: no pruning before ``n_startup_trials`` trials are COMPLETE (all
    of them, not only peers), before step ``n_warmup_steps``, or away from the first reported
    step of each interval; a trial whose values are all NaN is pruned; NaN peer values count
    for ``n_min_trials`` but not for the threshold.

    Args:
        percentile: top percentage of the peers that survives, in [0, 100].
        n_startup_trials: no pruning until this many trials are COMPLETE.
        n_warmup_steps: no pruning before this step (old name ``n_warmup_epochs``).
        interval_steps: steps between checks, offset by the warm-up (old name
            ``interval_epochs``).
        n_min_trials: no pruning when fewer peers reported the step (old name ``n_min_peers``).
        cost_names: costs (:func:`trial_costs`) that are minimised objectives.
        direction: direction of the curve (``"maximize"`` for accuracy).
    """

    def __init__(
        self,
        percentile: float = 50.0,
        n_startup_trials: int = 4,
        n_warmup_steps: int | None = None,
        interval_steps: int | None = None,
        n_min_trials: int | None = None,
        cost_names: Sequence[str] = ("flops",),
        direction: str | StudyDirection = "maximize",
        *,
        n_warmup_epochs: int | None = None,
        interval_epochs: int | None = None,
        n_min_peers: int | None = None,
    ) -> None:
        super().__init__(cost_names, direction)
        if not 0.0 <= percentile <= 100.0:
            raise ValueError(f"percentile must be in [0, 100], got {percentile}.")
        self.percentile = percentile
        self.n_startup_trials = n_startup_trials
        self.n_warmup_steps = _one_of(
            "n_warmup_steps", n_warmup_steps, "n_warmup_epochs", n_warmup_epochs, 1
        )
        self.interval_steps = _one_of(
            "interval_steps", interval_steps, "interval_epochs", interval_epochs, 1
        )
        self.n_min_trials = _one_of("n_min_trials", n_min_trials, "n_min_peers", n_min_peers, 3)
        _require_at_least(
            n_startup_trials=(self.n_startup_trials, 0),
            n_warmup_steps=(self.n_warmup_steps, 0),
            interval_steps=(self.interval_steps, 1),
            n_min_trials=(self.n_min_trials, 1),
        )

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        step = trial.last_step
        if not completed or len(completed) < self.n_startup_trials or step is None:
            return False
        if step < self.n_warmup_steps or not _is_first_in_interval_step(
            step, trial.intermediate_values, self.n_warmup_steps, self.interval_steps
        ):
            return False
        best = _best_so_far(trial.intermediate_values.values(), self.direction)
        if math.isnan(best):
            return True
        values = [
            t.intermediate_values[step]
            for t in self._peers(trial, completed)
            if step in t.intermediate_values
        ]
        threshold = _percentile_threshold(
            values, self.percentile, self.direction, self.n_min_trials
        )
        return self._sign() * best < self._sign() * threshold  # False for a NaN threshold

    def _peers(self, trial: FrozenTrial, completed: list[FrozenTrial]) -> list[FrozenTrial]:
        if not self.cost_names:
            return completed
        costs = trial_costs(trial, self.cost_names)
        return [t for t in completed if (trial_costs(t, self.cost_names) <= costs).all()]


# --------------------------------------------------------------------------------------------
# MO-ASHA (Optuna's SuccessiveHalvingPruner with Pareto ranks).
# --------------------------------------------------------------------------------------------


def _current_rung(trial: FrozenTrial) -> int:
    """The first rung whose value the trial has not stored yet."""
    rung = 0
    while schema.moasha_rung_key(rung) in trial.system_attrs:
        rung += 1
    return rung


def _promoted(rows: np.ndarray, numbers: Sequence[int], reduction_factor: int) -> list[int]:
    """Rows (minimised) that continue: the best ``len // eta`` by non-dominated sorting, the
    front that does not fit whole thinned by crowding distance (larger first, then the lower
    trial number); the whole first front when fewer than ``eta`` compete."""
    fronts = non_dominated_sort(rows, ["minimize"] * rows.shape[1])
    n_promoted = len(rows) // reduction_factor
    if n_promoted == 0:
        return fronts[0]
    promoted: list[int] = []
    for front in fronts:
        if len(promoted) + len(front) > n_promoted:
            crowding = crowding_distance(rows[front])
            order = sorted(range(len(front)), key=lambda i: (-crowding[i], numbers[front[i]]))
            return promoted + [front[i] for i in order[: n_promoted - len(promoted)]]
        promoted += front
    return promoted


def _continues(rows: np.ndarray, numbers: Sequence[int], reduction_factor: int) -> bool:
    """Whether row 0 is promoted. Identical rows share their fate: with one objective this is
    Optuna's rule, every value at least as good as the ``len // eta``-th best continues."""
    promoted = rows[_promoted(rows, numbers, reduction_factor)]
    return bool((promoted == rows[0]).all(axis=1).any())


class MOASHAPruner(_CostAwarePruner):
    """Multi-objective asynchronous successive halving (MO-ASHA).

    Schmucker et al., "Multi-objective Asynchronous Successive Halving", arXiv:2106.12639
    (2021), on top of ASHA (Li et al., "A System for Massively Parallel Hyperparameter Tuning",
    MLSys 2020) as Optuna's ``SuccessiveHalvingPruner`` implements it. With ``cost_names=()`` its
    decisions are that pruner's. Rung ``k`` is reached once the trial's resource is at least
    ``r * eta ** (s + k)`` (``eta = reduction_factor``, ``s = min_early_stopping_rate``), where
    ``r`` and the resource are given in one of two units:

    * ``min_resource``: Optuna's steps; rung ``k`` is reached when ``last_step >= r * eta **
      (s + k)``.
    * ``min_epochs``: epochs trained, ``last_step + 1`` (the unit of earlier releases and of
      ``pruning.min_epochs`` in study configs).

    On reaching a rung the trial stores its latest value in the system attr
    :func:`nas.trial_schema.moasha_rung_key`, so every decision can be recomputed from the
    storage. The competitors are all trials that stored the rung, the trial included; with
    ``n`` of them, ``n <= bootstrap_count`` prunes (Optuna's rule), and otherwise they are
    ranked by non-dominated sorting on (value at the rung, costs): the best ``n // eta``
    continue, the front that does not fit whole thinned by NSGA-II crowding distance (the paper
    also studies an epsilon-net; we take the NSGA-II variant) and trials with identical values
    sharing their fate. When ``n // eta == 0`` ASHA would wait; Optuna cannot pause a trial, so
    like Optuna's pruner (which then promotes the best value) the trial continues iff it is
    non-dominated among the competitors. A promoted trial is checked again at the next rung in
    the same call if it already got that far; a NaN value at a rung prunes.

    With ``max_resource`` (or ``max_epochs``), ``R``, the resource of a complete trial, the rungs
    are ASHA's: rung ``k`` decides only while ``r * eta ** (s + k + 1) <= R``, and a trial
    promoted from the last of them trains to ``R`` (Li et al., Algorithm 2;
    :func:`nas.config.asha_rungs`).
    For ``R = 5`` epochs, ``r = 1``, ``eta = 3`` that is one rung, after 1 epoch. Without it the
    rungs go on geometrically, as in Optuna.

    Args:
        min_resource: ``r`` in steps (Optuna's ``min_resource``; ``"auto"`` is not supported).
        reduction_factor: ``eta`` >= 2.
        min_early_stopping_rate: ``s`` >= 0, shifts the first rung to ``r * eta ** s``.
        bootstrap_count: a rung with at most this many competitors prunes them.
        cost_names: costs (:func:`trial_costs`) that are minimised objectives.
        max_resource: ``R`` in steps, the last step of a complete trial; ``None``: unbounded.
        direction: direction of the curve (``"maximize"`` for accuracy).
        min_epochs: ``r`` in epochs trained; give exactly one of it and ``min_resource``.
        max_epochs: ``R`` in epochs trained, with ``min_epochs``.
    """

    def __init__(
        self,
        min_resource: int | None = None,
        reduction_factor: int = 3,
        min_early_stopping_rate: int = 0,
        bootstrap_count: int = 0,
        cost_names: Sequence[str] = ("flops",),
        max_resource: int | None = None,
        direction: str | StudyDirection = "maximize",
        *,
        min_epochs: int | None = None,
        max_epochs: int | None = None,
    ) -> None:
        super().__init__(cost_names, direction)
        if (min_resource is None) == (min_epochs is None):
            raise ValueError(
                "give exactly one of min_resource (steps, as Optuna's SuccessiveHalvingPruner) "
                "and min_epochs (epochs trained, last step + 1)."
            )
        if (min_resource is None and max_resource is not None) or (
            min_epochs is None and max_epochs is not None
        ):
            raise ValueError("max_resource goes with min_resource, max_epochs with min_epochs.")
        self.min_resource, self.max_resource = min_resource, max_resource
        self.min_epochs, self.max_epochs = min_epochs, max_epochs
        self.reduction_factor = reduction_factor
        self.min_early_stopping_rate = min_early_stopping_rate
        self.bootstrap_count = bootstrap_count
        r, budget = (min_resource, max_resource) if min_epochs is None else (min_epochs, max_epochs)
        first = "min_resource" if min_epochs is None else "min_epochs"
        _require_at_least(
            **{first: (r, 1)},
            reduction_factor=(reduction_factor, 2),
            min_early_stopping_rate=(min_early_stopping_rate, 0),
            bootstrap_count=(bootstrap_count, 0),
        )
        self._r = r
        self._n_rungs = (
            None
            if budget is None
            else len(asha_rungs(r, reduction_factor, budget, min_early_stopping_rate))
        )
        if self._n_rungs == 0:
            unit = "max_resource" if min_epochs is None else "max_epochs"
            raise ValueError(
                f"{unit}={budget} leaves MO-ASHA no rung: the first rung "
                f"({self.rung_resource(0)}) times reduction_factor={reduction_factor} must be "
                f"<= {unit}; lower the first rung, reduction_factor or min_early_stopping_rate, "
                "or train longer."
            )

    def rung_resource(self, rung: int) -> int:
        """Resource (steps, or epochs trained with ``min_epochs``) at which ``rung`` is reached."""
        return self._r * self.reduction_factor ** (self.min_early_stopping_rate + rung)

    def n_rungs(self) -> int | None:
        """Number of deciding rungs; ``None`` (unbounded) without a maximum resource."""
        return self._n_rungs

    def _reached(self, step: int, rung: int) -> bool:
        resource = step if self.min_epochs is None else step + 1
        decides = self._n_rungs is None or rung < self._n_rungs
        return decides and resource >= self.rung_resource(rung)

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        if step is None:
            return False
        rung = _current_rung(trial)
        value = trial.intermediate_values[step]
        others: list[FrozenTrial] | None = None
        while self._reached(step, rung):
            if math.isnan(value):
                return True
            key = schema.moasha_rung_key(rung)
            _storage(study).set_trial_system_attr(_trial_id(trial), key, value)
            if others is None:
                others = [t for t in study.get_trials(deepcopy=False) if t.number != trial.number]
            competing = [t for t in others if key in t.system_attrs]
            if len(competing) + 1 <= self.bootstrap_count:
                return True
            rows = [[-self._sign() * value, *trial_costs(trial, self.cost_names)]]
            rows += [
                [-self._sign() * t.system_attrs[key], *trial_costs(t, self.cost_names)]
                for t in competing
            ]
            numbers = [trial.number, *(t.number for t in competing)]
            if not _continues(np.asarray(rows, dtype=float), numbers, self.reduction_factor):
                return True
            rung += 1
        return False


# --------------------------------------------------------------------------------------------
# Decisions and finishing.
# --------------------------------------------------------------------------------------------


def should_prune(trial: Trial, pruner: BasePruner | None = None) -> bool:
    """Whether ``trial`` should stop, for studies with any number of directions.

    ``pruner`` defaults to the study's. Single-objective studies with the study's pruner use
    ``trial.should_prune()``; otherwise ``pruner.prune`` sees the trial as stored. In
    multi-objective studies only this module's pruners (and ``NopPruner``) are accepted, since
    Optuna's own pruners read ``study.direction``, which such studies do not have.
    """
    study = trial.study
    pruner = study.pruner if pruner is None else pruner
    if len(study.directions) == 1 and pruner is study.pruner:
        return trial.should_prune()
    if len(study.directions) > 1 and not isinstance(
        pruner, (_CostAwarePruner, NopPruner, AutoRungPruner)
    ):
        raise ValueError(
            f"{type(pruner).__name__} cannot prune a multi-objective study; pass "
            "pruner=ParetoPercentilePruner(...) or MOASHAPruner(...) (or NopPruner()) to "
            "optuna.create_study or to should_prune / PruningCallback."
        )
    if isinstance(pruner, NopPruner):  # never prunes: skip reading the trial back
        return False
    storage, trial_id = _storage(study), _trial_id(trial)
    return pruner.prune(study, storage.get_trial(trial_id))


def finish_pruned(study: optuna.Study, trial: Trial, values: Sequence[float]) -> FrozenTrial:
    """Finish a running ``trial`` as PRUNED and keep its partial ``values``.

    ``study.tell`` refuses values for PRUNED trials, yet the accuracy at the pruning epoch and the
    costs are worth keeping in a multi-objective study. This does what ``tell`` does (the
    sampler's ``after_trial``, then the state through the storage) with ``values`` stored, and
    sets :data:`nas.trial_schema.PRUNED_AT_EPOCH` to the last recorded epoch. PRUNED trials
    never enter ``study.best_trials`` (complete trials only) nor NSGA-II's populations; TPE
    ranks them by their curves (see :class:`CurveAwareTPESampler`). Use it in an ask-and-tell
    loop: inside ``study.optimize`` the trial is told again after the objective returns, which
    fails.
    """
    values = [float(v) for v in values]
    if len(values) != len(study.directions) or not all(math.isfinite(v) for v in values):
        raise ValueError(
            f"values must be {len(study.directions)} finite floats (one per study direction), "
            f"got {values}."
        )
    storage, trial_id = _storage(study), _trial_id(trial)
    frozen = storage.get_trial(trial_id)
    if frozen.state != TrialState.RUNNING:
        raise ValueError(f"trial {frozen.number} is {frozen.state.name}, not RUNNING.")
    if frozen.last_step is not None:
        schema.PRUNED_AT_EPOCH.set_stored(study, frozen, frozen.last_step)
        frozen = storage.get_trial(trial_id)
    try:
        study.sampler.after_trial(study, frozen, TrialState.PRUNED, values)
    finally:
        storage.set_trial_state_values(trial_id, TrialState.PRUNED, values)
    return storage.get_trial(trial_id)


class _CurveDirectionStudy(optuna.Study):
    """The same study, seen through a ``direction`` equal to the curve's direction."""

    def __init__(self, study: optuna.Study, curve_direction: StudyDirection) -> None:
        super().__init__(
            study_name=study.study_name,
            storage=_storage(study),
            sampler=study.sampler,
            pruner=study.pruner,
        )
        self._curve_direction = curve_direction

    @property
    def direction(self) -> StudyDirection:
        return self._curve_direction


class CurveAwareTPESampler(optuna.samplers.TPESampler):
    """TPESampler that ranks pruned trials of a multi-objective study by their curves.

    In Optuna 5.0 the multi-objective TPE crashes (``RuntimeError`` from ``study.direction``)
    as soon as a PRUNED trial has intermediate values, which every trial pruned with this module
    has. For pruned trials TPE only needs the direction of the curve: it ranks them by (latest
    epoch, value there), Optuna's single-objective rule. This sampler hands TPE a view of the
    study whose ``direction`` is ``curve_direction``; complete trials are still ranked by
    Pareto rank on all objectives. All other arguments are TPESampler's.
    """

    def __init__(self, *args: Any, curve_direction: str = "maximize", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.curve_direction = as_direction(curve_direction, "curve_direction")

    def _view(self, study: optuna.Study) -> optuna.Study:
        if len(study.directions) == 1:
            return study
        return _CurveDirectionStudy(study, self.curve_direction)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, Any]
    ) -> dict[str, Any]:
        return super().sample_relative(self._view(study), trial, search_space)

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: Any
    ) -> Any:
        return super().sample_independent(self._view(study), trial, param_name, param_distribution)


class PruningAwareNSGAIISampler(optuna.samplers.NSGAIISampler):
    """NSGAIISampler whose generations count pruned trials, ranked by their partial values.

    Optuna closes a generation only once it holds ``population_size`` COMPLETE trials, so under a
    pruner that stops half the trials NSGA-II keeps sampling its random first generation (on
    our search-efficiency problems it reached generation 1 at best in 40 trials). Here a trial
    pruned with its partial values (:func:`finish_pruned`: multi-objective studies) is a member
    of its generation like a complete one, and competes for parenthood by the values it
    reached: its accuracy when it was stopped, its costs. Pruned trials without values
    (single-objective studies) are left out, as Optuna leaves them out. With no pruned trial it
    samples exactly as NSGAIISampler with the same arguments, and it reads and writes the
    generations under NSGAIISampler's keys, so a study searched with either resumes with the
    other. All arguments are NSGAIISampler's.
    """

    @classmethod
    def _get_generation_key(cls) -> str:
        return optuna.samplers.NSGAIISampler._get_generation_key()

    @classmethod
    def _get_parent_cache_key_prefix(cls) -> str:
        return optuna.samplers.NSGAIISampler._get_parent_cache_key_prefix()

    def _members(self, study: optuna.Study) -> list[FrozenTrial]:
        key = self._get_generation_key()
        return [
            t
            for t in study.get_trials(
                deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)
            )
            if t.values is not None and key in t.system_attrs
        ]

    def get_trial_generation(self, study: optuna.Study, trial: FrozenTrial) -> int:
        key = self._get_generation_key()
        if key in trial.system_attrs:
            return trial.system_attrs[key]
        generations = [t.system_attrs[key] for t in self._members(study)]
        latest = max(generations, default=0)
        generation = latest + 1 if generations.count(latest) >= self.population_size else latest
        _storage(study).set_trial_system_attr(_trial_id(trial), key, generation)
        return generation

    def get_population(self, study: optuna.Study, generation: int) -> list[FrozenTrial]:
        key = self._get_generation_key()
        return [t for t in self._members(study) if t.system_attrs[key] == generation]


# --------------------------------------------------------------------------------------------
# Lightning.
# --------------------------------------------------------------------------------------------


class PruningCallback(pl.Callback):
    """Record the monitored metric each validation epoch and stop the trial when pruned.

    After every (non sanity-check) validation the metric ``monitor`` is stored with
    :func:`record_epoch` at ``trainer.current_epoch`` and :func:`should_prune` is asked; on
    pruning the trainer is told to stop and ``optuna.TrialPruned`` is raised, which Lightning
    re-raises out of ``trainer.fit``, as optuna-integration's PyTorchLightningPruningCallback
    does. After the trainer's last epoch (``max_epochs``) the value is recorded but no pruner is
    asked: pruning then saves no training and would only drop a finished result. ``pruner``
    defaults to the study's. Single-process training only: under DDP the decision would need a
    broadcast from rank 0.
    """

    def __init__(
        self, trial: Trial, monitor: str = "val_acc", pruner: BasePruner | None = None
    ) -> None:
        super().__init__()
        self.trial = trial
        self.monitor = monitor
        self.pruner = pruner

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            warnings.warn(
                f"PruningCallback: metric {self.monitor!r} was not logged; log it with "
                f"self.log({self.monitor!r}, ...) in validation_step or change monitor.",
                stacklevel=2,
            )
            return
        epoch = trainer.current_epoch
        record_epoch(self.trial, epoch, float(value))
        last_epoch = trainer.max_epochs not in (None, -1) and epoch + 1 >= trainer.max_epochs
        if not last_epoch and should_prune(self.trial, self.pruner):
            trainer.should_stop = True
            raise optuna.TrialPruned(f"Trial {self.trial.number} was pruned at epoch {epoch}.")
