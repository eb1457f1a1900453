"""benchmarks/runtime_latency.py: its rankings are nas.stats.rank_correlation's, the noise rows pair
each architecture with its own re-measurement, and a re-run resumes from the log."""

import json

import pytest

from nas.stats import rank_correlation


@pytest.fixture(scope="module")
def bench(load_benchmark):
    return load_benchmark("runtime_latency")


def _record(i: int, scale: float = 1.0) -> dict:
    return {
        "digest": f"d{i}",
        "flops": 100 + 10 * i,
        "params": 50 - 3 * i + (i % 2) * 7,
        "latency_ms_b1": scale * (1.0 + 0.1 * ((i * 7) % 5)),
        "latency_ms_bN": scale * (10.0 + i),
        "ort_latency_ms_b1": scale * (0.2 + 0.01 * ((i * 3) % 6)),
        "ort_latency_ms_bN": scale * (4.0 + 0.5 * i),
    }


def test_rankings_and_noise_rows_are_the_direct_rank_correlations(bench):
    first = [_record(i) for i in range(6)]
    # The re-measured architectures come in another order: rows pair them by digest.
    second = [{**_record(i, 1.05), "ort_latency_ms_b1": 0.3 - 0.01 * i} for i in (2, 0, 1, 3)]
    rows = {r["ranking"]: r for r in bench.correlations(first, second, n_boot=50)}
    expected = rank_correlation(
        [r["ort_latency_ms_b1"] for r in first], [r["latency_ms_b1"] for r in first], n_boot=50
    )
    row = rows["ONNX Runtime b1 vs eager b1"]
    assert row["n"] == 6 and row["kendall_tau"] == pytest.approx(expected.kendall_tau)
    assert row["rho_low"] == pytest.approx(expected.rho_low)
    noise = rows["noise: ort_latency_ms_b1 vs its re-measurement"]
    before = [first[i]["ort_latency_ms_b1"] for i in (2, 0, 1, 3)]
    again = [0.3 - 0.01 * i for i in (2, 0, 1, 3)]
    assert noise["n"] == 4
    assert noise["spearman_rho"] == pytest.approx(rank_correlation(before, again).spearman_rho)
    # A uniform 5% slow-down keeps every rank: the eager noise rows are 1.
    assert rows["noise: latency_ms_bN vs its re-measurement"]["kendall_tau"] == pytest.approx(1.0)
    assert bench.relative_change(first, second)["latency_ms_bN"] == pytest.approx(0.05)


@pytest.mark.slow  # builds, exports and times a dozen models
def test_a_run_writes_its_results_and_a_rerun_measures_nothing_again(bench, tmp_path, monkeypatch):
    out = tmp_path / "runtime_latency.md"
    argv = ["--archs", "4", "--recheck", "3", "--repeats", "3", "--warmup", "1"]
    argv += ["--n-boot", "50", "--out", str(out)]
    assert bench.main(argv) == 0
    text = out.read_text()
    assert f"Command: `.venv/bin/python benchmarks/runtime_latency.py {' '.join(argv)}`" in text
    for row in ("| ONNX Runtime b1 vs eager b1 | 4 |", "| noise: ort_latency_ms_bN vs its "):
        assert row in text
    raw = json.loads(out.with_suffix(".json").read_text())
    assert len(raw["architectures"]) == 4 and len(raw["rechecked"]) == 3
    first = raw["architectures"][0]
    assert first["ort_latency_ms_bN"] > first["ort_latency_ms_b1"] > 0
    assert [r["digest"] for r in raw["rechecked"]] == [
        r["digest"] for r in raw["architectures"][:3]
    ]

    def unexpected(*args, **kwargs):
        raise AssertionError("a logged architecture was measured again")

    monkeypatch.setattr(bench, "measure", unexpected)
    assert bench.main(argv) == 0
    assert json.loads(out.with_suffix(".json").read_text())["architectures"] == raw["architectures"]
