"""benchmarks/pruning.py: its per-epoch ranking and its pruner scores against direct computations."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent / "nas"))
from _tables import synthetic_table_data

from nas.tabular import table_from_data


@pytest.fixture(scope="module")
def bench(load_benchmark):
    return load_benchmark("pruning")


def _noisy_table_data(seed: int = 0) -> dict:
    """The synthetic table with noise on every curve, so ranks differ from epoch to epoch."""
    data = synthetic_table_data(seeds=3)
    rng = np.random.default_rng(seed)
    for arch in data["architectures"]:
        for run in arch["runs"]:
            run["val_acc"] = [float(v + rng.normal(0, 0.05)) for v in run["val_acc"]]
    return data


def test_epoch_ranking_is_the_seed_mean_rho_against_the_other_seeds(bench):
    table = table_from_data(_noisy_table_data())
    rows = bench.epoch_ranking(table, n_boot=200)
    curves = np.array([[r.val_acc for r in a.runs] for a in table.architectures])
    finals = curves[:, :, -1]
    for row in rows:
        expected = np.mean(
            [
                stats.spearmanr(
                    curves[:, s, row["epochs"] - 1], np.delete(finals, s, axis=1).mean(axis=1)
                )[0]
                for s in range(3)
            ]
        )
        assert row["spearman_rho"] == pytest.approx(expected, abs=1e-12)
        assert row["low"] <= row["high"]
    assert [r["epochs"] for r in rows] == [1, 2, 3, 4]


def test_settings_keep_a_promotion_for_every_first_rung(bench):
    keys = [s.key for s in bench.settings(12)]
    assert keys[0] == "none"
    assert "moasha r=6 eta=2" in keys and "moasha r=7 eta=2" not in keys
    assert "moasha r=4 eta=3" in keys and "moasha r=5 eta=3" not in keys
    assert "noise r=6 eta=2" in keys and "noise r=4 eta=3" in keys
    assert [k for k in keys if k.startswith("pareto")] == [
        "pareto warm-up 0",
        "pareto warm-up 3",
        "pareto warm-up 6",
    ]


def test_replayed_settings_count_epochs_and_false_prunes(bench, tmp_path):
    path = tmp_path / "synthetic.json"
    path.write_text(json.dumps(_noisy_table_data()))
    grid = [bench.Setting("none"), bench.Setting("moasha", 1, 2)]
    runs = [bench.run_one((str(path), s, seed, 9, False)) for s in grid for seed in range(6)]
    none = [r for r in runs if r["setting"] == "none"]
    assert all(r["front_pruned"] == 0 for r in none)
    assert all(r["epochs"] <= 9 * 4 for r in runs)
    rows = {r["setting"]: r for r in bench.summarise(runs, grid)}
    moasha = [r for r in runs if r["setting"] == "moasha r=1 eta=2"]
    pooled = sum(r["front_pruned"] for r in moasha) / sum(r["front_sampled"] for r in moasha)
    assert rows["moasha r=1 eta=2"]["false_prune"] == pytest.approx(pooled)
    assert rows["none"]["saved"] == 0.0 and rows["moasha r=1 eta=2"]["saved"] > 0.0
    expected_p = stats.mannwhitneyu(
        [r["hv_share"] for r in moasha], [r["hv_share"] for r in none], alternative="less"
    ).pvalue
    assert rows["moasha r=1 eta=2"]["p_worse"] == pytest.approx(expected_p)
    assert rows["none"]["p_worse"] is None
