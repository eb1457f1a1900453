"""Self-diagnosis of pruning: how well a rung's accuracies rank the final ones (nas.rungs)."""

import math
from statistics import NormalDist

import numpy as np
import optuna
import pytest

from nas import trial_schema as schema
from nas.cli import main
from nas.config import StudyConfig
from nas.pruning import record_epoch, should_prune
from nas.rungs import (
    MIN_TRIALS,
    AutoRungPruner,
    auto_first_rung,
    decision_epochs,
    epoch_rankings,
    pruning_diagnosis,
    pruning_lines,
    rung_rankings,
    rung_warning,
    spearman_interval,
    with_first_rung,
)
from nas.study import load_or_create_study, make_pruner


def _ranks(values: np.ndarray) -> np.ndarray:
    return np.argsort(np.argsort(values)).astype(np.float64)  # no ties in these tests


def test_spearman_interval_is_fisher_z_with_the_bonett_wright_variance():
    rng = np.random.default_rng(3)
    x = rng.normal(size=25)
    y = x + rng.normal(size=25)
    rho, low, high = spearman_interval(list(x), list(y))
    expected_rho = float(np.corrcoef(_ranks(x), _ranks(y))[0, 1])  # Pearson of the ranks
    half = NormalDist().inv_cdf(0.975) * math.sqrt((1 + expected_rho**2 / 2) / (25 - 3))
    assert rho == pytest.approx(expected_rho, abs=1e-12)
    assert low == pytest.approx(math.tanh(math.atanh(expected_rho) - half), abs=1e-12)
    assert high == pytest.approx(math.tanh(math.atanh(expected_rho) + half), abs=1e-12)


def test_spearman_interval_covers_the_true_rho_about_95_percent_of_the_time():
    # Bivariate normal with correlation r: the population Spearman rho is 6/pi * asin(r / 2).
    r, n, runs = 0.5, 30, 600
    true_rho = 6 / math.pi * math.asin(r / 2)
    rng = np.random.default_rng(0)
    covered = 0
    for _ in range(runs):
        x = rng.normal(size=n)
        y = r * x + math.sqrt(1 - r**2) * rng.normal(size=n)
        _, low, high = spearman_interval(list(x), list(y))
        covered += low <= true_rho <= high
    assert abs(covered / runs - 0.95) < 3 * math.sqrt(0.95 * 0.05 / runs)


def test_spearman_interval_edges():
    assert all(math.isnan(v) for v in spearman_interval([1, 2], [1, 2]))  # too few pairs
    assert all(math.isnan(v) for v in spearman_interval([1, 1, 1, 1], [1, 2, 3, 4]))  # constant
    rho, low, high = spearman_interval([1, 2, 3, 4, 5], [1, 2, 3, 4, 5])
    assert rho == pytest.approx(1.0) and 0 < low < high <= 1.0
    with pytest.raises(ValueError, match="paired"):
        spearman_interval([1, 2, 3], [1, 2])


def test_epoch_rankings_read_the_step_before_the_epoch_count():
    finals = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    curves = [{0: -f, 1: f} for f in finals]  # step 0 reversed, step 1 in order
    first, second = epoch_rankings(curves, finals, [1, 2])
    assert (first.epochs, first.n, first.spearman_rho) == (1, 6, -1.0)
    assert (second.epochs, second.spearman_rho) == (2, 1.0) and second.better_than_chance
    assert not first.better_than_chance
    (missing,) = epoch_rankings(curves, finals, [3])
    assert missing.n == 0 and math.isnan(missing.spearman_rho)


@pytest.mark.parametrize(
    ("pruning", "expected"),
    [
        ({"pruner": "moasha", "min_epochs": 1, "reduction_factor": 2}, [1, 2, 4]),
        # Optuna's SuccessiveHalvingPruner decides at step min_resource * eta**k, 0-based
        ({"pruner": "asha", "min_epochs": 3, "reduction_factor": 2}, [4, 7]),
        ({"pruner": "asha", "min_epochs": 1, "reduction_factor": 3}, [2, 4]),
        ({"pruner": "pareto", "n_warmup_epochs": 2}, [3]),
        ({"pruner": "median", "n_warmup_epochs": 7}, []),  # warm-up covers the whole run
        ({"pruner": "none"}, []),
    ],
)
def test_decision_epochs_of_each_pruner(tiny_config, pruning, expected):
    single = {"minimize": []} if pruning["pruner"] in ("asha", "median") else {}
    config = tiny_config(training={"epochs": 8}, pruning=pruning, objectives=single)
    cfg = StudyConfig.from_dict(config)
    assert decision_epochs(cfg) == expected


@pytest.mark.parametrize(
    "pruning",
    [
        {"pruner": "asha", "min_epochs": 3, "reduction_factor": 2},
        {"pruner": "asha", "min_epochs": 1, "reduction_factor": 3},
        {"pruner": "median", "n_warmup_epochs": 2, "n_startup_trials": 1},
    ],
)
def test_decision_epochs_are_where_the_built_pruner_first_stops_a_trial(tiny_config, pruning):
    """The first rung's epoch is where the real pruner (Optuna's, built by make_pruner) first
    stops a trial that is worst at every step."""
    cfg = StudyConfig.from_dict(
        tiny_config(training={"epochs": 8}, pruning=pruning, objectives={"minimize": []})
    )
    study = optuna.create_study(direction="maximize", pruner=make_pruner(cfg))
    for value in (0.9, 0.8):
        trial = study.ask()
        for step in range(8):
            trial.report(value, step)
            trial.should_prune()  # stores the rungs' values (and the best are never stopped)
        study.tell(trial, value)
    worst = study.ask()
    stopped_after = None
    for step in range(8):
        worst.report(0.1, step)
        if worst.should_prune():
            stopped_after = step + 1  # epochs trained
            break
    assert stopped_after == decision_epochs(cfg)[0]


def _study(
    tiny_config, early_noise: float, n: int = 24, noisy_until: int = 2, **pruning
) -> optuna.Study:
    """A stored tiny study of ``n`` complete trials with 8-epoch curves: the value at step s is
    the final accuracy plus noise of ``early_noise`` shrinking to zero at step ``noisy_until``."""
    settings = {"pruner": "moasha", "min_epochs": 1, "reduction_factor": 2, **pruning}
    cfg = StudyConfig.from_dict(tiny_config(training={"epochs": 8}, pruning=settings))
    study = load_or_create_study(cfg)
    rng = np.random.default_rng(1)
    for number in range(n):
        final = 0.5 + 0.4 * number / n
        curve = {
            step: final + early_noise * max(0.0, 1 - step / noisy_until) * rng.normal()
            for step in range(8)
        }
        study.add_trial(
            optuna.trial.create_trial(
                values=[final, 1000.0 + number],
                intermediate_values=curve,
                user_attrs={schema.ARCH.key: {"backbone": "resnet8", "sites": {}}},
            )
        )
    return study


def test_status_warns_when_the_first_rung_ranks_like_chance(tiny_config, capsys):
    study = _study(tiny_config, early_noise=5.0)
    diagnosis = pruning_diagnosis(study)
    first = diagnosis["rungs"][0]
    assert first["epochs"] == 1 and first["n"] == 24 and first["low"] <= 0 < first["high"]
    runs_dir = StudyConfig.from_dict(tiny_config()).study.runs_dir
    assert main(["status", "tiny", "--runs-dir", runs_dir]) == 0
    out = capsys.readouterr().out
    assert "pruning at epoch 1 ranks trials at Spearman" in out
    assert "it is close to random here; consider pruning.min_epochs = " in out
    suggested = int(out.split("consider pruning.min_epochs = ")[1].split()[0])
    assert 1 < suggested <= 8 // 2  # a first rung that still promotes once (eta = 2)
    assert diagnosis["warning"] in out


def test_status_is_silent_when_the_first_rung_ranks_well(tiny_config, capsys):
    study = _study(tiny_config, early_noise=0.01)
    assert pruning_diagnosis(study)["rungs"][0]["better_than_chance"]
    assert rung_warning(study) is None
    runs_dir = StudyConfig.from_dict(tiny_config()).study.runs_dir
    assert main(["status", "tiny", "--runs-dir", runs_dir]) == 0
    assert "close to random" not in capsys.readouterr().out


def test_advice_is_no_pruning_where_no_early_enough_epoch_ranks_well(tiny_config):
    # Noise that lasts until step 5, past the last epoch a first rung can sit at (8 // 2).
    study = _study(tiny_config, early_noise=5.0, noisy_until=5)
    warning = rung_warning(study)
    assert 'consider pruning.pruner = "none"' in warning and "min_epochs" not in warning


def test_no_verdict_below_the_minimum_of_completed_trials(tiny_config):
    study = _study(tiny_config, early_noise=5.0, n=MIN_TRIALS - 1)
    assert pruning_diagnosis(study)["rungs"][0]["n"] == MIN_TRIALS - 1
    assert rung_warning(study) is None


def test_warm_up_pruners_are_advised_in_their_own_setting(tiny_config):
    study = _study(tiny_config, early_noise=5.0, pruner="pareto", n_warmup_epochs=0)
    warning = rung_warning(study)
    assert (
        warning.startswith("pruning at epoch 1 ranks") and "pruning.n_warmup_epochs = " in warning
    )


def test_studies_without_pruning_or_a_stored_config_get_no_diagnosis(tiny_config):
    assert pruning_diagnosis(_study(tiny_config, early_noise=5.0, pruner="none")) is None
    plain = optuna.create_study(directions=["maximize", "minimize"])
    assert pruning_diagnosis(plain) is None and rung_warning(plain) is None


def test_report_and_dashboard_carry_the_warning(tiny_config, tmp_path):
    from nas.dashboard import write_dashboard
    from nas.report import write_report

    study = _study(tiny_config, early_noise=5.0)
    paths = write_report(study, tmp_path / "report")
    summary = paths["summary"].read_text()
    assert '"pruning"' in summary and "close to random here" in summary
    page = write_dashboard(study, tmp_path / "dashboard.html").read_text()
    assert "pruning at epoch 1 ranks trials" in page


def _ask_and_report(study: optuna.Study, curve: list[float]) -> int | None:
    """Run one trial through the study's pruner; the epochs it trained where it was pruned."""
    trial = study.ask()
    schema.COST.set(trial, {"flops": 1000.0})
    for step, value in enumerate(curve):
        record_epoch(trial, step, value)
        if should_prune(trial):
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            return step + 1
    study.tell(trial, [curve[-1], 1000.0])
    return None


def test_auto_first_rung_waits_for_evidence_then_takes_the_earliest_ranking_epoch(tiny_config):
    """Noisy until step 2: epochs 1-2 rank like chance, epoch 3 (step 2) on ranks exactly."""
    study = _study(tiny_config, early_noise=5.0, n=0, min_epochs="auto")
    pruner = make_pruner(StudyConfig.from_dict(schema.stored_config(study)))
    assert isinstance(pruner, AutoRungPruner) and pruner.candidates == [1, 2, 3, 4]
    study.pruner = pruner
    rng = np.random.default_rng(5)

    def curve(final: float) -> list[float]:
        noise = 5.0 * rng.normal(size=2)
        return [final + noise[0], final + noise[1]] + [final] * 6

    finals = np.linspace(0.5, 0.9, 24)
    rng.shuffle(finals)
    stopped = [_ask_and_report(study, curve(f)) for f in finals[: MIN_TRIALS - 1]]
    assert stopped == [None] * (MIN_TRIALS - 1)  # too few completed trials: nothing pruned
    assert pruner.first_rung(study) is None and schema.auto_first_rung(study) is None
    diagnosis = pruning_diagnosis(study)
    assert diagnosis["rungs"] == [] and "no trial is pruned until" in diagnosis["note"]
    stopped = [_ask_and_report(study, curve(f)) for f in finals[MIN_TRIALS - 1 :]]
    chosen = schema.auto_first_rung(study)
    assert chosen["epochs"] == 3 and chosen["n"] >= MIN_TRIALS and chosen["low"] > 0
    # from the choice on, trials are pruned at the rungs of MO-ASHA with min_epochs = 3
    assert {s for s in stopped if s is not None} <= {3, 6} and any(stopped)
    diagnosis = pruning_diagnosis(study)
    assert [r["epochs"] for r in diagnosis["rungs"]] == [3]
    assert 'pruning.min_epochs = "auto" put the first rung at epoch 3' in diagnosis["note"]
    assert pruning_lines(diagnosis)[0] == diagnosis["note"]


def test_auto_first_rung_is_chosen_once(tiny_config):
    study = _study(tiny_config, early_noise=0.01, min_epochs="auto")
    pruner = make_pruner(StudyConfig.from_dict(schema.stored_config(study)))
    assert pruner.first_rung(study) == 1  # ranks from the first epoch
    study.set_user_attr(schema.AUTO_FIRST_RUNG, {**schema.auto_first_rung(study), "epochs": 2})
    assert pruner.first_rung(study) == 2  # the stored choice, not a fresh one


@pytest.mark.parametrize(
    ("pruning", "message"),
    [
        ({"pruner": "median", "min_epochs": "auto"}, "starts after pruning.n_warmup_epochs"),
        ({"pruner": "moasha", "min_epochs": "auto", "reduction_factor": 9}, "finds no epoch"),
        ({"pruner": "moasha", "min_epochs": "early"}, 'an int >= 1, or "auto"'),
    ],
)
def test_auto_first_rung_config_errors_name_the_field(tiny_config, pruning, message):
    single = {"minimize": []} if pruning["pruner"] == "median" else {}
    config = tiny_config(training={"epochs": 8}, pruning=pruning, objectives=single)
    with pytest.raises(ValueError, match=message):
        StudyConfig.from_dict(config)


def test_asha_auto_builds_optunas_pruner_one_step_earlier(tiny_config):
    cfg = StudyConfig.from_dict(
        tiny_config(
            training={"epochs": 8},
            pruning={"pruner": "asha", "min_epochs": "auto", "reduction_factor": 2},
            objectives={"minimize": []},
        )
    )
    pruner = make_pruner(cfg)
    assert pruner.candidates == [2, 3, 4, 5, 6, 7]
    built = pruner._build(4)
    assert isinstance(built, optuna.pruners.SuccessiveHalvingPruner)
    assert decision_epochs(with_first_rung(cfg, 4))[0] == 4


def test_auto_min_rho_waits_for_an_epoch_whose_interval_clears_it(tiny_config):
    """Step 0 ranks a little (its interval above 0, below 0.5), step 1 on exactly."""
    study = _study(tiny_config, early_noise=0.2, noisy_until=1, min_epochs="auto")
    first, second = rung_rankings(study, [1, 2])
    assert 0.0 < first.low < 0.5 < second.low
    assert auto_first_rung(study, [1, 2, 3, 4]).epochs == 1
    assert auto_first_rung(study, [1, 2, 3, 4], min_rho=0.5).epochs == 2
    cfg = StudyConfig.from_dict(
        tiny_config(
            training={"epochs": 8},
            pruning={"pruner": "moasha", "min_epochs": "auto", "auto_min_rho": 0.5},
        )
    )
    assert make_pruner(cfg).first_rung(study) == 2
    with pytest.raises(ValueError, match=r"pruning\.auto_min_rho must be a number in \[0, 1\)"):
        StudyConfig.from_dict(tiny_config(pruning={"pruner": "moasha", "auto_min_rho": 1.0}))
