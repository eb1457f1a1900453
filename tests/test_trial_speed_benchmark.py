"""benchmarks/trial_speed.py: the arms' settings and the summary of paired trials."""

import math

import numpy as np
import pytest
import scipy.stats


@pytest.fixture(scope="module")
def bench(load_benchmark):
    return load_benchmark("trial_speed")


def test_the_before_arm_turns_off_what_today_adds_and_now_keeps_the_config(bench, tmp_path):
    data = bench.problem_config("quickstart", None, str(tmp_path))
    before = bench.arm_config(data, "before", 3, {})
    now = bench.arm_config(data, "now", 3, {})
    plain = bench.arm_config(data, "plain", 3, {})
    assert before.study.seed == now.study.seed == 3
    assert (before.training.channels_last, before.training.compile) == (False, False)
    assert before.training.validate == "every_epoch"
    assert before.data.eval_batch_size == before.data.batch_size == 64
    assert (now.training.channels_last, now.training.compile) == ("auto", "auto")
    # The quickstart does not prune: its trials validate after their last epoch only.
    assert now.training.validate == "auto" and bench.now_settings("quickstart", now, 1e6) == {}
    assert now.data.eval_batch_size is None  # the default: 4 training batches
    assert plain == before  # the plain loop trains as the before arm does
    forced = bench.arm_config(data, "now", 0, {"compile": True})
    assert forced.training.compile is True


def test_geometric_mean_interval_is_a_t_interval_on_the_log_ratios(bench):
    ratios = [1.1, 1.3, 1.2, 1.25]
    mean, low, high = bench.geometric_interval(ratios)
    logs = np.log(ratios)
    half = scipy.stats.t.ppf(0.975, 3) * logs.std(ddof=1) / 2
    assert mean == pytest.approx(math.exp(logs.mean()))
    assert (low, high) == pytest.approx(
        (math.exp(logs.mean() - half), math.exp(logs.mean() + half))
    )
    assert bench.geometric_interval([1.5]) == (pytest.approx(1.5), None, None)


def _runs(before_s, now_s, before_acc, now_acc, compiled=True):
    runs = []
    for (arch, seed), b, n, ba, na in zip(
        [("none", 0), ("se", 0), ("none", 1), ("se", 1)],
        before_s,
        now_s,
        before_acc,
        now_acc,
        strict=True,
    ):
        common = {"arch": arch, "seed": seed, "compiled": compiled}
        before = {"seconds": b, "epoch_seconds": [b / 2, b / 2], "val_acc": ba}
        # now: a warm-up in its first epoch, 3 x its later one (longer with a cold cache)
        warm_up = 2.0 if seed == 0 else 1.0
        now = {"seconds": n, "epoch_seconds": [n / 4 + warm_up, n / 4], "val_acc": na}
        runs.append({**common, "arm": "before", **before})
        runs.append({**common, "arm": "now", **now})
        plain = {"seconds": b / 2, "epoch_seconds": [b / 4, b / 4]}
        runs.append({"arch": arch, "seed": seed, "arm": "plain", **plain})
    return {
        "runs": runs,
        "epochs": 2,
        "split_sizes": {"train": 400, "val": 400},
        "full_trial": {"images": 800, "epochs": 3},
    }


def test_summary_splits_cold_and_warm_cache_pairs_and_compares_accuracy_paired(bench):
    result = _runs([4.0, 4.0, 2.0, 2.0], [2.0, 2.0, 1.0, 1.0], [0.5, 0.6, 0.7, 0.8],
                   [0.52, 0.61, 0.69, 0.8])  # fmt: skip
    summary = bench.summarise(result)
    cold, warm = (summary["speed"][k] for k in list(summary["speed"])[:2])
    assert cold["pairs"] == warm["pairs"] == 2
    assert cold["now_speedup"][0] == pytest.approx(2.0) and cold["median_s"]["before"] == 4.0
    assert warm["plain_speedup"][0] == pytest.approx(2.0)
    accuracy = summary["accuracy"]
    expected = scipy.stats.ttest_rel([0.52, 0.61, 0.69, 0.8], [0.5, 0.6, 0.7, 0.8])
    assert accuracy["mean"] == pytest.approx(0.005)
    assert accuracy["p_value"] == pytest.approx(expected.pvalue)
    assert accuracy["binomial_se"] == pytest.approx(math.sqrt(0.65 * 0.35 / 400))
    assert summary["compiled_now"] == [True]
    epochs = summary["epochs"]  # epochs after the first: before b / 2, now n / 4
    assert epochs["median_s"] == {"before": 1.5, "now": 0.375, "plain": 0.75}
    assert epochs["now_speedup"][0] == pytest.approx(4.0)
    assert epochs["plain_speedup"][0] == pytest.approx(2.0)
    assert list(epochs["now_warmup_s"].values()) == [pytest.approx(2.0), pytest.approx(1.0)]
    # the full trial: 3 epochs of twice the images = 6 measured epochs, one cold warm-up (a
    # search's architectures are new to the cache)
    assert epochs["projection"]["before_s"] == pytest.approx(6 * 1.5)
    assert epochs["projection"]["now_s"] == pytest.approx(6 * 0.375 + 2.0)
    assert bench.summarise({**result, "epochs": 1})["epochs"] is None
    eager = _runs([4.0] * 4, [2.0] * 4, [0.5] * 4, [0.5] * 4, compiled=False)
    # nothing compiled: a slow first epoch is no compile warm-up, the projection adds none
    assert bench.summarise(eager)["epochs"]["projection"]["now_s"] == pytest.approx(6 * 0.5)


def test_the_section_shows_cache_rows_and_warm_ups_only_where_now_compiled(bench):
    result = {**_runs([4.0] * 4, [2.0] * 4, [0.5] * 4, [0.5] * 4, compiled=False)}
    result.update(epochs=2, eval_batch={"before": 64, "now": 256}, now_settings={})
    text = "\n".join(bench.render("quickstart", result, bench.summarise(result)))
    assert "cold compile cache" not in text and "warm-up" not in text
    assert "| all | 4 | 4.00 | 2.00 | 2.00 | 2.00x [2.00, 2.00] | 2.00x [2.00, 2.00] |" in text
    assert "Projected to the full trial (800 images x 3 epochs" in text
    compiled = {**result, **_runs([4.0] * 4, [2.0] * 4, [0.5] * 4, [0.5] * 4)}
    text = "\n".join(bench.render("quickstart", compiled, bench.summarise(compiled)))
    assert "first seed (cold compile cache)" in text and "`now`'s warm-up" in text


def test_render_rewrites_the_results_file_from_its_json(bench, tmp_path, monkeypatch):
    import json

    result = _runs([4.0] * 4, [2.0] * 4, [0.5] * 4, [0.5] * 4, compiled=False)
    result.update(epochs=2, eval_batch={"before": 64, "now": 256}, now_settings={})
    machine = {"platform": "p", "python": "3", "cpu": "c", "cores": 2, "torch_threads": 2,
               "gpu": None, "torch": "t", "lightning": "l", "optuna": "o",
               "load_average": [1.0, 1.1]}  # fmt: skip
    stored = {"command": "trial_speed.py", "date": "D", "machine": machine,
              "problems": ["quickstart"], "quickstart": result,
              "search": {"before": [80.0, 82.0], "now": [70.0, 71.5]}}  # fmt: skip
    (tmp_path / "trial_speed.json").write_text(json.dumps(stored))
    monkeypatch.setattr(bench, "measure_problem", lambda *a: pytest.fail("--render measured"))
    assert bench.main(["--render", "--out", str(tmp_path / "trial_speed.md")]) == 0
    text = (tmp_path / "trial_speed.md").read_text()
    assert "Command: `trial_speed.py`" in text and "## quickstart" in text
    assert "before [80.0, 82.0] s, now [70.0, 71.5] s" in text


def test_a_pruned_problem_validates_every_epoch_as_its_study_would(bench, tmp_path):
    from types import SimpleNamespace

    args = SimpleNamespace(per_class=10, val_per_class=5, epochs=3)
    data = bench.problem_config("cifar10_resnet20", args, str(tmp_path))
    cfg = bench.arm_config(data, "now", 0, {})
    assert cfg.pruning.pruner == "none"  # the measured trials run unpruned...
    now = bench.now_settings("cifar10_resnet20", cfg, 4e7)
    assert now["validate"] == "every_epoch"  # ... validated as the study's moasha reads them


def test_an_epoch_counts_its_validation_where_it_had_one(bench):
    timer = bench.EpochTimer()
    timer.train_s, timer.val_s, timer.val_epochs = [1.0, 2.0, 3.0], [0.5], [2]
    assert bench.epoch_seconds(timer) == [1.0, 2.0, 3.5]
    timer.val_s, timer.val_epochs = [0.5, 0.25, 0.125], [0, 1, 2]
    assert bench.epoch_seconds(timer) == [1.5, 2.25, 3.125]
