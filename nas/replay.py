"""Replaying searches on a table: any Optuna sampler and pruner, answered from stored runs.

:class:`ReplayObjective` is the engine's objective with the training taken out: it samples the
architecture as a real trial does (``suggest_arch`` over the table's space), stores the same
trial attrs (the spec, digest, summary, seed, costs), reports one stored run's validation curve
epoch by epoch through :func:`nas.pruning.record_epoch`, asks the pruner after each epoch as the
Lightning callback does, and returns that run's values, or the partial ones where the pruner
stops it. Each trial draws which seed's run it sees (``seeding="per_trial"``: from ``(seed,
trial number)``; ``"common"``: one run per search, as a study with common random numbers sees
one seed), so a replayed search meets the noise a real one does. A repeated architecture reuses the
first trial's outcome and costs nothing, as in the engine. The epochs and seconds a trial would
have trained are stored with it (``epochs_run``, ``train_seconds``).

:func:`replay_search` runs one search (an in-memory study, the worker's ask-and-tell loop),
:func:`replay_config` the search a study config describes;
:func:`true_front_share` and :func:`reports_best` score what a search reports against the
table's seed means, the truth a single run only estimates.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import optuna
from optuna.trial import TrialState

from search_spaces.space import baselines as space_baselines
from search_spaces.space import suggest_arch

from . import trial_schema as schema
from .config import StudyConfig
from .objective import TrialOutcome
from .pareto import front_trials, hypervolume, non_dominated_sort
from .pruning import record_epoch, should_prune
from .study import make_pruner, make_sampler
from .tabular import Table, TableArch, TableRun
from .worker import tell_outcome

Seeding = Literal["per_trial", "common"]


class ReplayObjective:
    """The objective of a replayed search (module docstring). Use :meth:`run` in an ask-and-tell
    loop (:func:`replay_search`), or the instance itself with ``study.optimize``, where a pruned
    trial raises ``optuna.TrialPruned`` (in multi-objective studies its partial values are then
    lost, as Optuna's own loop drops them)."""

    def __init__(
        self,
        table: Table,
        *,
        seed: int = 0,
        seeding: Seeding = "per_trial",
        pruner: optuna.pruners.BasePruner | None = None,
    ) -> None:
        if seeding not in ("per_trial", "common"):
            raise ValueError(f"seeding must be 'per_trial' or 'common', got {seeding!r}")
        self.table = table
        self.seed = seed
        self.seeding = seeding
        self.pruner = pruner
        self._digests: dict[str, TableArch] = table.by_digest()
        self._common = int(np.random.default_rng((seed, 0xC0)).integers(len(table.seeds)))

    def replicate(self, trial_number: int) -> int:
        """Which of the table's seeds the trial's run comes from."""
        if self.seeding == "common":
            return self._common
        return int(np.random.default_rng((self.seed, trial_number)).integers(len(self.table.seeds)))

    def run(self, trial: optuna.Trial) -> TrialOutcome:
        table = self.table
        spec = suggest_arch(
            trial, table.space, in_channels=table.in_channels, num_classes=table.num_classes
        )
        digest = spec.digest()
        arch = self._digests.get(digest) or table.lookup(digest, spec.summary())
        schema.ARCH.set(trial, spec.to_dict())
        schema.DIGEST.set(trial, digest)
        schema.SUMMARY.set(trial, arch.summary)
        duplicate = _earlier(trial, digest)
        if duplicate is not None:
            self._set_constraints(trial, arch)
            return _reuse(trial, duplicate)
        run = _run_for(arch, self.replicate(trial.number))
        schema.SEED.set(trial, run.seed)
        schema.COST.set(trial, dict(arch.cost))
        if table.val_size:  # as the engine records it: what each accuracy was measured on
            schema.VAL_SIZE.set(trial, table.val_size)
        self._set_constraints(trial, arch)
        pruner = trial.study.pruner if self.pruner is None else self.pruner
        if schema.BASELINE.has(trial):  # references train their full epochs, as in the engine
            pruner = optuna.pruners.NopPruner()
        curve = run.val_acc
        for epoch, value in enumerate(curve):
            record_epoch(trial, epoch, value)
            if epoch + 1 < len(curve) and should_prune(trial, pruner):
                _charge(trial, run, epoch + 1)
                return TrialOutcome(TrialState.PRUNED, table.objective_values(arch, value))
        _charge(trial, run, len(curve))
        return TrialOutcome(TrialState.COMPLETE, table.objective_values(arch, curve[-1]))

    def _set_constraints(self, trial: optuna.Trial, arch: TableArch) -> None:
        for name, cap in self.table.config.objectives.constraints.items():
            trial.set_constraint(name, float(arch.cost[name]) - cap)  # feasible when <= 0

    def __call__(self, trial: optuna.Trial) -> float | list[float]:
        outcome = self.run(trial)
        if outcome.state == TrialState.PRUNED:
            raise optuna.TrialPruned(f"trial {trial.number} pruned on the table's curve")
        values = outcome.values or []
        return values[0] if len(values) == 1 else values


def _run_for(arch: TableArch, replicate: int) -> TableRun:
    """The architecture's run of that seed; in a table still being built, one it has."""
    for run in arch.runs:
        if run.replicate == replicate:
            return run
    return arch.runs[replicate % len(arch.runs)]


def _charge(trial: optuna.Trial, run: TableRun, epochs: int) -> None:
    """Store the training the trial stands for: its epochs and their share of the run's
    seconds."""
    schema.EPOCHS_RUN.set(trial, epochs)
    share = epochs / len(run.val_acc)
    schema.TRAIN_SECONDS.set(trial, run.train_seconds * share)
    schema.CPU_SECONDS.set(trial, run.cpu_seconds * share)


def _earlier(trial: optuna.Trial, digest: str) -> optuna.trial.FrozenTrial | None:
    finished = (TrialState.COMPLETE, TrialState.PRUNED)
    for t in trial.study.get_trials(deepcopy=False, states=finished):
        if t.number < trial.number and schema.DIGEST.get(t) == digest:
            return t
    return None


def _reuse(trial: optuna.Trial, duplicate: optuna.trial.FrozenTrial) -> TrialOutcome:
    """A repeated architecture: the earlier trial's outcome, curve and costs, no training."""
    schema.DUPLICATE_OF.set(trial, duplicate.number)
    for attr in (schema.SEED, schema.COST):
        if attr.has(duplicate):
            attr.set(trial, attr.get(duplicate))
    for epoch, value in sorted(duplicate.intermediate_values.items()):
        record_epoch(trial, epoch, value)
    schema.EPOCHS_RUN.set(trial, 0)
    schema.TRAIN_SECONDS.set(trial, 0.0)
    schema.CPU_SECONDS.set(trial, 0.0)
    return TrialOutcome(duplicate.state, list(duplicate.values) if duplicate.values else None)


@dataclass(frozen=True)
class ReplayResult:
    """One replayed search: its study and what it cost, trial by trial."""

    study: optuna.Study
    epochs: list[int]  #: training epochs each trial stood for (0: a duplicate)
    seconds: list[float]  #: training seconds each trial stood for


def replay_search(
    table: Table,
    sampler: optuna.samplers.BaseSampler,
    pruner: optuna.pruners.BasePruner | None = None,
    *,
    n_trials: int,
    seed: int = 0,
    seeding: Seeding = "per_trial",
    baselines: bool = False,
    study_name: str | None = None,
) -> ReplayResult:
    """Replay one search of ``n_trials`` trials on the table (in memory, no training), its
    objectives named as the table's study names them. With ``baselines`` the space's baselines
    (``none`` and each block everywhere) come first, never pruned and counted in the budget, as
    a study with ``evaluation.baselines`` runs them."""
    if n_trials > table.space_size:
        raise ValueError(
            f"n_trials={n_trials} exceeds the table's {table.space_size} architectures: a "
            "longer replay measures the sampler's repeats, not the search; use a budget up to "
            f"{table.space_size}"
        )
    study = optuna.create_study(
        directions=table.directions,
        sampler=sampler,
        pruner=pruner or optuna.pruners.NopPruner(),
        study_name=study_name,
    )
    study.set_metric_names(list(table.objectives))
    objective = ReplayObjective(table, seed=seed, seeding=seeding)
    if baselines:
        for name, params in space_baselines(table.space).items():
            study.enqueue_trial(params, user_attrs={schema.BASELINE.key: name})
    epochs, seconds = [], []
    for _ in range(n_trials):
        trial = study.ask()
        outcome = objective.run(trial)
        tell_outcome(study, trial, outcome)
        epochs.append(int(schema.EPOCHS_RUN.get(trial, 0)))
        seconds.append(float(schema.TRAIN_SECONDS.get(trial, 0.0)))
    return ReplayResult(study, epochs, seconds)


def table_costs(table: Table) -> Callable[[dict[str, Any]], list[float]]:
    """The minimised objectives of an architecture from its trial parameters, read from the
    table (what the additive sampler prices candidates with; a real search measures them)."""
    by_params = {repr(sorted(a.params.items())): a for a in table.architectures}

    def costs(params: dict[str, Any]) -> list[float]:
        found = by_params.get(repr(sorted(params.items())))
        if found is None:
            raise ValueError(f"parameters {params} are not an architecture of table {table.name!r}")
        return table.objective_values(found, 0.0)[1:]

    return costs


def replay_config(
    table: Table,
    cfg: StudyConfig,
    *,
    seed: int = 0,
    n_trials: int | None = None,
    seeding: Seeding = "per_trial",
) -> ReplayResult:
    """Replay on the table the search ``nas search`` runs for ``cfg``: the sampler and pruner
    it builds from the config (seeded with ``study.seed``), its baselines first where
    ``evaluation.baselines`` is on, ``study.n_trials`` trials (or ``n_trials``). A config whose
    runs the table does not hold (another space, data, recipe or objectives) is refused with
    the settings that differ."""
    table.check_matches(cfg)
    costs = table_costs(table) if cfg.study.sampler == "additive" else None
    return replay_search(
        table,
        make_sampler(cfg, costs=costs),
        make_pruner(cfg),
        n_trials=n_trials or cfg.study.n_trials,
        seed=seed,
        seeding=seeding,
        baselines=cfg.evaluation.baselines,
        study_name=cfg.study.name,
    )


# -- scores ----------------------------------------------------------------------------------------


def table_reference(table: Table) -> list[float]:
    """The hypervolume reference point of a table: the worst true accuracy and 1.01 x the
    largest cost of its architectures (so that every architecture but the least accurate
    counts, the most expensive too)."""
    points = table.true_points()
    ref = [float(points[:, 0].min())]
    ref += [1.01 * float(points[:, k].max()) for k in range(1, points.shape[1])]
    return ref


def true_hypervolume(table: Table, digests: Sequence[str], reference: Sequence[float]) -> float:
    """Hypervolume of the architectures ``digests`` at their true (seed-mean) values."""
    by_digest = table.by_digest()
    points = [
        table.objective_values(by_digest[d], by_digest[d].mean_val_acc()) for d in set(digests)
    ]
    return hypervolume(points, reference, table.directions) if points else 0.0


def true_front(table: Table) -> list[str]:
    """Digests of the table's true Pareto front (seed means and costs)."""
    points = table.true_points()
    first = non_dominated_sort(points, table.directions)[0]
    return [table.architectures[i].digest for i in first]


def reported_digests(study: optuna.Study, n_trials: int | None = None) -> list[str]:
    """The architectures a search reports after its first ``n_trials`` trials: its Pareto front
    of COMPLETE trials by the values it measured (what ``nas status`` prints)."""
    if n_trials is None:
        return [schema.DIGEST.get(t) for t in front_trials(study)]
    trials = [
        t
        for t in study.get_trials(deepcopy=False)[:n_trials]
        if t.state == TrialState.COMPLETE and t.values is not None
    ]
    if not trials:
        return []
    first = non_dominated_sort([t.values for t in trials], study.directions)[0]
    return [schema.DIGEST.get(trials[i]) for i in first]


def true_front_share(
    table: Table, digests: Sequence[str], reference: Sequence[float] | None = None
) -> float:
    """True hypervolume of ``digests`` as a share of the table's true front's."""
    ref = table_reference(table) if reference is None else list(reference)
    best = true_hypervolume(table, true_front(table), ref)
    return true_hypervolume(table, digests, ref) / best if best > 0 else math.nan


def best_digest(table: Table) -> str:
    """The architecture with the highest true validation accuracy."""
    return max(table.architectures, key=lambda a: (a.mean_val_acc(), -a.index)).digest


def reports_best(table: Table, digests: Sequence[str]) -> bool:
    """Whether the reported architectures include the true most accurate one."""
    return best_digest(table) in set(digests)
