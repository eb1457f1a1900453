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


# Loaded by each spawned worker at start-up (through PYTHONPATH): before its first ask, a
# worker waits until every worker has reached that point. Tiny trials take ~0.1 s, so without
# it a worker whose imports were a second faster ran all of them and the other none.
START_BARRIER = """
import os, pathlib, time
import nas.worker

_folder = pathlib.Path(os.environ["NAS_TEST_BARRIER"])
_expected = int(os.environ["NAS_TEST_BARRIER_WORKERS"])
_next_trial = nas.worker._next_trial


def _after_every_worker_started(*args, **kwargs):
    (_folder / str(os.getpid())).touch()
    deadline = time.monotonic() + 120
    while len(list(_folder.iterdir())) < _expected and time.monotonic() < deadline:
        time.sleep(0.01)
    nas.worker._next_trial = _next_trial
    return _next_trial(*args, **kwargs)


nas.worker._next_trial = _after_every_worker_started
"""


@pytest.fixture
def worker_start_barrier(tmp_path, monkeypatch):
    """Two spawned local workers wait for each other before their first ask; returns the folder
    where each leaves its pid."""
    hooks, barrier = tmp_path / "hooks", tmp_path / "barrier"
    hooks.mkdir()
    barrier.mkdir()
    (hooks / "sitecustomize.py").write_text(START_BARRIER)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(hooks), str(ROOT)]))
    monkeypatch.setenv("NAS_TEST_BARRIER", str(barrier))
    monkeypatch.setenv("NAS_TEST_BARRIER_WORKERS", "2")
    return barrier


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
