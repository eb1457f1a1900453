"""Early stopping for multi-objective studies: curves in the storage, cost-aware pruners.

Optuna refuses ``Trial.report`` and ``Trial.should_prune`` when a study has several directions,
so it cannot prune multi-objective studies. Our studies maximise validation accuracy and minimise
costs (FLOPs, params, latency) that are known before training: only accuracy evolves per epoch.
Convention shared with the study engine: before training, a trial stores its costs with
``trial.set_user_attr("cost", {"flops": ..., "params": ...})`` and the pruner is told which cost
names are objectives. This module provides

* :func:`record_epoch`: stores the accuracy curve as the trial's intermediate values, for any
  number of directions (``FrozenTrial.intermediate_values``, optuna-dashboard curves);
* :class:`ParetoPercentilePruner` and :class:`MOASHAPruner`: pruners that compare a trial only
  with trials that do not cost more (percentile rule) or by non-dominated sorting (MO-ASHA);
* :func:`should_prune`: the pruning decision for single- and multi-objective studies;
* :func:`finish_pruned`: finishes a pruned trial as PRUNED while keeping its partial values;
* :class:`CurveAwareTPESampler`: TPE that does not crash on pruned multi-objective trials;
* :class:`PruningCallback`: the Lightning callback tying it together;
* :func:`non_dominated_sort` and :func:`crowding_distance` (NSGA-II, Deb et al. 2002).

Epochs are 0-based indices (``trainer.current_epoch``), Optuna's step convention.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import lightning.pytorch as pl
import numpy as np
import optuna
from optuna.pruners import BasePruner, NopPruner
from optuna.storages import BaseStorage
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, Trial, TrialState

COST_ATTR = "cost"
PRUNED_AT_EPOCH_ATTR = "pruned_at_epoch"
_PEER_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)


# Optuna exposes no public accessor for a study's storage or a trial's storage id (its own
# pruners and ``Study.tell`` read ``study._storage`` and ``trial._trial_id``); these two
# functions are the only private accesses in the module.
def _storage(study: optuna.Study) -> BaseStorage:
    return study._storage


def _trial_id(trial: Trial | FrozenTrial) -> int:
    return trial._trial_id


def _direction(value: str | StudyDirection, field: str) -> StudyDirection:
    if isinstance(value, StudyDirection):
        return value
    if value in ("maximize", "minimize"):
        return StudyDirection.MAXIMIZE if value == "maximize" else StudyDirection.MINIMIZE
    raise ValueError(f"{field} must be 'maximize' or 'minimize', got {value!r}.")


# --------------------------------------------------------------------------------------------
# Pareto ranking (NSGA-II, Deb et al., "A fast and elitist multiobjective genetic algorithm:
# NSGA-II", IEEE TEC 2002).
# --------------------------------------------------------------------------------------------


def _as_loss(points: np.ndarray, directions: Sequence[str | StudyDirection]) -> np.ndarray:
    """Points as an (n, m) float array in which every column is minimised."""
    array = np.asarray(points, dtype=float)
    if array.ndim != 2 or array.shape[1] != len(directions):
        raise ValueError(
            f"points must have shape (n, {len(directions)}) to match directions, got {array.shape}."
        )
    if np.isnan(array).any():
        raise ValueError("points contain NaN; drop or replace those rows before ranking.")
    signs = [
        -1.0 if _direction(d, "directions") == StudyDirection.MAXIMIZE else 1.0 for d in directions
    ]
    return array * np.asarray(signs)


def non_dominated_sort(
    points: np.ndarray | Sequence[Sequence[float]],
    directions: Sequence[str | StudyDirection],
) -> list[list[int]]:
    """Pareto fronts of ``points`` (rows), best front first, each a sorted list of row indices.

    Point ``a`` dominates ``b`` when it is no worse in every objective and strictly better in
    one; front 0 holds the non-dominated points, front k those dominated only by fronts < k.
    Identical points share a front. O(n^2 m) memory and time with numpy.
    """
    loss = _as_loss(np.asarray(points, dtype=float), directions)
    no_worse = (loss[:, None, :] <= loss[None, :, :]).all(axis=2)
    better = (loss[:, None, :] < loss[None, :, :]).any(axis=2)
    dominates = no_worse & better  # dominates[i, j]: i dominates j
    remaining = np.ones(len(loss), dtype=bool)
    fronts = []
    while remaining.any():
        dominated = (dominates & remaining[:, None]).any(axis=0)
        front = remaining & ~dominated
        fronts.append(np.flatnonzero(front).tolist())
        remaining &= ~front
    return fronts


def crowding_distance(points: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    """NSGA-II crowding distance of each point (row) within one front.

    For every objective the points are sorted; the two extremes get ``inf`` and every other
    point adds the gap between its two neighbours divided by the objective's range (an objective
    with zero range adds nothing). Larger means lonelier, i.e. preferred when thinning a front.
    Direction does not matter: the distance is symmetric.
    """
    array = np.asarray(points, dtype=float)
    if array.ndim != 2:
        raise ValueError(f"points must be a 2-D array (n, m), got shape {array.shape}.")
    n_points = len(array)
    distance = np.zeros(n_points)
    if n_points <= 2:
        distance[:] = np.inf
        return distance
    for column in array.T:
        order = np.argsort(column, kind="stable")
        span = column[order[-1]] - column[order[0]]
        distance[order[0]] = distance[order[-1]] = np.inf
        if span > 0:
            distance[order[1:-1]] += (column[order[2:]] - column[order[:-2]]) / span
    return distance


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
    """The trial's costs named ``cost_names`` from its ``"cost"`` user attr, in that order."""
    costs = trial.user_attrs.get(COST_ATTR)
    if not isinstance(costs, Mapping) or any(name not in costs for name in cost_names):
        raise ValueError(
            f"trial {trial.number} has cost user attr {costs!r} but the pruner needs "
            f"{list(cost_names)}: call trial.set_user_attr({COST_ATTR!r}, {{...}}) with these "
            "names before training, or change cost_names."
        )
    return np.array([float(costs[name]) for name in cost_names], dtype=float)


class _CostAwarePruner(BasePruner):
    """Shared arguments of the pruners below; they accept studies with any number of directions.

    The curve (intermediate values) is the one objective that evolves during training; its
    direction is ``direction``. Costs are minimised and read from the ``"cost"`` user attr.
    """

    def __init__(self, cost_names: Sequence[str], direction: str) -> None:
        if isinstance(cost_names, str):
            raise ValueError(
                f"cost_names must be a sequence of names, got the string {cost_names!r}; "
                f"write ({cost_names!r},)."
            )
        self.cost_names = tuple(cost_names)
        self.direction = _direction(direction, "direction")

    def _curve_sign(self) -> float:
        """+1 when larger curve values are better, so ``sign * value`` is always maximised."""
        return 1.0 if self.direction == StudyDirection.MAXIMIZE else -1.0


# --------------------------------------------------------------------------------------------
# Pruners.
# --------------------------------------------------------------------------------------------


class ParetoPercentilePruner(_CostAwarePruner):
    """Percentile rule among trials that cost no more: the multi-objective PercentilePruner.

    At a checked epoch ``t`` the *peers* of a trial are the other COMPLETE, PRUNED or RUNNING
    trials that reported epoch ``t`` and cost no more than it on every cost in ``cost_names``.
    The trial is pruned when its value at ``t`` is worse than the peers' ``100 - percentile``
    percentile (for a maximised curve), i.e. when it is not in the top ``percentile`` % of its
    peers, the semantics of Optuna's ``PercentilePruner`` (``percentile=50`` is the median rule
    of ``MedianPruner``; Golovin et al., "Google Vizier", KDD 2017).

    Restricting the peers to cheaper-or-equal trials is the natural multi-objective
    generalisation: a trial is only pruned when trials that are no more expensive do better at
    the same epoch, so it is (provisionally) dominated; a cheap trial on the Pareto front is
    never pruned by expensive, more accurate ones. With ``cost_names=()`` this is Optuna's
    percentile rule with all reporting trials as peers.

    Differences from Optuna's ``PercentilePruner``: peers include pruned and running trials
    (Optuna uses completed ones only), and the trial's own value at ``t`` is compared (Optuna
    uses its best value so far). As in Optuna, a NaN value prunes.

    Args:
        percentile: top percentage of the peers that survives, in [0, 100].
        cost_names: keys of the ``"cost"`` user attr that are minimised objectives.
        n_startup_trials: no pruning until this many trials have COMPLETE state.
        n_warmup_epochs: no pruning before this epoch (epochs are 0-based).
        interval_epochs: check at the first reported epoch at or after each
            ``n_warmup_epochs + k * interval_epochs``.
        n_min_peers: no pruning when fewer peers reported the epoch.
        direction: direction of the curve (``"maximize"`` for accuracy).
    """

    def __init__(
        self,
        percentile: float = 50.0,
        cost_names: Sequence[str] = ("flops",),
        n_startup_trials: int = 4,
        n_warmup_epochs: int = 1,
        interval_epochs: int = 1,
        n_min_peers: int = 3,
        direction: str = "maximize",
    ) -> None:
        super().__init__(cost_names, direction)
        if not 0.0 <= percentile <= 100.0:
            raise ValueError(f"percentile must be in [0, 100], got {percentile}.")
        for name, value, low in (
            ("n_startup_trials", n_startup_trials, 0),
            ("n_warmup_epochs", n_warmup_epochs, 0),
            ("interval_epochs", interval_epochs, 1),
            ("n_min_peers", n_min_peers, 1),
        ):
            if value < low:
                raise ValueError(f"{name} must be >= {low}, got {value}.")
        self.percentile = percentile
        self.n_startup_trials = n_startup_trials
        self.n_warmup_epochs = n_warmup_epochs
        self.interval_epochs = interval_epochs
        self.n_min_peers = n_min_peers

    def _is_check_epoch(self, trial: FrozenTrial, epoch: int) -> bool:
        """True at the first reported epoch at or after a point of the checking grid."""
        if epoch < self.n_warmup_epochs:
            return False
        offset = (epoch - self.n_warmup_epochs) // self.interval_epochs * self.interval_epochs
        grid_point = self.n_warmup_epochs + offset
        earlier = [step for step in trial.intermediate_values if step < epoch]
        return not earlier or max(earlier) < grid_point

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        epoch = trial.last_step
        if epoch is None or not self._is_check_epoch(trial, epoch):
            return False
        trials = study.get_trials(deepcopy=False, states=_PEER_STATES)
        n_complete = sum(t.state == TrialState.COMPLETE for t in trials)
        if n_complete < self.n_startup_trials:
            return False
        value = trial.intermediate_values[epoch]
        if math.isnan(value):
            return True
        costs = trial_costs(trial, self.cost_names)
        peer_values = [
            t.intermediate_values[epoch]
            for t in trials
            if t.number != trial.number
            and epoch in t.intermediate_values
            and not math.isnan(t.intermediate_values[epoch])
            and (trial_costs(t, self.cost_names) <= costs).all()
        ]
        if len(peer_values) < self.n_min_peers:
            return False
        sign = self._curve_sign()
        threshold = np.percentile(sign * np.asarray(peer_values), 100.0 - self.percentile)
        return bool(sign * value < threshold)


def _rung_key(rung: int) -> str:
    return f"moasha:completed_rung_{rung}"


def asha_rungs(
    min_epochs: int, reduction_factor: int, max_epochs: int, min_early_stopping_rate: int = 0
) -> list[int]:
    """Epochs after which ASHA decides, for trials of ``max_epochs``: ``r * eta ** (s + k)`` for
    each ``k`` with ``r * eta ** (s + k + 1) <= R`` (Li et al., Algorithm 2). Empty where the
    budget leaves no rung: a trial promoted from the first would need more than ``R`` epochs."""
    rungs = []
    epochs = min_epochs * reduction_factor**min_early_stopping_rate
    while epochs * reduction_factor <= max_epochs:
        rungs.append(epochs)
        epochs *= reduction_factor
    return rungs


class MOASHAPruner(_CostAwarePruner):
    """Multi-objective asynchronous successive halving (MO-ASHA).

    Schmucker et al., "Multi-objective Asynchronous Successive Halving", arXiv:2106.12639
    (2021), on top of ASHA (Li et al., "A System for Massively Parallel Hyperparameter Tuning",
    MLSys 2020). Rung ``k`` is reached once ``min_epochs * reduction_factor ** (s + k)`` epochs
    are trained (``s = min_early_stopping_rate``; after 0-based epoch ``e``, ``e + 1`` epochs are
    trained). On reaching a rung the trial stores its curve value there in the system attr
    ``moasha:completed_rung_k`` (Optuna's SuccessiveHalvingPruner does the same), so every
    decision can be recomputed from the storage: rung values in system attrs, costs in the
    ``"cost"`` user attr. The competitors are all trials that stored rung ``k``, the trial
    included. With ``n`` competitors and ``eta = reduction_factor``:

    * ``n // eta >= 1``: competitors are ranked by non-dominated sorting on (curve value at the
      rung, costs) and the best ``n // eta`` continue. The front that does not fit whole is
      thinned by NSGA-II crowding distance (larger first; the paper also studies an epsilon-net,
      we take the NSGA-II variant), ties broken by the lower trial number. This is ASHA's "top
      ``n / eta``" rule with the Pareto rank in place of the scalar order.
    * ``n // eta == 0`` (too few competitors): ASHA would wait; Optuna cannot pause a trial, so,
      like Optuna's SuccessiveHalvingPruner which then promotes the best trial so far, the trial
      continues iff it is non-dominated among the competitors. The first trial at a rung always
      continues.

    A promoted trial is checked again at the next rung in the same call if it already trained
    that long. A NaN value at a rung prunes.

    With ``max_epochs`` (``R``, the epochs a complete trial trains) the rungs are ASHA's: rung
    ``k`` decides only while ``r * eta ** (s + k + 1) <= R``, i.e. for ``s + k`` below
    ``s_max = floor(log_eta(R / r))``, and a trial promoted from the last of them trains to ``R``
    (Li et al., Algorithm 2). For ``R = 5, r = 1, eta = 3`` that is one rung, after 1 epoch: a
    rung after 3 of 5 epochs would cut the complete trials by another factor ``eta`` to save 2
    epochs each. Without ``max_epochs`` rungs go on geometrically, as in Optuna's
    SuccessiveHalvingPruner.

    Args:
        min_epochs: epochs trained at the first rung (``r`` in the paper).
        reduction_factor: ``eta`` >= 2.
        cost_names: keys of the ``"cost"`` user attr that are minimised objectives.
        min_early_stopping_rate: ``s`` >= 0, shifts the first rung to ``r * eta ** s``.
        direction: direction of the curve (``"maximize"`` for accuracy).
        max_epochs: ``R``, epochs of a complete trial; ``None`` leaves the rungs unbounded.
    """

    def __init__(
        self,
        min_epochs: int = 1,
        reduction_factor: int = 3,
        cost_names: Sequence[str] = ("flops",),
        min_early_stopping_rate: int = 0,
        direction: str = "maximize",
        max_epochs: int | None = None,
    ) -> None:
        super().__init__(cost_names, direction)
        if min_epochs < 1:
            raise ValueError(f"min_epochs must be >= 1, got {min_epochs}.")
        if reduction_factor < 2:
            raise ValueError(f"reduction_factor must be >= 2, got {reduction_factor}.")
        if min_early_stopping_rate < 0:
            raise ValueError(
                f"min_early_stopping_rate must be >= 0, got {min_early_stopping_rate}."
            )
        self.min_epochs = min_epochs
        self.reduction_factor = reduction_factor
        self.min_early_stopping_rate = min_early_stopping_rate
        self.max_epochs = max_epochs
        self._n_rungs = (
            None
            if max_epochs is None
            else len(asha_rungs(min_epochs, reduction_factor, max_epochs, min_early_stopping_rate))
        )
        if self._n_rungs == 0:
            raise ValueError(
                f"max_epochs={max_epochs} leaves MO-ASHA no rung: the first rung "
                f"({self.rung_epochs(0)} epochs) times reduction_factor={reduction_factor} must "
                f"be <= max_epochs; lower min_epochs, reduction_factor or "
                "min_early_stopping_rate, or train longer."
            )

    def rung_epochs(self, rung: int) -> int:
        """Number of trained epochs at which rung ``rung`` (0-based) is reached."""
        return self.min_epochs * self.reduction_factor ** (self.min_early_stopping_rate + rung)

    def n_rungs(self) -> int | None:
        """Number of deciding rungs, ``s_max - s``; ``None`` (unbounded) without max_epochs."""
        return self._n_rungs

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        epoch = trial.last_step
        if epoch is None:
            return False
        storage, trial_id = _storage(study), _trial_id(trial)
        system_attrs = storage.get_trial_system_attrs(trial_id)
        rung = 0
        while _rung_key(rung) in system_attrs:
            rung += 1
        value = trial.intermediate_values[epoch]
        costs = trial_costs(trial, self.cost_names)
        n_rungs = self._n_rungs
        while epoch + 1 >= self.rung_epochs(rung) and (n_rungs is None or rung < n_rungs):
            if math.isnan(value):
                return True
            key = _rung_key(rung)
            storage.set_trial_system_attr(trial_id, key, value)
            others = [
                t
                for t in study.get_trials(deepcopy=False)
                if key in t.system_attrs and t.number != trial.number
            ]
            rows = [[self._curve_sign() * value, *costs]]
            rows += [
                [self._curve_sign() * t.system_attrs[key], *trial_costs(t, self.cost_names)]
                for t in others
            ]
            numbers = [trial.number] + [t.number for t in others]
            if 0 not in self._promoted(np.asarray(rows), numbers):
                return True
            rung += 1
        return False

    def _promoted(self, rows: np.ndarray, numbers: Sequence[int]) -> set[int]:
        """Row indices that continue; rows are (sign * value, costs...); numbers break ties."""
        directions = ["maximize"] + ["minimize"] * len(self.cost_names)
        fronts = non_dominated_sort(rows, directions)
        n_promoted = len(rows) // self.reduction_factor
        if n_promoted == 0:
            return set(fronts[0])
        promoted: list[int] = []
        for front in fronts:
            if len(promoted) + len(front) <= n_promoted:
                promoted += front
                continue
            crowding = crowding_distance(rows[front])
            order = sorted(range(len(front)), key=lambda i: (-crowding[i], numbers[front[i]]))
            promoted += [front[i] for i in order[: n_promoted - len(promoted)]]
            break
        return set(promoted)


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
    if len(study.directions) > 1 and not isinstance(pruner, (_CostAwarePruner, NopPruner)):
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
    sets the user attr ``pruned_at_epoch`` to the last recorded epoch. PRUNED trials never enter
    ``study.best_trials`` (complete trials only) nor NSGA-II's populations; TPE ranks them by
    their curves (see :class:`CurveAwareTPESampler`). Use it in an ask-and-tell loop: inside
    ``study.optimize`` the trial is told again after the objective returns, which fails.
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
        storage.set_trial_user_attr(trial_id, PRUNED_AT_EPOCH_ATTR, frozen.last_step)
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
        self.curve_direction = _direction(curve_direction, "curve_direction")

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
