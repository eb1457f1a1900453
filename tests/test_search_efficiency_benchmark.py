"""benchmarks/search_efficiency.py: its measures, and a smoke run on the bundled digits."""

import argparse
import itertools
import json
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the scripts' own import path
from benchmarks import _search_efficiency_measures as measures
from benchmarks import _search_efficiency_report as report
from benchmarks._harness import CIFAR_ARCHIVE, cifar_archive, data_dir
from search_spaces.build import build_model
from search_spaces.cost import count_flops
from search_spaces.space import SearchSpace
from search_spaces.spec import ArchSpec

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--data", "digits", "--trials", "4", "--epochs", "2", "--per-class", "10"]
TINY += ["--val-per-class", "5", "--width", "4", "--threads", "1", "--n-startup-trials", "1"]
TINY += ["--reduction-factor", "2"]  # MO-ASHA's one rung (1 epoch) needs 1 x 2 <= 2 epochs


@pytest.fixture(scope="module")
def bench(load_benchmark):
    return load_benchmark("search_efficiency")


def test_front_recovered_counts_weakly_dominated_and_equal_points(bench):
    base = [[0.9, 10.0], [0.8, 5.0]]  # (val_acc up, flops down)
    assert measures.front_recovered(base, base) == 1.0  # equal points count
    assert measures.front_recovered(base, [[0.95, 4.0]]) == 1.0  # one point dominating both
    assert measures.front_recovered(base, [[0.9, 9.0]]) == 0.5  # covers (0.9, 10) only
    assert measures.front_recovered(base, [[0.85, 6.0]]) == 0.0  # better in one, worse in other
    assert measures.front_recovered(base, []) == 0.0
    assert math.isnan(measures.front_recovered([], [[0.9, 1.0]]))


def test_value_at_is_a_step_function(bench):
    xs, ys = [0, 5, 10], [0.0, 0.2, 0.3]
    assert [measures.value_at(xs, ys, x) for x in (-1, 0, 4, 5, 9, 10, 99)] == [
        0.0,
        0.0,
        0.0,
        0.2,
        0.2,
        0.3,
        0.3,
    ]


def test_flops_bounds_match_brute_force(bench):
    space = SearchSpace(
        backbone="resnet8",
        backbone_args={"width": 4},
        blocks=["none", "se", "cbam", "simam"],
        reductions=[2, 4],
        eca_kernels=[3],
        granularity="per_stage",
    )
    bounds = bench.flops_bounds(space, (1, 8, 8), 10)
    choices = measures.scope_choices(space)
    scopes = space.scopes()
    every = []
    for combo in itertools.product(choices, repeat=len(scopes)):
        sites = {
            site: choice
            for (scope, scope_sites), choice in zip(scopes.items(), combo, strict=True)
            for site in scope_sites
        }
        spec = ArchSpec("resnet8", {"width": 4}, in_channels=1, num_classes=10, sites=sites)
        every.append(count_flops(build_model(spec, seed=0), (1, 1, 8, 8)))
    assert len(every) == space.size() == bounds["architectures"]
    assert (bounds["min"], bounds["max"]) == (min(every), max(every))
    assert bounds["additive"]
    reference = bench.common_reference(bounds)
    span = bounds["max"] - bounds["min"]
    assert reference.worst == (0.0, pytest.approx(bounds["max"] + 0.1 * span))
    assert reference.ideal == (1.0, bounds["min"])


def test_benchmark_runs_on_digits(bench, tmp_path, capsys):
    out = tmp_path / "se.md"
    summary = bench.main([*TINY, "--seeds", "0", "1", "--out", str(out)])
    assert [s["strategy"] for s in summary] == list(bench.STRATEGIES)
    base = next(s for s in summary if s["strategy"] == bench.BASELINE)
    assert base["hv_kept"] == 1.0 and base["front_recovered"] == 1.0
    assert base["epochs_saved"] == 0.0 and base["saved_met"] is None
    for s in summary:
        assert s["seeds"] == 2 and 0 < s["hv"] <= 1
        assert s["complete"] + s["pruned"] == 4 and s["epochs"] <= 4 * 2
    assert "| NSGA-II + MO-ASHA |" in capsys.readouterr().out

    data = json.loads(out.with_suffix(".json").read_text())
    assert len(data["runs"]) == 10
    # The tests over seeds are in the JSON's summary rows, the val split's noise in its problem.
    rows = {row["strategy"]: row for row in data["summary"]}
    assert rows["random"]["vs_random"] is None and rows["nsga2"]["hv_kept_test"] is None
    assert rows["tpe-pareto"]["vs_random"]["n"] == 2 and rows["tpe-pareto"]["vs_random"]["family"]
    assert data["problem"]["val_noise"]["val_images"] == data["problem"]["split_sizes"]["val"]
    assert {r["strategy"] for r in data["runs"]} == set(bench.STRATEGIES)
    for run in data["runs"]:
        history = run["history"]
        assert history["finished"][-1] == 4 and history["epochs_spent"][-1] == run["epochs_spent"]
        assert history["hv"] == sorted(history["hv"])  # a front only grows
    text = out.read_text()
    assert "Command: `.venv/bin/python benchmarks/search_efficiency.py --data digits" in text
    assert "saved >= 40%" in text and "Machine:" in text
    assert "### Compared with random search (test over seeds)" in text
    for axis in ("epochs", "wallclock", "trials"):
        html = tmp_path / f"se_hv_{axis}.html"
        assert html.is_file() and "plotly" in html.read_text()

    # --render rebuilds the same tables from the JSON without training anything.
    again = bench.main(["--render", str(out.with_suffix(".json")), "--out", str(tmp_path / "r.md")])
    for key in ("hv", "hv_kept", "epochs_saved", "front_recovered"):
        assert [s[key] for s in again] == pytest.approx([s[key] for s in summary])
    assert "rendered again from the JSON" in (tmp_path / "r.md").read_text()


def test_benchmark_requires_the_baseline(bench):
    with pytest.raises(SystemExit):
        bench.main([*TINY, "--strategies", "random", "--out", "-"])


def test_moasha_without_a_rung_is_refused_before_anything_runs(bench, capsys):
    with pytest.raises(SystemExit):
        bench.main([*TINY, "--reduction-factor", "3", "--out", "-"])
    assert "--min-epochs x --reduction-factor (1 x 3) must be <= --epochs (2)" in (
        capsys.readouterr().err
    )


def test_moasha_rungs_are_asha_rungs_and_none_without_the_budget(bench):
    settings = argparse.Namespace(min_epochs=1, reduction_factor=3, epochs=9)
    assert bench.moasha_rungs(settings) == [1, 3]  # 1 x 3 <= 9 and 3 x 3 <= 9; 9 x 3 > 9
    settings.epochs = 2
    assert bench.moasha_rungs(settings) == []


def test_a_budget_without_moasha_rungs_runs_when_moasha_is_left_out(bench, capsys):
    # The report states MO-ASHA's rungs even where it did not run: no rung is said, not raised.
    summary = bench.main([*TINY, "--epochs", "1", "--strategies", "nsga2", "--out", "-"])
    assert summary[0]["complete"] == 4
    assert "(rungs after [] epochs)" in capsys.readouterr().out


def test_cifar_without_the_archive_says_where_to_put_it(bench, tmp_path, monkeypatch):
    monkeypatch.setenv("ATTN_NAS_DATA", str(tmp_path))
    with pytest.raises(SystemExit, match="ATTN_NAS_DATA"):
        bench.main(["--quick", "--out", "-"])


@pytest.mark.slow
def test_benchmark_runs_on_cifar10(bench):
    if cifar_archive() is None:
        pytest.skip(
            f"CIFAR-10 archive {data_dir() / CIFAR_ARCHIVE} not found: set "
            "ATTN_NAS_DATA to the folder holding cifar10-jpeg.tar.gz (see ../shared/data/README.md)"
        )
    args = ["--data", "cifar10", "--trials", "2", "--epochs", "1", "--seeds", "0"]
    args += ["--per-class", "4", "--val-per-class", "4", "--threads", "1"]
    summary = bench.main([*args, "--strategies", "nsga2", "--out", "-"])
    assert summary[0]["complete"] == 2 and summary[0]["hv"] > 0


# --- tests over seeds --------------------------------------------------------------------------

#: Final HV per strategy and seed for the synthetic runs below (seeds 0, 1, 2).
HVS = {
    "random": [0.30, 0.28, 0.31],
    "nsga2": [0.32, 0.29, 0.34],
    "nsga2-pareto": [0.31, 0.30, 0.30],
    "nsga2-moasha": [0.30, 0.28, 0.31],  # identical to random: zero spread
    "tpe-pareto": [0.36, 0.33, 0.37],  # beats random on every seed: p_adj 0.014
}
#: The same with MO-TPE's middle seed below random's: then no strategy differs from random.
NOISY = HVS | {"tpe-pareto": [0.36, 0.27, 0.37]}


def fake_run(strategy, seed, hv):
    """One run in the format the benchmark saves (before ``add_comparisons``)."""
    acc = 0.2 + hv
    return {
        "strategy": strategy,
        "seed": seed,
        "wall_s": 10.0,
        "cpu_s": 9.0,
        "load_before": 1.0,
        "load_after": 1.0,
        "complete": 2,
        "pruned": 0,
        "failed": 0,
        "duplicates": 0,
        "pruned_epochs_run": [],
        "max_generation": 0 if strategy.startswith("nsga2") else None,
        "epochs_spent": 10,
        "trial_wall_s": 2.0,
        "hv": hv,
        "hv_alt": hv / 2,
        "front": [[acc, 1000.0], [acc - 0.05, 900.0]],
        "history": {
            "trial": [0, 1],
            "finished": [1, 2],
            "epochs_spent": [5, 10],
            "elapsed_s": [1.0, 2.0],
            "hv": [hv / 2, hv],
        },
    }


def fake_raw(bench, seeds, hvs=HVS):
    """A results JSON of the format written before the tests over seeds existed."""
    argv = ["--data", "digits", "--trials", "2", "--per-class", "10", "--val-per-class", "20"]
    args = vars(bench.parse_args([*argv, "--seeds", *map(str, seeds)]))
    del args["out"], args["render"]
    reference = {"worst": [0.0, 1100.0], "ideal": [1.0, 800.0]}
    bounds = {"backbone": 800, "min": 800, "max": 1000, "additive": True, "dearest": {}}
    bounds["architectures"] = 8
    runs = [fake_run(k, s, hvs[k][s]) for s in seeds for k in bench.STRATEGIES]
    return {
        "command": ".venv/bin/python benchmarks/search_efficiency.py --data digits",
        "date": "2026-01-01 00:00 UTC",
        "machine": dict.fromkeys(
            ["platform", "cpu", "cores", "torch_threads", "gpu", "python", "torch"], "x"
        )
        | {"lightning": "x", "optuna": "x"},
        "total_s": 60.0,
        "args": args,
        "problem": {
            "data": "digits (digits), 10 train / 20 val images per class, split_seed 0",
            "split_sizes": {"train": 100, "val": 200, "test": 0},
            "flops_bounds": bounds,
            "reference": reference,
            "alternative_reference": {"worst": [0.0, 1100.0], "ideal": [1.0, 0.0]},
            "space": bench.SPACE,
        },
        "summary": [],
        "runs": runs,
    }


def holm(p_values):
    """Holm's step-down adjustment by hand, for four p-values."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted, running = [0.0] * len(p_values), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def test_comparison_with_random_is_a_paired_t_test_with_holm(bench):
    scipy_stats = pytest.importorskip("scipy.stats")
    runs = [fake_run(k, s, HVS[k][s]) for s in (0, 1, 2) for k in bench.STRATEGIES]
    runs.reverse()  # pairing is by seed, not by position
    bench.add_comparisons(runs)
    tests = measures.seed_tests(runs, list(bench.STRATEGIES))
    assert tests["random"]["vs_random"] is None
    others = [k for k in bench.STRATEGIES if k != "random"]
    expected_p = []
    for key in others:
        got = tests[key]["vs_random"]
        diffs = [a - b for a, b in zip(HVS[key], HVS["random"], strict=True)]
        mean = sum(diffs) / 3
        assert got["n"] == 3 and got["mean"] == pytest.approx(mean, abs=1e-12)
        if key == "nsga2-moasha":  # every difference 0: t undefined, p taken as 1
            assert got["t"] is None and got["p_value"] == 1.0
            assert got["low"] == got["high"] == 0.0
            expected_p.append(1.0)
            continue
        sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 2)
        assert got["sd"] == pytest.approx(sd)
        assert got["t"] == pytest.approx(mean / (sd / math.sqrt(3)))
        ref = scipy_stats.ttest_rel(HVS[key], HVS["random"])
        assert got["t"] == pytest.approx(ref.statistic)
        assert got["p_value"] == pytest.approx(ref.pvalue)
        ci = ref.confidence_interval(0.95)
        assert (got["low"], got["high"]) == (pytest.approx(ci.low), pytest.approx(ci.high))
        expected_p.append(ref.pvalue)
    adjusted = holm(expected_p)
    for key, p_adj in zip(others, adjusted, strict=True):
        got = tests[key]["vs_random"]
        assert got["p_adj"] == pytest.approx(p_adj) and got["family"] == 4
        assert got["differs"] is bool(p_adj < 0.05)
    # HV kept against NSGA-II: the per-seed ratios tested against 1, Holm over the four others.
    kept = tests["tpe-pareto"]["hv_kept_test"]
    ratios = [a / b for a, b in zip(HVS["tpe-pareto"], HVS["nsga2"], strict=True)]
    ref = scipy_stats.ttest_1samp(ratios, 1.0)
    assert kept["mean"] + 1 == pytest.approx(sum(ratios) / 3)
    assert kept["p_value"] == pytest.approx(ref.pvalue) and kept["family"] == 4
    assert tests["nsga2"]["hv_kept_test"] is None


def test_comparison_with_one_seed_gives_no_test(bench):
    runs = [fake_run(k, 0, HVS[k][0]) for k in bench.STRATEGIES]
    bench.add_comparisons(runs)
    got = measures.seed_tests(runs, list(bench.STRATEGIES))["tpe-pareto"]["vs_random"]
    assert got["n"] == 1 and got["mean"] == pytest.approx(0.36 - 0.30)
    assert got["p_value"] is None and got["p_adj"] is None and got["differs"] is None
    lines = report.comparison_tables(bench.summarise(runs, list(bench.STRATEGIES)))
    row = next(line for line in lines if line.startswith("| MO-TPE + Pareto pruner |"))
    assert row.endswith("| n/a (one seed: no test possible) |")


def test_rendering_an_old_json_adds_the_comparison_with_random(bench, tmp_path, capsys):
    source = tmp_path / "old.json"
    raw = fake_raw(bench, [0, 1, 2], NOISY)
    source.write_text(json.dumps(raw))
    before = source.read_bytes()
    summary = bench.main(["--render", str(source)])  # in place: old.md beside old.json
    assert source.read_bytes() == before  # the raw data is never rewritten
    text = (tmp_path / "old.md").read_text()
    assert "### Compared with random search (test over seeds)" in text
    assert "| differs from random (p_adj < 0.05) |" in text
    assert "Holm-adjusted over the 4 comparisons" in text
    row = next(line for line in text.splitlines() if line.startswith("| NSGA-II, no pruning | 3 |"))
    assert row.split(" | ")[2] == "+0.0200"  # mean of (0.02, 0.01, 0.03)
    assert "rendered again from the JSON" in text
    assert f"Command: `{raw['command']}`" in text  # the original command stays in the header
    # The Problem section states the validation split's binomial standard error.
    bests = [0.2 + NOISY[r["strategy"]][r["seed"]] for r in raw["runs"]]
    p = sum(bests) / len(bests)
    se = math.sqrt(p * (1 - p) / 200)
    assert f"sqrt(p (1 - p) / n) = {se:.4f} at p = {p:.4f}" in text
    assert "n = 200 val images" in text
    # No strategy differs at these sizes: the verdict says so and names what to raise.
    assert all(s["vs_random"] is None or not s["vs_random"]["differs"] for s in summary)
    assert "**No strategy differs from random search**" in text
    assert "cannot tell the strategies apart" in text
    for flag in ("`--val-per-class`", "`--epochs`", "`--seeds`"):
        assert flag in text
    # Rendered beside another .md, the JSON (with the tests in its summary rows) is written.
    bench.main(["--render", str(source), "--out", str(tmp_path / "new.md")])
    rows = json.loads((tmp_path / "new.json").read_text())["summary"]
    tpe = next(r for r in rows if r["strategy"] == "tpe-pareto")
    assert tpe["vs_random"]["n"] == 3 and tpe["vs_random"]["mean"] == pytest.approx(0.11 / 3)
    assert "No strategy differs" in capsys.readouterr().out


def test_rendering_names_the_strategies_that_differ_from_random(bench, tmp_path):
    source = tmp_path / "differs.json"
    source.write_text(json.dumps(fake_raw(bench, [0, 1, 2], HVS)))
    bench.main(["--render", str(source)])
    text = (tmp_path / "differs.md").read_text()
    row = next(
        line for line in text.splitlines() if line.startswith("| MO-TPE + Pareto pruner | 3 |")
    )
    assert row.endswith("| 0.014 | yes |")
    assert "* Differs from random search (Holm-adjusted p < 0.05): MO-TPE + Pareto pruner" in text
    assert "No strategy differs" not in text


def test_rendering_one_seed_says_no_test_is_possible(bench, tmp_path):
    source = tmp_path / "one.json"
    source.write_text(json.dumps(fake_raw(bench, [0])))
    bench.main(["--render", str(source)])
    text = (tmp_path / "one.md").read_text()
    assert "n/a (one seed: no test possible)" in text
    assert "one seed, so no test over seeds is possible" in text


def test_rendering_without_random_search_says_there_is_no_comparison(bench, tmp_path):
    raw = fake_raw(bench, [0, 1, 2])
    raw["runs"] = [r for r in raw["runs"] if r["strategy"] != "random"]
    raw["args"]["strategies"] = [k for k in bench.STRATEGIES if k != "random"]
    source = tmp_path / "norandom.json"
    source.write_text(json.dumps(raw))
    bench.main(["--render", str(source)])
    text = (tmp_path / "norandom.md").read_text()
    assert "Random search was not among the strategies" in text
    assert "| differs from NSGA-II (p_adj < 0.05) |" in text


def test_val_fraction_reaches_the_study_config_and_runs_use_sampled_trials_only(bench):
    args = bench.parse_args([*TINY, "--val-fraction", "0.5"])
    cfg = bench.study_config(args, bench.STRATEGIES["random"], 0, "/tmp/unused")
    assert cfg.data.val_fraction == 0.5
    assert cfg.evaluation.baselines is False and cfg.evaluation.seeding == "per_trial"
    default = bench.study_config(bench.parse_args(TINY), bench.STRATEGIES["random"], 0, "/x")
    assert default.data.val_fraction == 0.1  # DataConfig's default when the flag is absent
