"""benchmarks/gpu.py: every check reported, a failing one with its error, the others still run."""

import pytest
import torch


@pytest.fixture(scope="module")
def bench(load_benchmark):
    return load_benchmark("gpu")


def test_a_failing_check_is_reported_and_does_not_stop_the_next(bench):
    first, second = bench.Check("one", "s"), bench.Check("two", "s")
    with bench.timed(first):
        raise RuntimeError("no kernel image is available\nsecond line")
    with bench.timed(second):
        second.result = "fine"
    assert first.status == "FAILED: RuntimeError: no kernel image is available"
    assert first.seconds is not None and second.status == "ok"
    assert first.row()[-1] == first.status and second.row()[4] == "fine"


def test_without_cuda_it_asks_for_a_device_or_smoke(bench, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert bench.main(["--out", "-"]) == 2
    assert "--smoke" in capsys.readouterr().err


@pytest.mark.slow
def test_smoke_run_on_the_cpu_reports_every_check(bench, tmp_path):
    out = tmp_path / "gpu.md"
    assert bench.main(["--smoke", "--out", str(out)]) == 0
    text = out.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line][1:]
    names = [row.split(" | ")[0].strip("| ") for row in rows]
    assert names == ["quickstart", "confirm", "quickstart_supernet", "stream", *["resnet20"] * 4]
    assert all(row.rstrip(" |").endswith("ok") for row in rows)
    assert "Command: `.venv/bin/python benchmarks/gpu.py --smoke --out " in text
    assert text.rstrip().endswith("All 8 checks ran.")
