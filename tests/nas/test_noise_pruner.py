"""NoiseAwarePruner: ASHA's rungs, deciding only on gaps beyond their noise at rungs that rank."""

import math

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState, create_trial

from nas import trial_schema as schema
from nas.config import StudyConfig
from nas.noise_pruner import (
    NoiseAwarePruner,
    binomial_variance,
    curve_jitter,
    gap_standard_error,
)
from nas.study import make_pruner

EPOCHS = 8


def test_curve_jitter_recovers_the_noise_of_straight_curves():
    rng = np.random.default_rng(0)
    curves = [
        list(0.3 + 0.05 * np.arange(EPOCHS) + rng.normal(0, 0.02, EPOCHS)) for _ in range(400)
    ]
    assert curve_jitter(curves) == pytest.approx(0.02, rel=0.05)
    # By hand: one curve [0, 1, 0]: residual 1 - 0 = 1, so sqrt(1 / 1.5).
    assert curve_jitter([[0.0, 1.0, 0.0]]) == pytest.approx(math.sqrt(1 / 1.5))
    assert curve_jitter([[0.5, 0.6]]) == 0.0 and curve_jitter([]) == 0.0


def test_gap_standard_error_adds_jitter_and_binomial_variances():
    expected = math.sqrt(2 * 0.01**2 + 0.7 * 0.3 / 500 + 0.8 * 0.2 / 500)
    assert gap_standard_error(0.7, 0.8, 0.01, 500) == pytest.approx(expected)
    assert binomial_variance(0.7, None) == 0.0


def test_rungs_are_ashas():
    pruner = NoiseAwarePruner(min_epochs=1, reduction_factor=2, max_epochs=EPOCHS)
    assert [e for e in range(1, EPOCHS + 1) if pruner.is_rung(e)] == [1, 2, 4]
    unbounded = NoiseAwarePruner(min_epochs=2, reduction_factor=3)
    assert [e for e in range(1, 40) if unbounded.is_rung(e)] == [2, 6, 18]


def _study(
    n_completed: int, early_noise: float, seed: int = 0, val_size: int | None = None
) -> optuna.Study:
    """Completed 8-epoch trials: the value at step s is the final accuracy plus a small jitter,
    and at step 0 noise of ``early_noise`` as well."""
    rng = np.random.default_rng(seed)
    study = optuna.create_study(direction="maximize")
    for i in range(n_completed):
        final = 0.5 + 0.4 * i / n_completed
        curve = {
            s: final + early_noise * (s == 0) * rng.normal() + rng.normal(0, 0.005)
            for s in range(EPOCHS)
        }
        attrs = {} if val_size is None else {schema.VAL_SIZE.key: val_size}
        study.add_trial(create_trial(values=[final], intermediate_values=curve, user_attrs=attrs))
    return study


def _candidate(study: optuna.Study, curve: dict[int, float], cost: float | None = None):
    attrs = {} if cost is None else {schema.COST.key: {"flops": cost}}
    study.add_trial(
        create_trial(state=TrialState.RUNNING, intermediate_values=curve, user_attrs=attrs)
    )
    return study.get_trials(deepcopy=False)[-1]


def _reference_decision(study, trial, pruner) -> bool:
    """The rule written out: cut = the 1 - 1/eta quantile of the rung's values, noise from the
    completed curves' jitter and n_val, prune where the gap exceeds z of its s.e."""
    step = trial.last_step
    values = [
        t.intermediate_values[step]
        for t in study.get_trials(deepcopy=False)
        if step in t.intermediate_values
    ]
    cut = float(np.quantile(values, 1 - 1 / pruner.reduction_factor))
    completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    jitter = curve_jitter([list(t.intermediate_values.values()) for t in completed], start=step)
    value = trial.intermediate_values[step]
    return cut - value > pruner.z * gap_standard_error(value, cut, jitter, pruner.n_val)


def test_decisions_match_the_rule_written_out():
    pruner = NoiseAwarePruner(min_epochs=2, reduction_factor=2, max_epochs=EPOCHS, n_val=400)
    decisions = []
    for value in np.linspace(0.3, 0.9, 25):
        study = _study(16, early_noise=0.0)
        trial = _candidate(study, {0: value, 1: value})
        expected = _reference_decision(study, trial, pruner)
        assert pruner.prune(study, trial) == expected
        decisions.append(expected)
    assert any(decisions) and not all(decisions)  # both outcomes were exercised


def test_it_never_stops_a_trial_within_its_noise():
    rng = np.random.default_rng(7)
    pruner = NoiseAwarePruner(min_epochs=2, reduction_factor=3, max_epochs=EPOCHS, n_val=300)
    stopped = 0
    for seed in range(60):
        study = _study(12, early_noise=0.0, seed=seed)
        value = float(rng.uniform(0.2, 0.95))
        trial = _candidate(study, {0: value, 1: value})
        step_values = [t.intermediate_values[1] for t in study.get_trials(deepcopy=False)]
        cut = float(np.quantile(step_values, 1 - 1 / 3))
        completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        jitter = curve_jitter([list(t.intermediate_values.values()) for t in completed], start=1)
        within = cut - value <= pruner.z * gap_standard_error(value, cut, jitter, 300)
        pruned = pruner.prune(study, trial)
        assert not (within and pruned)
        stopped += pruned
    assert stopped > 0


def test_a_rung_that_ranks_like_chance_prunes_nothing():
    pruner = NoiseAwarePruner(min_epochs=1, reduction_factor=2, max_epochs=EPOCHS)
    study = _study(24, early_noise=5.0)  # epoch 1 values are noise
    trial = _candidate(study, {0: -100.0})  # far below every peer
    assert not pruner.prune(study, trial)
    at_rung_2 = _candidate(study, {0: -100.0, 1: -100.0})  # epoch 2 ranks: noise gone
    assert pruner.prune(study, at_rung_2)


def test_nothing_is_pruned_before_enough_trials_completed():
    pruner = NoiseAwarePruner(min_epochs=2, reduction_factor=2, max_epochs=EPOCHS)
    study = _study(pruner.n_min_trials - 1, early_noise=0.0)
    assert not pruner.prune(study, _candidate(study, {0: 0.0, 1: 0.0}))
    assert not pruner.prune(study, _candidate(study, {0: 0.0, 1: 0.0, 2: 0.0}))  # no rung at 3


def test_a_cheap_trial_is_compared_with_trials_that_cost_no_more():
    pruner = NoiseAwarePruner(
        min_epochs=2, reduction_factor=2, max_epochs=EPOCHS, cost_names=("flops",)
    )
    study = optuna.create_study(direction="maximize")
    for i in range(12):  # expensive and accurate, cheap and weaker: both rank at epoch 2
        expensive = i % 3 != 0
        final = (0.9 if expensive else 0.5) + 0.005 * i
        study.add_trial(
            create_trial(
                values=[final],
                intermediate_values={s: final for s in range(EPOCHS)},
                user_attrs={schema.COST.key: {"flops": 1000.0 if expensive else 10.0}},
            )
        )
    cheap = _candidate(study, {0: 0.56, 1: 0.56}, cost=10.0)
    assert not pruner.prune(study, cheap)  # best of the cheap; the expensive are not its peers
    dear = _candidate(study, {0: 0.56, 1: 0.56}, cost=1000.0)
    assert pruner.prune(study, dear)


def test_the_engine_builds_it_from_the_config(tiny_config):
    cfg = StudyConfig.from_dict(
        tiny_config(
            training={"epochs": 8},
            pruning={"pruner": "noise", "min_epochs": 2, "reduction_factor": 2},
        )
    )
    pruner = make_pruner(cfg)
    assert isinstance(pruner, NoiseAwarePruner)
    assert (pruner.min_epochs, pruner.reduction_factor, pruner.max_epochs) == (2, 2, 8)
    assert pruner.cost_names == ("flops",)
    with pytest.raises(ValueError, match=r"pruning\.min_epochs x pruning\.reduction_factor"):
        StudyConfig.from_dict(
            tiny_config(
                training={"epochs": 8},
                pruning={"pruner": "noise", "min_epochs": 5, "reduction_factor": 2},
            )
        )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"min_epochs": 0}, "min_epochs"),
        ({"reduction_factor": 1}, "reduction_factor"),
        ({"z": -1.0}, "z="),
        ({"n_min_trials": 2}, "n_min_trials"),
        ({"direction": "up"}, "direction"),
    ],
)
def test_bad_arguments_are_refused_by_name(kwargs, match):
    with pytest.raises(ValueError, match=match):
        NoiseAwarePruner(**kwargs)


def test_the_split_size_is_read_from_the_completed_trials():
    explicit = NoiseAwarePruner(min_epochs=2, reduction_factor=2, max_epochs=EPOCHS, n_val=50)
    recorded = NoiseAwarePruner(min_epochs=2, reduction_factor=2, max_epochs=EPOCHS)
    agree = []
    for value in np.linspace(0.3, 0.9, 13):
        study = _study(12, early_noise=0.0, val_size=50)
        trial = _candidate(study, {0: value, 1: value})
        agree.append(explicit.prune(study, trial) == recorded.prune(study, trial))
        assert (
            recorded._n_val(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))) == 50
        )
    assert all(agree)
