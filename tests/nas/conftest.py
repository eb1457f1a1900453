"""Tiny study configs: real digits data, cut to a few images per class, and a 4-wide ResNet-8."""

import copy
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

TINY = {
    "study": {"name": "tiny", "sampler": "random", "seed": 0, "n_trials": 4, "population_size": 2},
    "data": {"name": "digits", "per_class": 6, "val_per_class": 4, "batch_size": 32},
    "backbone": {"name": "resnet8", "args": {"width": 4}},
    "space": {
        "blocks": ["none", "se", "eca", "simam"],
        "reductions": [2],
        "eca_kernels": [3],
        "granularity": "per_stage",
    },
    "training": {"epochs": 2, "lr": 0.05},
    "pruning": {"pruner": "none"},
    "objectives": {"maximize": "val_acc", "minimize": ["flops"]},
    # Sampled trials only: the tests that are about baselines switch them on.
    "evaluation": {"baselines": False},
}


@pytest.fixture
def tiny_config(tmp_path):
    """A function returning the tiny config dict with overrides, stored under tmp_path."""

    def make(**sections):
        data = copy.deepcopy(TINY)
        data["study"]["runs_dir"] = str(tmp_path / "runs")
        for name, values in sections.items():
            data.setdefault(name, {}).update(values)
        return data

    return make


class WorkerProcesses:
    """``nas`` subprocesses for the multi-worker tests: stderr goes to files (a pipe nobody reads
    can fill and block a worker), every process is killed at teardown, and a wait that times out
    reports each process's exit code and stderr, so a failure on CI says what happened."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.procs: list[tuple[subprocess.Popen, Path]] = []

    def start(self, *args: str) -> subprocess.Popen:
        log = self.tmp_path / f"worker{len(self.procs)}.stderr"
        with open(log, "w") as stderr:
            proc = subprocess.Popen(
                [sys.executable, "-m", "nas.cli", *args],
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                text=True,
            )
        self.procs.append((proc, log))
        return proc

    def stderr(self, proc: subprocess.Popen) -> str:
        return next(log for p, log in self.procs if p is proc).read_text()

    def report(self) -> str:
        return "\n".join(
            f"--- pid {p.pid}, exit code {p.poll()}, stderr:\n{log.read_text()[-3000:]}"
            for p, log in self.procs
        )

    def wait_for(self, predicate, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.2)
        raise AssertionError(f"not reached in {timeout:.0f} s: {what}\n{self.report()}")

    def kill_all(self) -> None:
        for proc, _ in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.fixture
def worker_procs(tmp_path):
    procs = WorkerProcesses(tmp_path)
    yield procs
    procs.kill_all()
