"""Search settings no other test runs: ``study.timeout_s`` stops a search, ``study.max_retry``
caps the re-queueing of interrupted and dead workers' trials, and latency as an objective and
as a constraint flows from the measurement into the trials, the constraints and the report."""

import json
import socket
import sqlite3
import subprocess
import sys
import time
import types

import pandas as pd
import pytest
from optuna.trial import TrialState

from attn_blocks.eca import EfficientChannelAttention
from attn_blocks.se import SqueezeExcite
from attn_blocks.simam import SimAM
from nas import trial_schema as schema
from nas.cli import main
from nas.config import StudyConfig
from nas.objective import TrialRunner
from nas.worker import run_search
from search_spaces import cost
from search_spaces.cost import LatencyResult

# -- study.timeout_s ----------------------------------------------------------------------------


class TrialClock:
    """``nas.worker``'s clock, in which every trial takes ``trial_s`` seconds; ``started``: the
    clock at the start of each trial."""

    def __init__(self, trial_s: float) -> None:
        self.now, self.trial_s, self.started = 0.0, trial_s, []

    def monotonic(self) -> float:
        return self.now

    def install(self, monkeypatch) -> None:
        monkeypatch.setattr(
            "nas.worker.time", types.SimpleNamespace(monotonic=self.monotonic, sleep=time.sleep)
        )
        train = TrialRunner.run

        def run(runner, trial, stop=None):
            self.started.append(self.now)
            outcome = train(runner, trial, stop)
            self.now += self.trial_s
            return outcome

        monkeypatch.setattr(TrialRunner, "run", run)


@pytest.mark.parametrize(("timeout_s", "started"), [(25, [0, 10, 20]), (0, [0, 10, 20, 30, 40])])
def test_no_trial_starts_after_the_timeout(tiny_config, monkeypatch, timeout_s, started):
    """Trials of 10 s against ``timeout_s = 25``: trials start at 0, 10 and 20 s, the one
    running at the deadline finishes, none starts after it, and the search stops short of
    ``n_trials`` with nothing left RUNNING. ``timeout_s = 0`` is no limit: all 5 trials run."""
    clock = TrialClock(trial_s=10)
    clock.install(monkeypatch)
    cfg = StudyConfig.from_dict(tiny_config(study={"n_trials": 5, "timeout_s": timeout_s}))
    study = run_search(cfg, progress=False)
    assert clock.started == started
    assert [t.state for t in study.get_trials()] == [TrialState.COMPLETE] * len(started)


# -- study.max_retry ----------------------------------------------------------------------------


class Killed(BaseException):
    """The worker process is killed mid-trial (SIGKILL): no handler of it runs any more."""


def _dead_worker() -> str:
    """The ``worker`` attr of a process of this host that has exited."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return f"{socket.gethostname()}:{proc.pid}"


def _ends_mid_trial(monkeypatch, how: str, runs: int) -> None:
    """The first ``runs`` trials start training (their architecture sampled and stored), then
    end ``how``: Ctrl-C, or the process killed; later trials train."""
    train, started = TrialRunner.run, []

    def run(runner, trial, stop=None):
        started.append(trial.number)
        if len(started) > runs:
            return train(runner, trial, stop)
        runner.describe(trial)
        if how == "ctrl-c":
            raise KeyboardInterrupt
        if how == "killed, journal":  # the next worker finds the pid gone
            schema.WORKER.set(trial, _dead_worker())
        raise Killed

    monkeypatch.setattr(TrialRunner, "run", run)


def _silence_heartbeats(db) -> None:
    """Date every heartbeat of the SQLite study an hour back, long past its grace period: what
    a killed worker leaves behind once the grace period has passed."""
    with sqlite3.connect(db) as connection:
        connection.execute("UPDATE trial_heartbeats SET heartbeat = datetime('now', '-1 hour')")
    connection.close()


@pytest.mark.parametrize("how", ["ctrl-c", "killed, journal", "killed, database"])
@pytest.mark.parametrize(
    ("max_retry", "retry_of"),
    [(0, [None, None, None, None]), (1, [None, 0, None, 2]), (2, [None, 0, 1, None])],
    ids=["max_retry=0", "max_retry=1", "max_retry=2"],
)
def test_an_interrupted_trial_is_queued_again_at_most_max_retry_times(
    tiny_config, tmp_path, monkeypatch, how, max_retry, retry_of
):
    """Three searches in a row each end mid-trial (Ctrl-C; a killed worker, found by its pid on
    a journal file or by its silent heartbeat on a database), a fourth trains. Each ended trial
    is FAIL and its architecture queued again unless it was already re-queued ``max_retry``
    times, counted from the original trial: 0 never re-queues, 1 gives every original one
    retry (trial 2 is sampled afresh and retried as trial 3), 2 retries the retry."""
    section = {"n_trials": 1, "max_retry": max_retry}
    db = tmp_path / "study.db"
    if how == "killed, database":
        section["storage"] = f"sqlite:///{db}"
    cfg = StudyConfig.from_dict(tiny_config(study=section))
    _ends_mid_trial(monkeypatch, how, runs=3)
    for _ in range(3):
        with pytest.raises(KeyboardInterrupt if how == "ctrl-c" else Killed):
            run_search(cfg, progress=False)
        if how == "killed, database":
            _silence_heartbeats(db)
    trials = run_search(cfg, progress=False).get_trials()

    assert [t.state for t in trials] == [TrialState.FAIL] * 3 + [TrialState.COMPLETE]
    assert [schema.RETRY_OF.get(t, None) for t in trials] == retry_of
    for t in trials:
        if schema.RETRY_OF.has(t):
            origin = trials[schema.RETRY_OF.get(t)]
            assert t.params == origin.params
            assert schema.RETRIES.get(t) == schema.RETRIES.get(origin, 0) + 1


# -- latency as an objective and a constraint ---------------------------------------------------

#: What the tiny baselines "measure" (ms at batch 1, ms at latency_batch): se is the fastest
#: alone but far too slow in a batch.
LATENCY_MS = {"none": (2.0, 4.0), "se": (1.0, 50.0), "eca": (3.0, 6.0), "simam": (4.0, 8.0)}
BATCH_CAP_MS = 10.0
BLOCKS = {SqueezeExcite: "se", EfficientChannelAttention: "eca", SimAM: "simam"}


def _timed_by_block(model, sample_shape, batch_sizes, **kwargs):
    """``latency_profile`` with the times of :data:`LATENCY_MS` for the model's one block kind."""
    (block,) = {BLOCKS[type(m)] for m in model.modules() if type(m) in BLOCKS} or {"none"}
    return {
        batch: LatencyResult(ms, 0.0, (ms,), batch, "forward", "cpu")
        for batch, ms in zip(batch_sizes, LATENCY_MS[block], strict=True)
    }


def test_latency_objective_and_constraint_reach_trials_and_report(
    tiny_config, tmp_path, monkeypatch, capsys
):
    """A search of the four baselines minimising ``latency_ms_b1`` under ``latency_ms_bN <=
    10``: each trial's second value is its measured batch-1 latency, its constraint is the
    batch-N latency minus the cap (positive, infeasible, for se only), and ``nas report``
    keeps se off the front, where its unique lowest latency would otherwise put it, and
    takes the latency reference from the measured latencies."""
    monkeypatch.setattr(cost, "latency_profile", _timed_by_block)
    objectives = {
        "minimize": ["latency_ms_b1"],
        "constraints": {"latency_ms_bN": BATCH_CAP_MS},
        "latency_batch": 8,
    }
    data = tiny_config(study={"n_trials": 4}, objectives=objectives, evaluation={"baselines": True})
    study = run_search(StudyConfig.from_dict(data), progress=False)

    trials = {schema.BASELINE.get(t): t for t in study.get_trials()}
    assert sorted(trials) == sorted(LATENCY_MS)
    for name, (b1, batch) in LATENCY_MS.items():
        t = trials[name]
        assert t.state == TrialState.COMPLETE and t.values[1] == b1
        assert schema.cost(t)["latency_ms_bN"] == batch
        assert t.constraints == {"latency_ms_bN": batch - BATCH_CAP_MS}

    out = tmp_path / "report"
    assert main(["report", "tiny", "--runs-dir", data["study"]["runs_dir"], "--out", str(out)]) == 0
    front = pd.read_csv(out / "front.csv")
    assert "se" not in set(front["baseline"]) and "none" in set(front["baseline"])
    for row in front.itertuples():
        assert row.latency_ms_b1 == LATENCY_MS[row.baseline][0]
    on_front = pd.read_csv(out / "trials.csv").set_index("baseline")["on_front"]
    assert not on_front["se"] and on_front["none"]
    facts = json.loads((out / "summary.json").read_text())
    assert facts["objectives"] == {"val_acc": "maximize", "latency_ms_b1": "minimize"}
    assert facts["reference"]["worst"][1] == pytest.approx(1.1 * 4.0)
    assert facts["front_size"] == len(front)
    assert "latency_ms_b1" in capsys.readouterr().out
