import importlib.util
import sys
from pathlib import Path

import attn_blocks


def test_blocks_benchmark_quick_has_a_row_per_block(capsys, monkeypatch):
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "blocks.py"
    spec = importlib.util.spec_from_file_location("blocks_bench", path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    module.main(["--quick", "--shapes", "16x8x8"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    names = {row.split("|")[1].strip() for row in rows[1:]}
    assert set(attn_blocks.available()) <= names
