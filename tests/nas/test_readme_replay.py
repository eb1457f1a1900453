"""The replay example of docs/ground-truth.md runs as written on the committed digits table and
prints what it says it prints (tests/test_docs.py runs every snippet; this checks the output)."""

import contextlib
import io
import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "ground-truth.md"


def test_docs_replay_example_runs_on_the_committed_table() -> None:
    """One replayed 48-trial search: a share of the true front in (0, 1] and its epochs."""
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S)
    (example,) = [b for b in blocks if "replay_search(" in b]
    out = io.StringIO()
    cwd = os.getcwd()
    try:
        os.chdir(ROOT)
        with contextlib.redirect_stdout(out):
            exec(compile(example, str(PAGE), "exec"), {})
    finally:
        os.chdir(cwd)
    share, epochs = out.getvalue().split()
    assert 0 < float(share) <= 1
    assert 0 < int(epochs) <= 48 * 12
