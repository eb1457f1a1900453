"""Replaying searches on a table: the stored curves, the pruner's stops, determinism, scores."""

import itertools

import numpy as np
import optuna
import pytest
from _tables import synthetic_table
from optuna.trial import TrialState

from nas import trial_schema as schema
from nas.pareto import hypervolume
from nas.pruning import MOASHAPruner, PruningAwareNSGAIISampler, _CostAwarePruner
from nas.replay import (
    ReplayObjective,
    best_digest,
    replay_search,
    reported_digests,
    reports_best,
    table_reference,
    true_front,
    true_front_share,
)


@pytest.fixture(scope="module")
def table():
    return synthetic_table()


def test_a_trial_reports_the_stored_curve_and_returns_its_final_values(table):
    study = optuna.create_study(directions=table.directions, pruner=optuna.pruners.NopPruner())
    objective = ReplayObjective(table, seed=7)
    for n in range(5):
        trial = study.ask()
        outcome = objective.run(trial)
        frozen = study._storage.get_trial(trial._trial_id)
        study.tell(trial, outcome.values)
        if schema.DUPLICATE_OF.has(frozen):  # a repeat: the first trial's outcome (tested below)
            continue
        arch = table.by_digest()[schema.DIGEST.get(frozen)]
        run = arch.runs[objective.replicate(n)]
        assert [frozen.intermediate_values[e] for e in range(4)] == list(run.val_acc)
        assert outcome.state == TrialState.COMPLETE
        assert outcome.values == [run.val_acc[-1], arch.cost["params"]]
        assert schema.SEED.get(frozen) == run.seed and schema.COST.get(frozen) == arch.cost
        assert schema.EPOCHS_RUN.get(frozen) == 4 and schema.TRAIN_SECONDS.get(frozen) == 4.0


def test_the_seed_drawn_per_trial_or_once_per_search(table):
    per_trial = ReplayObjective(table, seed=3)
    draws = [per_trial.replicate(n) for n in range(60)]
    assert set(draws) == {0, 1, 2}
    assert draws == [ReplayObjective(table, seed=3).replicate(n) for n in range(60)]
    common = ReplayObjective(table, seed=3, seeding="common")
    assert len({common.replicate(n) for n in range(60)}) == 1
    with pytest.raises(ValueError, match="seeding must be"):
        ReplayObjective(table, seeding="sometimes")


class PruneBelow(_CostAwarePruner):
    """Prunes a trial at the first epoch from ``start`` whose value is below ``threshold``,
    and records every (trial, step, value) it was asked about."""

    def __init__(self, threshold: float, start: int = 1) -> None:
        super().__init__(cost_names=("params",), direction="maximize")
        self.threshold, self.start, self.asked = threshold, start, []

    def prune(self, study, trial):
        step = trial.last_step
        self.asked.append((trial.number, step, trial.intermediate_values[step]))
        return step >= self.start and trial.intermediate_values[step] < self.threshold


def test_a_trial_stops_where_the_pruner_stops_it(table):
    pruner = PruneBelow(threshold=0.3)
    result = replay_search(table, optuna.samplers.RandomSampler(seed=0), pruner, n_trials=9, seed=1)
    for t in result.study.trials:
        if schema.DUPLICATE_OF.has(t):
            continue
        curve = (
            table.by_digest()[schema.DIGEST.get(t)]
            .runs[ReplayObjective(table, seed=1).replicate(t.number)]
            .val_acc
        )
        stop = next((e for e in range(1, 3) if curve[e] < 0.3), None)
        asked = [(step, value) for n, step, value in pruner.asked if n == t.number]
        if stop is None:
            assert t.state == TrialState.COMPLETE and len(t.intermediate_values) == 4
            assert asked == [(e, curve[e]) for e in range(3)]  # never after the last epoch
        else:
            assert t.state == TrialState.PRUNED
            assert sorted(t.intermediate_values) == list(range(stop + 1))
            assert asked == [(e, curve[e]) for e in range(stop + 1)]
            assert t.values == [curve[stop], table.by_digest()[schema.DIGEST.get(t)].cost["params"]]
            assert schema.PRUNED_AT_EPOCH.get(t) == stop
            assert result.epochs[t.number] == stop + 1
    assert any(t.state == TrialState.PRUNED for t in result.study.trials)


def test_moasha_prunes_at_its_rungs(table):
    pruner = MOASHAPruner(min_epochs=1, reduction_factor=2, cost_names=("params",), max_epochs=4)
    result = replay_search(table, optuna.samplers.RandomSampler(seed=2), pruner, n_trials=9)
    pruned = [t for t in result.study.trials if t.state == TrialState.PRUNED]
    assert pruned and {schema.PRUNED_AT_EPOCH.get(t) for t in pruned} <= {0, 1}


def test_a_replayed_search_is_deterministic_per_seed(table):
    def signature(sampler_seed, replay_seed):
        pruner = MOASHAPruner(min_epochs=1, reduction_factor=2, cost_names=("params",))
        sampler = PruningAwareNSGAIISampler(population_size=4, seed=sampler_seed)
        result = replay_search(table, sampler, pruner, n_trials=9, seed=replay_seed)
        return [(t.params, t.state, t.values) for t in result.study.trials], result.epochs

    assert signature(0, 0) == signature(0, 0)
    assert signature(0, 0) != signature(1, 0)
    assert signature(0, 0)[0] != signature(0, 1)[0]  # other seeds' runs


def test_a_repeated_architecture_reuses_the_first_outcome_for_free(table):
    study = optuna.create_study(directions=table.directions, pruner=optuna.pruners.NopPruner())
    objective = ReplayObjective(table)
    params = table.architectures[3].params
    outcomes = []
    for _ in range(2):
        study.enqueue_trial(params)
        trial = study.ask()
        outcomes.append(objective.run(trial))
        study.tell(trial, outcomes[-1].values)
    first, second = study.trials
    assert outcomes[0].values == outcomes[1].values
    assert schema.DUPLICATE_OF.get(second) == 0 and schema.EPOCHS_RUN.get(second) == 0
    assert second.intermediate_values == first.intermediate_values


def test_objective_works_inside_study_optimize(table):
    study = optuna.create_study(
        directions=table.directions,
        sampler=optuna.samplers.RandomSampler(seed=0),
        pruner=optuna.pruners.NopPruner(),
    )
    study.optimize(ReplayObjective(table), n_trials=5)
    assert all(t.state == TrialState.COMPLETE for t in study.trials)


def test_a_missing_architecture_and_a_too_large_budget_are_refused():
    partial = synthetic_table(drop=3)
    with pytest.raises(ValueError, match="is not in table 'synthetic' \\(6 of the space's 9"):
        for seed in itertools.count():
            replay_search(partial, optuna.samplers.RandomSampler(seed=seed), n_trials=9)
    with pytest.raises(ValueError, match="n_trials=10 exceeds the table's 9 architectures"):
        replay_search(synthetic_table(), optuna.samplers.RandomSampler(), n_trials=10)


def test_true_front_share_against_a_direct_computation(table):
    means = {a.digest: a.mean_val_acc() for a in table.architectures}
    cost = {a.digest: a.cost["params"] for a in table.architectures}
    ref = table_reference(table)
    assert ref == [min(means.values()), 1.01 * max(cost.values())]

    # the 2-D staircase by hand: sort by cost, keep strictly better accuracy
    def staircase(digests):
        area, best = 0.0, ref[0]
        for d in sorted(set(digests), key=lambda d: (cost[d], -means[d])):
            if means[d] > best:
                area += (ref[1] - cost[d]) * (means[d] - best)
                best = means[d]
        return area

    everything = list(means)
    # 4 is the cheapest and better than 0..3; 5..8 each buy accuracy with parameters
    assert set(true_front(table)) == {table.architectures[i].digest for i in (4, 5, 6, 7, 8)}
    assert hypervolume(table.true_points(), ref, table.directions) == pytest.approx(
        staircase(everything)
    )
    some = [table.architectures[i].digest for i in (1, 2, 6)]
    assert true_front_share(table, some) == pytest.approx(staircase(some) / staircase(everything))
    assert true_front_share(table, true_front(table)) == pytest.approx(1.0)
    assert best_digest(table) == table.architectures[8].digest
    assert reports_best(table, [*some, best_digest(table)]) and not reports_best(table, some)


def test_reported_digests_are_the_measured_front(table):
    result = replay_search(table, optuna.samplers.RandomSampler(seed=0), n_trials=6, seed=0)
    values = {schema.DIGEST.get(t): t.values for t in result.study.trials}
    reported = reported_digests(result.study)
    for d in values:  # reported: no other measured point dominates it
        dominated = any(
            o[0] >= values[d][0] and o[1] <= values[d][1] and o != values[d]
            for o in values.values()
        )
        assert (d in reported) != dominated
    assert reported_digests(result.study, 1) == [schema.DIGEST.get(result.study.trials[0])]
    assert np.isfinite(true_front_share(table, reported))


def test_baselines_come_first_and_are_never_pruned(table):
    pruner = PruneBelow(threshold=2.0)  # would prune every trial at its second epoch
    result = replay_search(
        table, optuna.samplers.RandomSampler(seed=0), pruner, n_trials=6, baselines=True
    )
    trials = result.study.trials
    names = [schema.BASELINE.get(t) for t in trials[:3]]
    assert names == ["none", "se", "eca"]
    assert all(t.state == TrialState.COMPLETE for t in trials[:3])
    assert all(t.state == TrialState.PRUNED for t in trials[3:] if not schema.DUPLICATE_OF.has(t))


def test_replay_config_runs_the_search_a_config_describes_and_refuses_another_space(table):
    import dataclasses

    from nas.config import PruningSection
    from nas.replay import replay_config

    cfg = table.config
    cfg = dataclasses.replace(
        cfg,
        study=dataclasses.replace(cfg.study, sampler="nsga2", population_size=4, n_trials=8),
        pruning=PruningSection(pruner="moasha", min_epochs=1, reduction_factor=2),
        evaluation=dataclasses.replace(cfg.evaluation, baselines=True),
    )
    result = replay_config(table, cfg, seed=3)
    trials = result.study.trials
    assert len(trials) == 8 and schema.BASELINE.get(trials[0]) == "none"
    assert isinstance(result.study.sampler, PruningAwareNSGAIISampler)
    again = replay_config(table, cfg, seed=3)
    assert [t.params for t in again.study.trials] == [t.params for t in trials]
    d = cfg.to_dict()
    other = type(cfg).from_dict({**d, "space": {**d["space"], "blocks": ["none", "se"]}})
    with pytest.raises(ValueError, match=r"differ: space\.blocks"):
        replay_config(table, other)
