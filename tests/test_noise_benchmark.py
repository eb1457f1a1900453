"""benchmarks/noise.py: its seed scheme, architectures and statistics, and a smoke run on digits."""

import argparse
import json
import math

import pytest
import torch

from search_spaces.build import build_model
from search_spaces.space import spec_to_params

TINY = ["--data", "digits", "--seeds", "0", "1", "--epochs", "2", "--width", "4"]
TINY += ["--per-class", "10", "--val-per-class", "5", "--rank-archs", "4", "--threads", "1"]


@pytest.fixture(scope="module")
def bench(load_benchmark):
    return load_benchmark("noise")


def _space(bench, width=4):
    return bench.search_space(argparse.Namespace(backbone="resnet8", width=width))


def test_common_seeds_are_shared_and_independent_seeds_distinct(bench):
    seeds = [0, 1, 2, 3, 4, 5]
    plan = bench.seed_plan(seeds, len(bench.ARCHS), [1000, 2000])
    for r, s in enumerate(seeds):
        assert {plan["common"][r, a] for a in range(len(bench.ARCHS))} == {s}
    independent = list(plan["independent"].values())
    assert len(independent) == len(seeds) * len(bench.ARCHS) == len(set(independent))
    assert not set(independent) & set(seeds)
    assert not set(independent) & {1000, 2000}
    assert bench.run_seed("independent", 2, 3) == 100_000 + 2_000 + 3
    assert bench.run_seed("common", 7, 3) == 7
    with pytest.raises(ValueError, match="mode"):
        bench.run_seed("paired", 0, 0)


@pytest.mark.parametrize(
    ("seeds", "rank", "message"),
    [
        ([0, 0, 1], [1000, 2000], "distinct"),
        ([0], [1000, 2000], "at least 2"),
        ([-1, 0], [1000, 2000], "distinct ints >= 0"),
        ([0, 1], [1000, 1000], "rank-seed"),
        ([0, 1], [1, 2000], "rank-seed"),  # a common seed
        ([0, 1], [100_001, 2000], "rank-seed"),  # an independent seed
        ([0, 100_000], [1000, 2000], "below"),
    ],
)
def test_seed_plan_refuses_colliding_seeds(bench, seeds, rank, message):
    with pytest.raises(ValueError, match=message):
        bench.seed_plan(seeds, len(bench.ARCHS), rank)


def test_everywhere_architectures_are_what_they_say(bench):
    space = _space(bench)
    assert [a.key for a in bench.ARCHS] == ["none", "se", "eca", "cbam"]
    expected = {
        "none": ("none", {}),
        "se": ("se", {"reduction": 8}),
        "eca": ("eca", {"kernel_size": 3}),
        "cbam": ("cbam", {"reduction": 8}),
    }
    specs = [bench.everywhere(a, space, 1, 10) for a in bench.ARCHS]
    scopes = space.scopes()
    assert len(scopes) == 3  # every stage of the ResNet-8
    for arch, spec in zip(bench.ARCHS, specs, strict=True):
        block, params = expected[arch.key]
        for sites in scopes.values():
            for site in sites:
                choice = spec.choice(site)
                assert choice.block == block and choice.position == "standard"
                assert {k: choice.params[k] for k in params} == params
        spec_to_params(spec, space)  # in the space
    assert not specs[0].attended_sites()
    assert len({s.digest() for s in specs}) == len(specs)


def test_a_common_seed_gives_every_architecture_the_same_backbone_weights(bench):
    space = _space(bench)
    none = build_model(bench.everywhere(bench.ARCHS[0], space, 1, 10), seed=3).state_dict()
    for arch in bench.ARCHS[1:]:
        weights = build_model(bench.everywhere(arch, space, 1, 10), seed=3).state_dict()
        assert set(none) < set(weights)  # the blocks add parameters, the backbone's stay
        assert all(torch.equal(none[k], weights[k]) for k in none)
    other = build_model(bench.everywhere(bench.ARCHS[0], space, 1, 10), seed=4).state_dict()
    assert not all(torch.equal(none[k], other[k]) for k in none)


def test_rank_architectures_are_none_plus_distinct_seeded_draws(bench):
    space = _space(bench)
    first = bench.rank_architectures(space, 12, 0, 1, 10)
    assert len(first) == 12 and not first[0].attended_sites()
    assert len({s.digest() for s in first}) == 12
    for spec in first:
        spec_to_params(spec, space)
    again = bench.rank_architectures(space, 12, 0, 1, 10)
    assert [s.digest() for s in again] == [s.digest() for s in first]
    other = bench.rank_architectures(space, 12, 1, 1, 10)
    assert [s.digest() for s in other] != [s.digest() for s in first]


def test_f_ratio_interval(bench):
    low, high = bench.f_ratio_interval(1.0, 6, 6)
    assert low == pytest.approx(1 / math.sqrt(7.146381828732832))
    assert high == pytest.approx(math.sqrt(7.146381828732832))
    low, high = bench.f_ratio_interval(2.0, 6, 6)
    assert low < 2.0 < high
    narrow = bench.f_ratio_interval(2.0, 60, 60)
    assert low < narrow[0] < 2.0 < narrow[1] < high
    assert all(math.isnan(v) for v in bench.f_ratio_interval(math.inf, 6, 6))


def _synthetic(bench, n=1000):
    """Raw results where CBAM is always 3 images better than none with common seeds."""
    base = [400, 410, 395, 420, 405, 398]
    runs = []
    for r, count in enumerate(base):
        for a, arch in enumerate(bench.ARCHS):
            common = count + 3 * (arch.key == "cbam") + (r % 2) * (arch.key == "se")
            independent = count + (r * r + 3 * a * r) % 11
            for mode, value in (("common", common), ("independent", independent)):
                runs.append(
                    {"part": "spread", "mode": mode, "arch": arch.key, "replicate": r}
                    | {"val_acc": value / n, "test_acc": value / n}
                )
    return {
        "runs": runs,
        "problem": {"split_sizes": {"train": 100, "val": n, "test": n}},
        "archs": [{"key": a.key, "label": a.label} for a in bench.ARCHS],
        "args": {"seeds": list(range(6))},
    }


def test_analyse_pairs_by_replicate_and_divides_the_sds(bench):
    result = bench.analyse(_synthetic(bench))
    spread = {(r["mode"], r["arch"]): r for r in result["spread"]}
    none = spread["common", "none"]["val_acc"]
    assert none["n"] == 6 and none["mean"] == pytest.approx(404.6666667 / 1000)
    assert none["binomial_se"] == pytest.approx(math.sqrt(none["mean"] * (1 - none["mean"]) / 1000))
    paired = {(p["mode"], p["arch"]): p for p in result["paired"]}
    cbam = paired["common", "cbam"]["val_acc"]
    # Exactly 3 images better every time: no spread, the difference is certain (nas.stats).
    assert cbam["mean"] == pytest.approx(0.003) and cbam["sd"] == 0 and cbam["significant"]
    se = paired["common", "se"]["val_acc"]
    assert se["sd"] == pytest.approx(math.sqrt(0.3) / 1000)  # 0, 1, 0, 1, 0, 1 images
    crn = {c["arch"]: c["val_acc"] for c in result["crn"]}
    indep_se = paired["independent", "se"]["val_acc"]["sd"]
    assert crn["se"]["ratio"] == pytest.approx(indep_se / se["sd"])
    assert crn["cbam"]["ratio"] == math.inf
    assert crn["cbam"]["corr_common"] == pytest.approx(1.0)  # none + 3 images, every replicate
    assert -1 <= crn["se"]["corr_independent"] <= 1
    assert result["rank"] is None and result["repeat"] is None
    text = "\n".join(bench.tables(_synthetic(bench), result))
    assert "| common | CBAM (r=8) everywhere |" in text


def test_benchmark_runs_on_digits(bench, tmp_path, capsys):
    out = tmp_path / "noise.md"
    result = bench.main([*TINY, "--out", str(out)])
    printed = capsys.readouterr().out
    assert "### Seed-to-seed spread" in printed and "Kendall tau-b" in printed
    assert len(result["spread"]) == 8 and len(result["paired"]) == 6 and len(result["crn"]) == 3
    assert result["rank"]["n"] == 4 and -1 <= result["rank"]["kendall_tau"] <= 1
    assert result["repeat"]["identical"]  # deterministic on the CPU

    data = json.loads(out.with_suffix(".json").read_text())
    for key in ("command", "date", "machine", "total_s", "args", "problem", "archs", "runs"):
        assert key in data
    assert len(data["machine"]["load_average"]) == 2
    runs = data["runs"]
    assert len(runs) == 2 * 4 * 2 + 2 * 4 + 1
    spread = [r for r in runs if r["part"] == "spread"]
    assert all("val_acc" in r and "test_acc" in r and "seed" in r for r in spread)
    common = {(r["replicate"], r["seed"]) for r in spread if r["mode"] == "common"}
    assert common == {(0, 0), (1, 1)}
    independent = [r["seed"] for r in spread if r["mode"] == "independent"]
    assert len(set(independent)) == 8
    rank = [r for r in runs if r["part"] == "rank"]
    assert {r["seed"] for r in rank if r["evaluation"] == "A"} == {1000}
    assert {r["seed"] for r in rank if r["evaluation"] == "B"} == {2000}
    assert data["problem"]["split_sizes"]["val"] == 50

    text = out.read_text()
    assert text.startswith("# Evaluation noise")
    assert "Command: `.venv/bin/python benchmarks/noise.py --data digits" in text
    for heading in (
        "Machine:",
        "load average at start / end",
        "Total run time",
        "### Seed-to-seed spread",
        "### Paired difference to `none`",
        "### What common random numbers buy",
        "### Rank stability: 4 architectures",
        "Reproducibility:",
        "## Reading",
    ):
        assert heading in text

    # --render rebuilds the same tables from the JSON without training anything.
    again = bench.main(["--render", str(out.with_suffix(".json")), "--out", str(tmp_path / "r.md")])
    assert again["crn"] == result["crn"] and again["rank"] == result["rank"]
    rendered = (tmp_path / "r.md").read_text()
    assert "rendered again from the JSON" in rendered
    assert rendered.split("## Problem")[1] == text.split("## Problem")[1]


def test_too_few_rank_architectures_are_refused(bench, capsys):
    with pytest.raises(SystemExit):
        bench.main([*TINY, "--rank-archs", "2", "--out", "-"])
    assert "--rank-archs must be >= 3" in capsys.readouterr().err


def test_cifar_without_the_archive_says_where_to_put_it(bench, tmp_path, monkeypatch):
    monkeypatch.setenv("ATTN_NAS_DATA", str(tmp_path))
    with pytest.raises(SystemExit, match="ATTN_NAS_DATA"):
        bench.main(["--quick", "--threads", "1", "--out", "-"])
