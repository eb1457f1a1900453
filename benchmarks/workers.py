"""Trials per hour with 1 and 2 local worker processes on the bundled digits data.

Each configuration runs the same study (the quickstart space, no pruning so every trial costs the
same budget) in a fresh journal storage, with torch threads per worker pinned to
``cores // workers``, and the table reports trials per hour and the speed-up over one worker,
measured in the same process run.

    .venv/bin/python benchmarks/workers.py              # 24 trials x 8 epochs per configuration
    .venv/bin/python benchmarks/workers.py --trials 24 --workers 1 2 4
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

# Run as a script (``python benchmarks/workers.py``) from a checkout that is not pip-installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._harness import command_line, cpu_model, markdown_table, quickstart_study
from nas.config import StudyConfig
from nas.study import quiet_third_party_output
from nas.worker import run_search


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args(argv)
    command = command_line(__file__, argv, python="python")
    quiet_third_party_output()
    cores = os.cpu_count() or 1
    rows = []
    for n in args.workers:
        with tempfile.TemporaryDirectory() as runs:
            cfg = StudyConfig.from_dict(
                quickstart_study("workers-bench", runs, args.trials, args.epochs)
            )
            if n == 1:
                torch.set_num_threads(cores)
            start = time.perf_counter()
            study = run_search(cfg, workers=n, progress=False)
            seconds = time.perf_counter() - start
            done = len(study.get_trials())
        rows.append(
            {
                "workers": n,
                "threads": max(1, cores // n),
                "trials": done,
                "seconds": seconds,
                "per_hour": done / seconds * 3600,
            }
        )
    base = rows[0]["per_hour"]
    print(
        f"# trials per hour, {args.trials} trials x {args.epochs} epochs, quickstart space "
        f"(digits, resnet8), no pruning"
    )
    print(f"# torch {torch.__version__}, {cores} cores ({cpu_model()}), command: {command}")
    header = ["workers", "threads/worker", "trials", "wall s", "trials/hour", "speed-up"]
    cells = [
        [
            r["workers"],
            r["threads"],
            r["trials"],
            f"{r['seconds']:.1f}",
            f"{r['per_hour']:.0f}",
            f"{r['per_hour'] / base:.2f}x",
        ]
        for r in rows
    ]
    print("\n".join(markdown_table(header, "llllll", cells)))
    return rows


if __name__ == "__main__":
    main()
