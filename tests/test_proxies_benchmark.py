"""benchmarks/proxies.py: its scores are the proxies' and its rankings the direct computation."""

import math
import sys
from pathlib import Path

import optuna
import pytest
import torch
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent / "nas"))
from _tables import synthetic_table

from nas.stats import rank_correlation
from search_spaces.build import build_model
from search_spaces.proxies import naswot, synflow
from search_spaces.space import suggest_arch


@pytest.fixture(scope="module")
def bench(load_benchmark):
    return load_benchmark("proxies")


def test_scores_and_rankings_match_a_direct_computation(bench):
    table = synthetic_table()
    images = torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    scores = bench.proxy_scores(table, images, init_seeds=2)
    arch = table.architectures[5]
    spec = suggest_arch(optuna.trial.FixedTrial(arch.params), table.space, in_channels=1)
    flows = [math.log10(synflow(build_model(spec, seed=s), (1, 8, 8))) for s in range(2)]
    patterns = [naswot(build_model(spec, seed=s), images) for s in range(2)]
    assert scores["synflow"][5] == pytest.approx(sum(flows) / 2)
    assert scores["naswot"][5] == pytest.approx(sum(patterns) / 2)
    assert scores["per_init"][5] == {"synflow": flows, "naswot": patterns}

    rows = {r["ranking"]: r for r in bench.rankings(table, scores, n_boot=50)}
    truth = [a.mean_val_acc() for a in table.architectures]
    params = [a.cost["params"] for a in table.architectures]
    expected = rank_correlation(params, truth, n_boot=50)
    assert rows["parameters"]["spearman_rho"] == pytest.approx(expected.spearman_rho)
    assert rows["parameters"]["rho_low"] == pytest.approx(expected.rho_low)
    first = [s["naswot"][0] for s in scores["per_init"]]
    second = [s["naswot"][1] for s in scores["per_init"]]
    agreement = stats.spearmanr(first, second)[0]
    assert rows["NASWOT (untrained)"]["init_agreement"] == pytest.approx(agreement)
    ceiling = rows["one trained run (seed 0) vs the other seeds"]
    assert ceiling["spearman_rho"] == pytest.approx(1.0)  # the synthetic seeds keep the order
