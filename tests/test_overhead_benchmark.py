import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace


def _load():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "overhead.py"
    spec = importlib.util.spec_from_file_location("overhead_bench", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_overhead_benchmark_quick_run_accounts_for_the_whole_trial(capsys, tmp_path):
    bench = _load()
    out = tmp_path / "overhead.md"
    rows = bench.main(["--quick", "--storage", "journal", "--threads", "1", "--out", str(out)])

    phases = {r["phase"]: r for r in rows if r.get("kind")}
    assert phases["train epochs"]["ms_steady"] > 0
    for name in ("model build", "cost model", "Trainer set-up", "checkpoint save", "tell"):
        assert phases[name]["ms_steady"] > 0, name
    # Exclusive times: training plus every overhead phase is the whole trial.
    shares = [r["share_all"] for r in rows if r.get("kind") in ("training", "overhead")]
    assert abs(sum(shares) - 1) < 1e-9
    total = phases["overhead total"]
    assert 0 < total["share_all"] < 1

    loops = [r for r in rows if r["phase"] == "loops"]
    assert loops[0]["lightning_ms"] > 0 and loops[0]["plain_ms"] > 0 and loops[0]["ratio"] > 0

    printed = capsys.readouterr().out
    assert "| **overhead total** |" in printed and "| training epoch |" in printed
    assert "samples (quiet/all)" in printed
    text = out.read_text()
    assert "Command: `.venv/bin/python benchmarks/overhead.py --quick" in text
    assert "torch " in text and "cores" in text and "target is **" in text
    raw = json.loads(out.with_suffix(".json").read_text())
    assert raw["machine"]["cores"] >= 1 and len(raw["trials"][0]["per_trial_s"]) == 2
    assert len(raw["trials"][0]["others_cores"]) == 2


def test_phase_clock_counts_nested_time_once(monkeypatch):
    """Each interval between two clock events goes to the innermost open phase of the current
    trial, once: a fake clock whose intervals are distinct powers of two shows which went where."""
    bench = _load()
    ticks = iter(2.0**k - 1 for k in range(10))  # intervals 1, 2, 4, ..., 256
    monkeypatch.setattr(bench, "time", SimpleNamespace(perf_counter=lambda: next(ticks)))
    clock = bench.PhaseClock()
    with clock.phase("outer"):
        with clock.phase("inner"):
            clock.push("left open")  # a hook that never closed: the enclosing phase ends it
        clock.new_trial()
        clock.new_trial()
        with clock.phase("inner"):
            pass
    # Trial 0: outer before inner (2) and around the two asks (16, 32); inner until "left open"
    # starts (4); "left open" until inner's end closes it (8). Trial 1: outer 64 + 256, inner 128.
    assert clock.totals == {
        0: {"outer": 2 + 16 + 32, "inner": 4, "left open": 8},
        1: {"outer": 64 + 256, "inner": 128},
    }
    assert clock.stack == []
