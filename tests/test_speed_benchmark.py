"""benchmarks/speed.py: the models it times and its speed-up intervals."""

import pytest

from search_spaces.backbones import backbone_sites


@pytest.fixture(scope="module")
def bench(load_benchmark):
    return load_benchmark("speed")


def test_every_site_of_the_backbone_gets_the_block(bench):
    spec = bench.spec_of("resnet20", {}, "se")
    assert set(spec.sites) == {s.name for s in backbone_sites("resnet20")}
    assert {choice.block for choice in spec.sites.values()} == {"se"}
    assert bench.spec_of("resnet8", {"width": 16}, "none").attended_sites() == {}


def test_speedup_is_the_ratio_of_median_times_with_an_interval_around_it(bench):
    plain, faster = [0.010, 0.012, 0.011, 0.030], [0.005, 0.0055, 0.006, 0.005]
    ratio, low, high = bench.speedup_interval(plain, faster)
    assert ratio == pytest.approx(0.0115 / 0.00525)
    assert low <= ratio <= high
    same = [0.01] * 5
    assert bench.speedup_interval(same, same) == (1.0, 1.0, 1.0)


@pytest.mark.slow  # compiles twice (about a minute with a cold inductor cache)
def test_smoke_run_times_every_variant(bench, tmp_path):
    out = tmp_path / "speed.md"
    assert bench.main(["--smoke", "--out", str(out)]) == 0
    rows = [line for line in out.read_text().splitlines() if line.startswith("| resnet8 |")]
    assert [row.split(" | ")[1] for row in rows] == ["none", "se"]
    assert (tmp_path / "speed.json").is_file()
