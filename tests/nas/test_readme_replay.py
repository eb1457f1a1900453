"""The README's replay example runs as written on the committed digits table."""

import contextlib
import io
import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_readme_replay_example_runs_on_the_committed_table():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    (example,) = [b for b in blocks if "replay_search(" in b]
    out = io.StringIO()
    cwd = os.getcwd()
    try:
        os.chdir(ROOT)
        with contextlib.redirect_stdout(out):
            exec(compile(example, "README.md", "exec"), {})
    finally:
        os.chdir(cwd)
    share, epochs = out.getvalue().split()
    assert 0 < float(share) <= 1
    assert 0 < int(epochs) <= 48 * 12
