"""``nas confirm``: a companion study of repeats, its intervals and the confirmed front."""

import numpy as np
import optuna
import pytest
import scipy.stats
from optuna.trial import TrialState

from nas import trial_schema as schema
from nas.cli import main
from nas.config import StudyConfig
from nas.confirm import (
    confirm_frame,
    confirm_seeds,
    find_confirm_study,
    median_repeat,
    prepare_confirm,
    verdict,
)
from nas.pareto import non_dominated_sort
from nas.storage import open_storage
from nas.study import load_or_create_study
from nas.worker import join_study, run_search


@pytest.fixture
def searched(tiny_config):
    """A searched tiny study with its four baselines (none, se, eca, simam) and one more."""
    data = tiny_config(study={"n_trials": 5}, evaluation={"baselines": True})
    cfg = StudyConfig.from_dict(data)
    return run_search(cfg, progress=False), cfg, data


def _studies(url: str) -> list[tuple[str, int]]:
    """(name, trials) of every study in a storage: what a refused command must not change."""
    storage = open_storage(url)
    return [(s.study_name, s.n_trials) for s in optuna.get_all_study_summaries(storage)]


def test_confirm_repeats_front_and_baselines_paired_by_seed(searched):
    study, cfg, _ = searched
    url = cfg.study.storage_url()
    confirm, confirm_cfg = prepare_confirm(study, url, top=1, seeds=2)
    plan = schema.confirm_plan(confirm)
    assert plan["of"] == "tiny" and plan["seeds"] == confirm_seeds(cfg.study.seed, 2)
    assert plan["architectures"][:4] == [f"baseline {b}" for b in ("none", "se", "eca", "simam")]
    planned = len(plan["architectures"])
    assert confirm_cfg.study.n_trials == planned * 2 == len(confirm.get_trials())
    assert confirm_cfg.pruning.pruner == "none" and confirm_cfg.training == cfg.training
    # Queued again on a second call: nothing new.
    prepare_confirm(study, url, top=1, seeds=2)
    assert len(confirm.get_trials()) == planned * 2

    confirm = run_search(confirm_cfg, storage=url, progress=False)
    trials = confirm.get_trials()
    assert all(t.state == TrialState.COMPLETE for t in trials)
    for t in trials:
        seed = plan["seeds"][schema.REPLICATE.get(t)]
        assert schema.SEED.get(t) == schema.DATA_SEED.get(t) == seed
        assert 0 <= schema.TEST_ACC.get(t) <= 1 and schema.EPOCHS_RUN.get(t) == 2
    # The two repeats of one architecture differ in seed; the search's trials are untouched.
    assert len(load_or_create_study(cfg).get_trials()) == 5
    assert find_confirm_study(study).study_name == "tiny-confirm"

    frame = confirm_frame(confirm, study)
    assert list(frame["architecture"]) == plan["architectures"]
    by_key = {}
    for t in trials:
        key = f"baseline {schema.BASELINE.get(t)}" if schema.BASELINE.has(t) else "trial"
        by_key.setdefault(key, {})[schema.REPLICATE.get(t)] = t
    for row in frame.itertuples():
        key = row.architecture if row.architecture.startswith("baseline") else "trial"
        runs = by_key[key]
        vals = np.array([runs[r].values[0] for r in sorted(runs)])
        assert row.val_acc_mean == pytest.approx(vals.mean())
        if vals.std() > 0:
            sem = scipy.stats.sem(vals)
            low, high = scipy.stats.t.interval(0.95, len(vals) - 1, vals.mean(), sem)
            assert (row.val_acc_low, row.val_acc_high) == pytest.approx((low, high))
        if row.architecture != "baseline none":
            none = by_key["baseline none"]
            ref = np.array([none[r].values[0] for r in sorted(none)])
            diff = vals - ref
            assert row.gain_vs_none == pytest.approx(diff.mean())
            if diff.std() > 0:
                expected = scipy.stats.ttest_rel(vals, ref)
                assert row.p_value == pytest.approx(expected.pvalue)
                interval = expected.confidence_interval(0.95)
                assert (row.gain_vs_none_low, row.gain_vs_none_high) == pytest.approx(
                    (interval.low, interval.high)
                )
    points = frame[["val_acc_mean", "flops"]].to_numpy()
    first = non_dominated_sort(points, ["maximize", "minimize"])[0]
    assert list(np.flatnonzero(frame["on_confirmed_front"])) == first
    assert verdict(frame).startswith("best gain over none")
    member = frame[frame["on_confirmed_front"]]["architecture"].iloc[0]
    runs = [
        t
        for t in trials
        if (f"baseline {schema.BASELINE.get(t)}" if schema.BASELINE.has(t) else "trial")
        == (member if member.startswith("baseline") else "trial")
    ]
    lower = min(runs, key=lambda t: (t.values[0], t.number))  # two repeats: the lower median
    assert median_repeat(confirm, member).number == lower.number


def _hand_made_confirm(values: dict[str, list[float]]) -> optuna.Study:
    """A confirm study of COMPLETE repeats: ``{key: [val_acc per repeat]}``, flops = 1 + index."""
    storage = optuna.storages.InMemoryStorage()
    optuna.create_study(study_name="s", storage=storage, directions=["maximize", "minimize"])
    confirm = optuna.create_study(
        study_name="s-confirm", storage=storage, directions=["maximize", "minimize"]
    )
    confirm.set_metric_names(["val_acc", "flops"])
    keys = list(values)
    confirm.set_user_attr(
        "confirm", {"of": "s", "top": 1, "seeds": [1, 2, 3], "architectures": keys}
    )
    for i, (key, accs) in enumerate(values.items()):
        for r, acc in enumerate(accs):
            attrs = {"replicate": r, "test_acc": acc - 0.01}
            if key.startswith("baseline "):
                attrs |= {"baseline": key.removeprefix("baseline "), "source_trial": None}
            else:
                attrs["source_trial"] = int(key.removeprefix("trial "))
            confirm.add_trial(optuna.trial.create_trial(values=[acc, 1.0 + i], user_attrs=attrs))
    return confirm


def test_significance_is_holm_adjusted_and_needs_a_positive_gain():
    confirm = _hand_made_confirm(
        {
            "baseline none": [0.50, 0.52, 0.51],
            "trial 3": [0.60, 0.63, 0.61],  # +0.10, tight: significant
            "trial 4": [0.40, 0.43, 0.41],  # -0.10, tight: significant, but worse
            "trial 5": [0.55, 0.50, 0.52],  # +0.013, noisy: not significant
        }
    )
    frame = confirm_frame(confirm).set_index("architecture")
    raw = [
        scipy.stats.ttest_rel(confirm_values, [0.50, 0.52, 0.51]).pvalue
        for confirm_values in ([0.60, 0.63, 0.61], [0.40, 0.43, 0.41], [0.55, 0.50, 0.52])
    ]
    order = np.argsort(raw)
    holm = np.maximum.accumulate(np.minimum(1, (3 - np.arange(3)) * np.array(raw)[order]))
    expected = np.empty(3)
    expected[order] = holm
    assert list(frame.loc[["trial 3", "trial 4", "trial 5"], "p_holm"]) == pytest.approx(expected)
    assert list(frame["significant"]) == [False, True, False, False]
    assert list(frame["vs_none"]) == ["", "better", "worse", "tie"]
    # Mean accuracy against flops (1, 2, 3, 4): none and trial 3 are on the confirmed front.
    assert list(frame["on_confirmed_front"]) == [True, True, False, False]
    assert frame.loc["trial 3", "test_acc_mean"] == pytest.approx(np.mean([0.59, 0.62, 0.60]))
    assert "trial 3" in verdict(frame.reset_index()) and "larger than its noise" in verdict(
        frame.reset_index()
    )


def test_a_gain_within_its_noise_is_said_to_be_so():
    confirm = _hand_made_confirm(
        {"baseline none": [0.50, 0.60, 0.40], "trial 1": [0.52, 0.55, 0.47]}
    )
    line = verdict(confirm_frame(confirm))
    assert "within its noise" in line and "no architecture is confirmed better" in line


def test_bad_requests_are_refused_and_touch_nothing(searched, tiny_config, capsys):
    study, cfg, data = searched
    url = cfg.study.storage_url()
    before = _studies(url)
    runs_dir = data["study"]["runs_dir"]
    for args, message in [
        (["--top", "0"], "--top must be an int >= 1"),
        (["--seeds", "1"], "an interval needs at least two seeds"),
    ]:
        assert main(["confirm", "tiny", "--runs-dir", runs_dir, *args]) == 2
        assert message in capsys.readouterr().err
    changed = StudyConfig.from_dict({**data, "training": {"epochs": 3, "lr": 0.05}})
    with pytest.raises(ValueError, match=r"changed: training.epochs"):
        prepare_confirm(study, url, top=1, seeds=2, given=changed)
    assert _studies(url) == before

    empty_cfg = StudyConfig.from_dict(
        tiny_config(study={"name": "empty"}, evaluation={"baselines": False})
    )
    empty = load_or_create_study(empty_cfg)
    empty_url = empty_cfg.study.storage_url()
    with pytest.raises(ValueError, match=r"no complete .* trial to confirm"):
        prepare_confirm(empty, empty_url, top=1, seeds=2)
    assert [name for name, _ in _studies(empty_url)] == ["empty"]

    prepare_confirm(study, url, top=1, seeds=2)
    started = _studies(url)
    with pytest.raises(ValueError, match="started with --top 1 --seeds 2"):
        prepare_confirm(study, url, top=2, seeds=2)
    with pytest.raises(ValueError, match="is itself a confirm study"):
        prepare_confirm(find_confirm_study(study), url, top=1, seeds=2)
    assert _studies(url) == started


def test_a_confirm_study_is_joined_by_workers_like_any_study(searched):
    study, cfg, _ = searched
    url = cfg.study.storage_url()
    confirm, _ = prepare_confirm(study, url, top=1, seeds=2)
    joined = join_study(url, confirm.study_name, progress=False)
    assert all(t.state == TrialState.COMPLETE for t in joined.get_trials())
    assert all(schema.REPLICATE.has(t) for t in joined.get_trials())
    # Nothing is left to run: a second worker starts no trial.
    assert len(join_study(url, confirm.study_name, progress=False).get_trials()) == len(
        joined.get_trials()
    )


def test_cli_confirm_report_and_export_prefer_the_confirmed_front(searched, capsys, tmp_path):
    _, _, data = searched
    runs_dir = data["study"]["runs_dir"]
    common = ["tiny", "--runs-dir", runs_dir]
    assert main(["confirm", *common, "--top", "1", "--seeds", "2", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "val_acc % [95% CI]" in out and "best gain over none" in out
    assert main(["status", *common]) == 0
    assert "confirmation ('tiny-confirm')" in capsys.readouterr().out
    assert main(["report", *common, "--out", str(tmp_path / "report")]) == 0
    assert (tmp_path / "report" / "confirm.csv").is_file()
    assert main(["export", *common, "--pareto", "--out", str(tmp_path / "export")]) == 0
    out = capsys.readouterr().out
    assert "exported the confirmed front of 'tiny-confirm'" in out
    assert any((tmp_path / "export" / "confirmed").iterdir())
    assert (
        main(["export", *common, "--pareto", "--search-front", "--out", str(tmp_path / "s")]) == 0
    )
    assert "the search's Pareto front" in capsys.readouterr().out
