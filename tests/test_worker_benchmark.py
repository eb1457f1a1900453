import importlib.util
from pathlib import Path


def test_workers_benchmark_runs(capsys):
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "workers.py"
    spec = importlib.util.spec_from_file_location("workers_bench", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rows = module.main(["--trials", "2", "--epochs", "1", "--workers", "1"])
    assert rows[0]["trials"] == 2 and rows[0]["per_hour"] > 0
    assert "| 1 | " in capsys.readouterr().out
