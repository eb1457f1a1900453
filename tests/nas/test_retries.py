"""Transient failures: a study failed by an earlier run searches again, a setup that fails every
trial now still stops, and ``nas confirm`` queues an interrupted repeat again, up to a cap."""

import socket
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from nas import trial_schema as schema
from nas.cli import main
from nas.config import StudyConfig
from nas.confirm import MAX_ATTEMPTS, gave_up, prepare_confirm, run_confirm, unfinished
from nas.objective import TrialRunner
from nas.storage import open_storage
from nas.study import enqueue_retry, load_or_create_study
from nas.worker import run_search

INTERRUPTED = "interrupted by the user (Ctrl-C); re-run the command to resume"


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _stored(url: str, name: str) -> tuple[list, dict]:
    """Everything of a study a refused command must leave as it was."""
    study = optuna.load_study(study_name=name, storage=open_storage(url))
    trials = [
        (t.number, t.state, t.params, t.values, t.user_attrs, t.system_attrs)
        for t in study.get_trials()
    ]
    return trials, study.user_attrs


def _scripted_runs(monkeypatch, script: list[Exception | None]) -> list[int]:
    """Make TrialRunner.run follow ``script``: raise the exception, or train (None), one entry
    per trial and the last entry from then on; returns the trial numbers it ran."""
    train, ran = TrialRunner.run, []

    def run(self, trial, stop=None):
        step = script[min(len(ran), len(script) - 1)]
        ran.append(trial.number)
        if step is not None:
            raise step
        return train(self, trial, stop)

    monkeypatch.setattr(TrialRunner, "run", run)
    return ran


# -- the search: only this worker's recent failures judge the setup ---------------------------------


def test_a_study_failed_by_an_earlier_run_searches_again(tiny_config):
    cfg = StudyConfig.from_dict(tiny_config(study={"n_trials": 2}))
    study = load_or_create_study(cfg)
    for reason in ("OSError: [Errno 28] No space left on device", INTERRUPTED):
        study.add_trial(
            optuna.trial.create_trial(
                state=TrialState.FAIL, user_attrs={schema.FAIL_REASON.key: reason}
            )
        )
    # Two workers killed mid-trial: failed (not counted) when the next run starts.
    for _ in range(2):
        trial = study.ask()
        schema.WORKER.set(trial, f"{socket.gethostname()}:{_dead_pid()}")
    study = run_search(cfg, progress=False)
    states = [t.state for t in study.get_trials()]
    assert states.count(TrialState.COMPLETE) == 2 and states.count(TrialState.FAIL) == 4
    assert "No space left" in schema.FAIL_REASON.get(study.trials[0])  # kept as it was


def test_a_setup_that_fails_every_trial_now_still_stops(tiny_config, monkeypatch):
    cfg = StudyConfig.from_dict(tiny_config(study={"n_trials": 3}))
    full = OSError(28, "No space left on device")
    ran = _scripted_runs(monkeypatch, [ValueError("bad block"), full, full])
    with pytest.raises(RuntimeError) as stopped:
        run_search(cfg, progress=False)
    message = str(stopped.value)
    assert "3 trials failed and none finished since this worker started: the setup is broken" in (
        message
    )
    assert "(the most common reason, 2 of 3: OSError: [Errno 28] No space left on device)" in (
        message
    )
    assert "\n" not in message and len(ran) == 3
    assert [t.state for t in load_or_create_study(cfg).get_trials()] == [TrialState.FAIL] * 3


def test_the_cli_says_it_in_one_line_and_the_next_run_tries_again(
    tiny_config, tmp_path, monkeypatch, capsys
):
    import tomli_w

    data = tiny_config(study={"n_trials": 2})
    config = tmp_path / "study.toml"
    config.write_bytes(tomli_w.dumps(data).encode())
    _scripted_runs(monkeypatch, [OSError(28, "No space left on device")])
    assert main(["search", str(config), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "No space left on device" in err
    monkeypatch.undo()  # the disk was freed
    assert main(["search", str(config), "--no-progress"]) == 0
    states = [t.state for t in load_or_create_study(StudyConfig.from_dict(data)).get_trials()]
    assert states.count(TrialState.COMPLETE) == 2 and states.count(TrialState.FAIL) == 2


# -- a database outage: lost heartbeats, trials taken over, one line -----------------------------


def test_a_trial_whose_heartbeat_is_lost_stops_training_and_is_trained_again(
    tiny_config, monkeypatch
):
    """The heartbeat of trial 0 is lost (no beat recorded for nearly the grace period): its
    training stops at the next batch, before any epoch is recorded, the trial is failed with the
    reason and its architecture trained again by the re-queued copy; the study finishes its
    budget with nothing left RUNNING."""
    import contextlib
    import threading

    from nas import worker

    @contextlib.contextmanager
    def heartbeat(study, trial, grace_period_s=None):
        lost = threading.Event()
        if trial.number == 0:
            lost.set()
        yield lost

    monkeypatch.setattr(worker, "heartbeat", heartbeat)
    cfg = StudyConfig.from_dict(tiny_config(study={"n_trials": 3}))
    run_search(cfg, progress=False)
    trials = load_or_create_study(cfg).get_trials()
    lost = trials[0]
    assert lost.state == TrialState.FAIL and lost.intermediate_values == {}
    assert schema.FAIL_REASON.get(lost).startswith(
        "HeartbeatLost: its heartbeat could not be recorded for nearly study.grace_period_s"
    )
    (copy,) = [t for t in trials if t.user_attrs.get("retry_of") == 0]
    assert copy.params == lost.params and copy.state == TrialState.COMPLETE
    assert [t.state for t in trials].count(TrialState.COMPLETE) == 3
    assert all(t.state != TrialState.RUNNING for t in trials)


def test_a_trial_failed_as_stale_while_it_finished_keeps_that_state(tiny_config, monkeypatch):
    """Another worker failed trial 0 as stale (and queued it again) while this one trained it:
    this worker says so in one warning and goes on, instead of dying on "has already finished
    and can not be updated"; the study finishes its budget."""
    train = TrialRunner.run

    def run(self, trial, stop=None):
        outcome = train(self, trial, stop)
        if trial.number == 0:  # what fail_stale_trials on another machine does meanwhile
            self.study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        return outcome

    monkeypatch.setattr(TrialRunner, "run", run)
    cfg = StudyConfig.from_dict(tiny_config(study={"n_trials": 2}))
    with pytest.warns(RuntimeWarning, match="trial 0 was failed as stale by another worker"):
        run_search(cfg, progress=False)
    trials = load_or_create_study(cfg).get_trials()
    assert trials[0].state == TrialState.FAIL and trials[0].values is None
    assert [t.state for t in trials].count(TrialState.COMPLETE) == 2


def test_a_worker_process_stops_with_one_line(tiny_config, monkeypatch, capsys):
    """A worker process of ``nas search --workers N`` whose database is gone prints one line, as
    the nas command does, and exits 2; no traceback."""
    from nas import worker
    from nas.storage import DatabaseUnavailable

    def run_worker(*args, **kwargs):
        raise DatabaseUnavailable("the study's database x did not answer for 60 s")

    monkeypatch.setattr(worker, "run_worker", run_worker)
    monkeypatch.setattr(worker, "quiet_third_party_output", lambda: None)
    monkeypatch.setattr(worker.torch, "set_num_threads", lambda threads: None)
    monkeypatch.setattr(worker.signal, "signal", lambda signum, handler: handler)
    with pytest.raises(SystemExit) as stopped:
        worker._worker_main(tiny_config(), None, 3, 1, "cpu")
    assert stopped.value.code == 2
    assert capsys.readouterr().err == (
        "worker 3: error: the study's database x did not answer for 60 s\n"
    )


# -- nas confirm: failed repeats queued again, up to a cap ------------------------------------------


@pytest.fixture
def confirming(tiny_config):
    """A searched tiny study with its baselines, and its confirm study (--top 1 --seeds 2),
    queued but not run: (storage URL, runs_dir) besides."""
    data = tiny_config(study={"n_trials": 5}, evaluation={"baselines": True})
    cfg = StudyConfig.from_dict(data)
    study = run_search(cfg, progress=False)
    url = cfg.study.storage_url()
    confirm, confirm_cfg = prepare_confirm(study, url, top=1, seeds=2)
    return confirm, confirm_cfg, url, data["study"]["runs_dir"]


def _first_attempt(confirm: optuna.Study) -> optuna.trial.FrozenTrial:
    """The queued trial of repeat 0 of ``none``."""
    return next(
        t
        for t in confirm.get_trials(states=(TrialState.WAITING,))
        if schema.BASELINE.get(t) == "none" and schema.REPLICATE.get(t) == 0
    )


def _take(confirm: optuna.Study, trial, *, reason: str | None = None, worker: str = "") -> None:
    """A worker starts the queued ``trial``; it then fails with ``reason``, or stays RUNNING."""
    storage = confirm._storage
    storage.set_trial_state_values(trial._trial_id, TrialState.RUNNING)
    if worker:
        schema.WORKER.set_stored(confirm, trial, worker)
    if reason is not None:
        schema.FAIL_REASON.set_stored(confirm, trial, reason)
        storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)


def _confirm_csv(runs_dir: str) -> Path:
    return Path(runs_dir) / "tiny" / "report" / "confirm.csv"


def _attempts(confirm: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [
        t
        for t in optuna.load_study(
            study_name=confirm.study_name, storage=confirm._storage
        ).get_trials()
        if schema.BASELINE.get(t) == "none" and schema.REPLICATE.get(t) == 0
    ]


def test_a_repeat_interrupted_twice_is_queued_again_and_the_table_completes(confirming, capsys):
    confirm, _, url, runs_dir = confirming
    first = _first_attempt(confirm)
    _take(confirm, first, reason=INTERRUPTED)
    enqueue_retry(confirm, confirm.trials[first.number], 1)  # the worker's one re-queue
    (second,) = [t for t in _attempts(confirm) if t.state == TrialState.WAITING]
    _take(confirm, second, worker=f"{socket.gethostname()}:{_dead_pid()}")  # killed: orphaned

    common = ["confirm", "tiny", "--runs-dir", runs_dir, "--top", "1", "--seeds", "2"]
    assert main([*common, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "best gain over none" in out and "partial" not in out and "wrote" in out
    attempts = _attempts(confirm)
    assert [t.state for t in attempts] == [TrialState.FAIL, TrialState.FAIL, TrialState.COMPLETE]
    assert attempts[-1].user_attrs["retries"] == 2
    assert attempts[-1].user_attrs["retry_of"] == attempts[1].number
    loaded = optuna.load_study(study_name=confirm.study_name, storage=open_storage(url))
    assert not unfinished(loaded)
    assert all(schema.REPLICATE.has(t) for t in loaded.get_trials())  # no stray FAIL trial
    # Complete: the same command again trains nothing and stores nothing new.
    before = _stored(url, confirm.study_name)
    assert main([*common, "--no-progress"]) == 0
    assert _stored(url, confirm.study_name) == before


def test_a_failed_repeat_is_queued_once_per_round_until_the_cap(confirming):
    confirm, cfg, url, _ = confirming
    waiting_copies = []

    def run(cfg):
        """Completes every queued run at once, but repeat 0 of none always fails."""
        study = optuna.load_study(study_name=cfg.study.name, storage=open_storage(url))
        queued = study.get_trials(states=(TrialState.WAITING,))
        runs = [(schema.REPLICATE.get(t), schema.BASELINE.get(t)) for t in queued]
        waiting_copies.append(len(runs) - len(set(runs)))
        for _ in queued:
            trial = study.ask()
            if schema.BASELINE.get(trial) == "none" and schema.REPLICATE.get(trial) == 0:
                schema.FAIL_REASON.set(trial, "NonFiniteLossError: loss is nan at epoch 1")
                study.tell(trial, state=TrialState.FAIL)
            else:
                study.tell(trial, [0.5, 1.0])
        return study

    confirm, why = run_confirm(confirm, cfg, url, run)
    assert waiting_copies == [0] * MAX_ATTEMPTS  # one round per attempt, one copy each
    (stuck,) = gave_up(confirm)
    assert (stuck.key, stuck.replicate, stuck.attempts) == ("baseline none", 0, MAX_ATTEMPTS)
    assert why.startswith(f"1 run(s) of 'tiny-confirm' gave up after {MAX_ATTEMPTS} failed")
    assert "baseline none repeat 0 (5 failed, the last: NonFiniteLossError: loss is nan" in why
    assert unfinished(confirm) == [(0, "baseline none")]


def test_a_repeat_that_gave_up_is_named_and_nothing_is_changed(confirming, capsys):
    confirm, _, url, runs_dir = confirming
    trial = _first_attempt(confirm)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        _take(confirm, trial, reason=f"OSError: disk full (attempt {attempt})")
        if attempt < MAX_ATTEMPTS:
            enqueue_retry(confirm, confirm.trials[trial.number], attempt)
            (trial,) = [t for t in _attempts(confirm) if t.state == TrialState.WAITING]
    before = _stored(url, confirm.study_name)
    csv = _confirm_csv(runs_dir)
    args = ["confirm", "tiny", "--runs-dir", runs_dir, "--top", "1", "--seeds", "2"]
    assert main([*args, "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"1 run(s) of {confirm.study_name!r} gave up after {MAX_ATTEMPTS} failed trials" in err
    assert "baseline none repeat 0 (5 failed, the last: OSError: disk full (attempt 5))" in err
    assert "--name" in err
    assert _stored(url, confirm.study_name) == before and not csv.exists()


def test_a_partial_table_never_replaces_a_complete_one(confirming, capsys, tmp_path):
    confirm, _, _, runs_dir = confirming
    held = _first_attempt(confirm)
    _take(confirm, held, worker=schema.this_worker())  # another live process trains it
    csv = _confirm_csv(runs_dir)
    csv.parent.mkdir(parents=True)
    csv.write_text("architecture\nthe complete table another run wrote\n")
    common = ["tiny", "--runs-dir", runs_dir]
    confirm_args = ["confirm", *common, "--top", "1", "--seeds", "2", "--no-progress"]
    assert main(confirm_args) == 0
    out = capsys.readouterr().out
    assert "partial table: 1 planned run(s) are unfinished" in out
    assert "not written (partial)" in out
    assert csv.read_text() == "architecture\nthe complete table another run wrote\n"
    assert main(["report", *common, "--out", str(tmp_path / "report")]) == 0
    assert "confirm.csv not written: 1 run(s) of 'tiny-confirm'" in capsys.readouterr().out
    assert not (tmp_path / "report" / "confirm.csv").exists()

    # The other process finishes its run: the next command writes the complete table.
    confirm._storage.set_trial_state_values(held._trial_id, TrialState.COMPLETE, [0.5, 1.0])
    assert main(confirm_args) == 0
    assert "wrote" in capsys.readouterr().out
    assert "the complete table another run wrote" not in csv.read_text()
    assert [p.name for p in csv.parent.iterdir()] == ["confirm.csv"]


def test_each_prepare_queues_a_failed_repeat_once(confirming):
    confirm, _, url, _ = confirming
    trial = _first_attempt(confirm)
    _take(confirm, trial, reason=INTERRUPTED)
    enqueue_retry(confirm, confirm.trials[trial.number], 1)
    assert not enqueue_retry(confirm, confirm.trials[trial.number], 1)  # never two copies
    (trial,) = [t for t in _attempts(confirm) if t.state == TrialState.WAITING]
    _take(confirm, trial, reason=INTERRUPTED)  # interrupted twice: no copy waits
    search = optuna.load_study(study_name="tiny", storage=open_storage(url))
    for _ in range(2):
        confirm, cfg = prepare_confirm(search, url, top=1, seeds=2)
        attempts = _attempts(confirm)
        assert [t.state for t in attempts] == [TrialState.FAIL] * 2 + [TrialState.WAITING]
    assert attempts[-1].user_attrs["retries"] == 2
    runs = 2 * len(schema.confirm_plan(confirm)["architectures"])
    assert cfg.study.n_trials == len(unfinished(confirm)) == runs  # nothing finished yet
