"""benchmarks/supernet.py: the multi-trial replay, fronts, and a smoke run on digits."""

import json

import pytest

from search_spaces.space import SearchSpace


@pytest.fixture(scope="module")
def bench(load_benchmark):
    return load_benchmark("supernet")


def test_the_space_is_enumerated_once_each(bench):
    space = SearchSpace(**{**bench.SPACE, "backbone": "resnet8"})
    specs = bench.all_architectures(space, 3, 10)
    assert len(specs) == space.size() == 125
    assert len({s.digest() for s in specs}) == 125


def test_the_replay_trains_distinct_architectures_up_to_its_budget(bench):
    space = SearchSpace(**{**bench.SPACE, "backbone": "resnet8"})
    specs = bench.all_architectures(space, 3, 10)
    table = {s.digest(): (i / 125, float(i % 7)) for i, s in enumerate(specs)}
    trained = bench.replay_multi_trial(space, table, 20, seed=0, dims=(3, 10))
    assert len(trained) == len(set(trained)) == 20
    assert trained == bench.replay_multi_trial(space, table, 20, seed=0, dims=(3, 10))
    # The front: nothing in it dominated by another point.
    chosen = bench.front({d: table[d] for d in trained})
    for d in chosen:
        acc, cost = table[d]
        assert not any(
            a >= acc and c <= cost and (a, c) != (acc, cost) for a, c in (table[e] for e in trained)
        )


@pytest.mark.slow
def test_smoke_run_on_digits(bench, tmp_path):
    out = tmp_path / "supernet.md"
    argv = ["--preset", "quick", "--blocks", "none", "se", "--sampler-seeds", "2"]
    result = bench.main([*argv, "--threads", "1", "--out", str(out)])
    raw = json.loads(out.with_suffix(".json").read_text())
    assert raw["raw"]["problem"]["space_size"] == 8 and raw["raw"]["problem"]["supernet_steps"] > 0
    assert set(raw["raw"]["seed_b"]) >= set(raw["raw"]["confirm_set"]) | set(raw["raw"]["rank_set"])
    assert result["supernet_then_confirm"]["hv_norm"] > 0
    assert result["targets"]["compute_ratio"] == pytest.approx(10, rel=0.2)
    assert "## Targets" in out.read_text()
    # A second run takes the stand-alone runs of the first instead of training them again.
    again = tmp_path / "again.md"
    bench.main([*argv, "--top", "3", "--reuse", str(out.with_suffix(".json")), "--out", str(again)])
    second = json.loads(again.with_suffix(".json").read_text())["raw"]
    assert second["seed_a"] == raw["raw"]["seed_a"] and second["fit_s_a"] == raw["raw"]["fit_s_a"]
    assert len(second["confirm_set"]) == 3
