"""benchmarks/strategies.py: its scores against a direct computation, its tests, its resume."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent / "nas"))
from _tables import synthetic_table, synthetic_table_data

from benchmarks._harness import read_runs
from nas.replay import replay_search, reported_digests, reports_best, true_front_share
from nas.stats import holm_adjust


@pytest.fixture(scope="module")
def bench(load_benchmark):
    return load_benchmark("strategies")


@pytest.fixture
def table_file(tmp_path):
    path = tmp_path / "synthetic.json"
    path.write_text(json.dumps(synthetic_table_data()))
    return path


def test_scorer_trajectory_matches_the_replay_scores(bench):
    import optuna

    table = synthetic_table()
    result = replay_search(table, optuna.samplers.RandomSampler(seed=4), n_trials=7, seed=2)
    shares, best, regret = bench.Scorer(table).trajectory(result.study)
    means = {a.digest: a.mean_val_acc() for a in table.architectures}
    for n in range(1, 8):
        reported = reported_digests(result.study, n)
        assert shares[n - 1] == pytest.approx(true_front_share(table, reported))
        assert best[n - 1] == reports_best(table, reported)
        if reported:
            top = max(means[d] for d in reported)
            assert regret[n - 1] == pytest.approx(max(means.values()) - top)


def test_population_fits_the_budget(bench):
    assert [bench.population(b) for b in (10, 20, 50, 100)] == [4, 4, 10, 20]


def test_run_summarise_and_resume(bench, table_file, tmp_path):
    out = tmp_path / "strategies.md"
    args = ["--table", str(table_file), "--seeds", "6", "--budgets", "4", "8"]
    args += ["--samplers", "random", "nsga2", "additive", "--pruners", "none", "moasha"]
    args += ["--out", str(out)]
    rows = bench.main(args)
    runs = read_runs(out)
    # random / additive: one run per seed at the largest budget; NSGA-II one per budget
    assert len(runs) == 6 * (2 + 2 + 2 * 2)
    assert {(r["budget"], r["strategy"]) for r in rows} == {
        (b, k)
        for b in (4, 8)
        for k in ("random", "random+moasha", "nsga2", "nsga2+moasha", "additive", "additive+moasha")
    }
    # the test against random search, recomputed
    control = [r["hv_share"][7] for r in bench.at_budget(runs, "random", 8)]
    tested = [r for r in rows if r["strategy"] != "random"]
    for r in tested:
        hv = [
            x["hv_share"][r["budget"] - 1]
            for x in bench.at_budget(runs, r["strategy"], r["budget"])
        ]
        assert r["hv_mean"] == pytest.approx(np.mean(hv))
        if r["budget"] == 8:
            assert r["p_value"] == pytest.approx(
                stats.mannwhitneyu(hv, control, alternative="greater").pvalue
            )
    holm = holm_adjust([r["p_value"] for r in tested])
    assert [r["p_holm"] for r in tested] == pytest.approx(holm)
    text = out.read_text()
    assert "### Budget 8 trials" in text and "| additive |" in text
    assert out.with_suffix(".html").is_file()
    # the same command again runs nothing new
    bench.main(args)
    assert len(read_runs(out)) == len(runs)
    assert out.with_suffix(".runs.jsonl.gz").is_file()


def test_a_budget_beyond_the_table_is_refused(bench, table_file, tmp_path):
    with pytest.raises(SystemExit, match="exceed the table's 9 architectures"):
        bench.main(["--table", str(table_file), "--budgets", "20", "--out", str(tmp_path / "x.md")])


def test_the_defaults_take_the_best_winner_or_else_the_cheapest_tie(bench):
    def row(key, hv, epochs, verdict):
        return {
            "budget": 48,
            "strategy": key,
            "hv_mean": hv,
            "epochs_mean": epochs,
            "verdict": verdict,
        }

    rows = [
        row("random", 0.95, 500, "-"),
        row("a", 0.96, 600, "tie"),
        row("b", 0.94, 200, "worse"),
        row("c", 0.95, 300, "tie"),
    ]
    assert bench.cheapest_tie(rows, 48)["strategy"] == "c"
    rows += [row("d", 0.97, 700, "better"), row("e", 0.98, 900, "better")]
    assert bench.cheapest_tie(rows, 48)["strategy"] == "e"
    assert bench.cheapest_tie(rows, 10) is None
