"""benchmarks/search_efficiency.py: its measures, and a smoke run on the bundled digits."""

import argparse
import importlib.util
import itertools
import json
import math
from pathlib import Path

import pytest

from search_spaces.build import build_model
from search_spaces.cost import count_flops
from search_spaces.space import SearchSpace
from search_spaces.spec import ArchSpec

PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "search_efficiency.py"
TINY = ["--data", "digits", "--trials", "4", "--epochs", "2", "--per-class", "10"]
TINY += ["--val-per-class", "5", "--width", "4", "--threads", "1", "--n-startup-trials", "1"]
TINY += ["--reduction-factor", "2"]  # MO-ASHA's one rung (1 epoch) needs 1 x 2 <= 2 epochs


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("search_efficiency_bench", PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_front_recovered_counts_weakly_dominated_and_equal_points(bench):
    base = [[0.9, 10.0], [0.8, 5.0]]  # (val_acc up, flops down)
    assert bench.front_recovered(base, base) == 1.0  # equal points count
    assert bench.front_recovered(base, [[0.95, 4.0]]) == 1.0  # one point dominating both
    assert bench.front_recovered(base, [[0.9, 9.0]]) == 0.5  # covers (0.9, 10) only
    assert bench.front_recovered(base, [[0.85, 6.0]]) == 0.0  # better in one, worse in other
    assert bench.front_recovered(base, []) == 0.0
    assert math.isnan(bench.front_recovered([], [[0.9, 1.0]]))


def test_value_at_is_a_step_function(bench):
    xs, ys = [0, 5, 10], [0.0, 0.2, 0.3]
    assert [bench.value_at(xs, ys, x) for x in (-1, 0, 4, 5, 9, 10, 99)] == [
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
    choices = bench.scope_choices(space)
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
    assert {r["strategy"] for r in data["runs"]} == set(bench.STRATEGIES)
    for run in data["runs"]:
        history = run["history"]
        assert history["finished"][-1] == 4 and history["epochs_spent"][-1] == run["epochs_spent"]
        assert history["hv"] == sorted(history["hv"])  # a front only grows
    text = out.read_text()
    assert "Command: `.venv/bin/python benchmarks/search_efficiency.py --data digits" in text
    assert "saved >= 40%" in text and "Machine:" in text
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
    if bench.cifar_archive() is None:
        pytest.skip(
            f"CIFAR-10 archive {bench.data_dir() / bench.CIFAR_ARCHIVE} not found: set "
            "ATTN_NAS_DATA to the folder holding cifar10-jpeg.tar.gz (see ../shared/data/README.md)"
        )
    args = ["--data", "cifar10", "--trials", "2", "--epochs", "1", "--seeds", "0"]
    args += ["--per-class", "4", "--val-per-class", "4", "--threads", "1"]
    summary = bench.main([*args, "--strategies", "nsga2", "--out", "-"])
    assert summary[0]["complete"] == 2 and summary[0]["hv"] > 0
