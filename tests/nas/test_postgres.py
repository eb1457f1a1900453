"""Several workers on a real PostgreSQL server (started on 127.0.0.1 for these tests).

The server comes from Debian's ``postgresql`` package (``.ci/run`` installs it); where it is not
installed the tests skip and say so.
"""

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from nas.config import StudyConfig
from nas.pareto import non_dominated_sort
from nas.storage import open_storage
from nas.study import load_or_create_study

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(command: list[str]) -> list[str]:
    # initdb and the server refuse to run as root.
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


class PostgresServer:
    """A throw-away PostgreSQL cluster on 127.0.0.1 that a test can stop and start again."""

    def __init__(self, bin_dir: Path, root: Path) -> None:
        self.bin_dir, self.root, self.port = bin_dir, root, _free_port()
        self.data = root / "data"

    def _ctl(self, *args: str) -> None:
        command = [str(self.bin_dir / "pg_ctl"), "-D", str(self.data), *args]
        subprocess.run(_as_postgres(command), check=True, capture_output=True)

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root / 'sock'} -c listen_addresses=127.0.0.1 "
            "-c max_connections=100"
        )
        self._ctl("-o", options, "-w", "-l", str(self.root / "log"), "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; ``fast`` disconnects every client at once, as a restart does."""
        self._ctl("-m", mode, "-w", "stop")


@pytest.fixture(scope="module")
def postgres_server():
    """A running :class:`PostgresServer`, stopped and removed afterwards."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql; .ci/run does it)")
    server = PostgresServer(Path(found[-1]).parent, Path(tempfile.mkdtemp(prefix="nas-pg-")))
    sock = server.root / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        shutil.chown(server.root, "postgres")
        shutil.chown(sock, "postgres")
    subprocess.run(
        _as_postgres(
            [
                str(server.bin_dir / "initdb"),
                "-D",
                str(server.data),
                "-A",
                "trust",
                "-U",
                "postgres",
            ]
        ),
        check=True,
        capture_output=True,
    )
    server.start()
    try:
        yield server
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            server.stop("immediate")
        shutil.rmtree(server.root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server, request):
    bin_dir, port = postgres_server.bin_dir, postgres_server.port
    name = "nas_" + request.node.name.lower().replace("[", "_").replace("]", "")[:40]
    subprocess.run(
        [str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", name],
        check=True,
        capture_output=True,
    )
    return f"postgresql://postgres@127.0.0.1:{port}/{name}"  # as users write it


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def _front_from_rows(url: str, study_name: str) -> set[int]:
    """The Pareto front recomputed from the database rows, bypassing Optuna."""
    import psycopg

    with psycopg.connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            """
            SELECT t.number, v.objective, v.value
            FROM trials t
            JOIN studies s ON s.study_id = t.study_id
            JOIN trial_values v ON v.trial_id = t.trial_id
            WHERE s.study_name = %s AND t.state = 'COMPLETE'
            """,
            (study_name,),
        )
        rows = cur.fetchall()
    values: dict[int, dict[int, float]] = {}
    for number, objective, value in rows:
        values.setdefault(number, {})[objective] = value
    numbers = sorted(values)
    points = np.array([[values[n][0], values[n][1]] for n in numbers])
    first = non_dominated_sort(points, ["maximize", "minimize"])[0]
    return {numbers[i] for i in first}


def test_four_workers_finish_exactly_the_budget(tiny_config, postgres_url, worker_procs):
    cfg = StudyConfig.from_dict(tiny_config(study={"name": "pg4", "n_trials": 8, "sampler": "tpe"}))
    load_or_create_study(cfg, postgres_url)  # `nas search --storage URL` creates it
    args = ("worker", "--storage", postgres_url, "--study", "pg4", "--no-progress")
    workers = [worker_procs.start(*args) for _ in range(4)]
    for w in workers:
        assert w.wait(timeout=600) == 0, worker_procs.report()
    study = optuna.load_study(study_name="pg4", storage=open_storage(postgres_url))
    trials = study.get_trials()
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    # Several machines share no lock: each worker checks the count before asking, so at most
    # one extra trial per worker can start in the same instant.
    assert 8 <= len(finished) <= 8 + 3
    assert all(t.state != TrialState.RUNNING for t in trials)
    assert {t.number for t in study.best_trials} == _front_from_rows(postgres_url, "pg4")


def test_a_worker_killed_mid_trial_loses_nothing(tiny_config, postgres_url, worker_procs):
    # Trials of several seconds (a worker takes about as long to start), so the victim still has
    # trials to train when the second worker joins: with 40 epochs of the tiny data a trial took
    # half a second and the victim could finish the study first.
    data = tiny_config(
        study={"name": "pgkill", "n_trials": 5, "heartbeat_interval_s": 1, "grace_period_s": 3},
        data={"per_class": 20},
        training={"epochs": 60, "validate": "every_epoch"},  # a live trial shows its epochs
    )
    cfg = StudyConfig.from_dict(data)
    load_or_create_study(cfg, postgres_url)
    storage = open_storage(postgres_url)
    args = ("worker", "--storage", postgres_url, "--study", "pgkill", "--no-progress")

    def trials() -> list:
        return optuna.load_study(study_name="pgkill", storage=storage).get_trials()

    def running(proc, trials) -> list:
        return [
            t
            for t in trials
            if t.state == TrialState.RUNNING
            and t.user_attrs.get("worker", "").endswith(f":{proc.pid}")
            and t.intermediate_values
        ]

    # The victim finishes a trial and is training the next; then a second worker joins, and the
    # victim is killed while both train.
    victim = worker_procs.start(*args)

    def victim_trains_its_second() -> bool:
        now = trials()
        return any(t.state == TrialState.COMPLETE for t in now) and bool(running(victim, now))

    def both_train() -> bool:
        now = trials()
        return bool(running(survivor, now)) and bool(running(victim, now))

    worker_procs.wait_for(victim_trains_its_second, 300, "the victim completes a trial, trains on")
    survivor = worker_procs.start(*args)
    worker_procs.wait_for(both_train, 300, "both workers train at once")
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    before = trials()
    completed = {t.number: t.values for t in before if t.state == TrialState.COMPLETE}
    (killed,) = running(victim, before)
    assert survivor.wait(timeout=600) == 0, worker_procs.report()

    after = {t.number: t for t in trials()}
    for number, values in completed.items():
        assert after[number].state == TrialState.COMPLETE and after[number].values == values
    assert after[killed.number].state == TrialState.FAIL  # failed by heartbeat after the grace
    (retry,) = [t for t in after.values() if t.user_attrs.get("retry_of") == killed.number]
    assert retry.params == killed.params and retry.state != TrialState.RUNNING
    finished = [t for t in after.values() if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 5


def test_unreachable_or_wrong_database_gives_a_clear_error(postgres_server, tmp_path):
    port = postgres_server.port
    for url in (
        f"postgresql://postgres@127.0.0.1:{_free_port()}/nas",
        f"postgresql://postgres@127.0.0.1:{port}/no_such_database",
    ):
        result = subprocess.run(
            [sys.executable, "-m", "nas.cli", "worker", "--storage", url, "--study", "x"],
            cwd=ROOT,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 2
        assert "cannot open storage" in result.stderr and "Traceback" not in result.stderr


def test_joining_a_missing_study_says_how_to_create_it(postgres_url):
    result = subprocess.run(
        [sys.executable, "-m", "nas.cli", "worker", "--storage", postgres_url, "--study", "nope"],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "nas search CONFIG --storage URL" in result.stderr


# -- database outages mid-trial ------------------------------------------------------------------


def _outage_study(tiny_config, url: str, name: str, **study) -> optuna.storages.BaseStorage:
    """Create a 3-trial study of several-second trials with 1 s heartbeats; returns a storage
    to read it with (retry_s=0: the test itself never waits for the server)."""
    data = tiny_config(
        study={"name": name, "n_trials": 3, "heartbeat_interval_s": 1, **study},
        data={"per_class": 20},
        training={"epochs": 80, "validate": "every_epoch"},  # a live trial shows its epochs
    )
    load_or_create_study(StudyConfig.from_dict(data), url)
    return open_storage(url, retry_s=0)


def _trials(storage, name: str) -> list:
    return optuna.load_study(study_name=name, storage=storage).get_trials()


def _training(storage, name: str) -> int | None:
    """The number of a trial that has trained an epoch and still runs, if any."""
    running = [
        t for t in _trials(storage, name) if t.state == TrialState.RUNNING and t.intermediate_values
    ]
    return running[0].number if running else None


def _stop_while_a_trial_trains(worker_procs, server, storage, name: str) -> int:
    worker_procs.wait_for(lambda: _training(storage, name) is not None, 300, "a trial trains")
    number = _training(storage, name)
    server.stop()
    return number


def test_a_database_restart_mid_trial_is_ridden_out(
    tiny_config, postgres_server, postgres_url, worker_procs
):
    """The server stops for 5 s while two workers train (a restart, shorter than
    study.db_retry_s and the grace period): both wait for it, no live trial is failed as stale
    by the other, every trial completes with every epoch recorded, and both exit 0 without a
    traceback."""
    storage = _outage_study(tiny_config, postgres_url, "restart", grace_period_s=10, n_trials=4)
    args = ("worker", "--storage", postgres_url, "--study", "restart", "--no-progress")
    workers = [worker_procs.start(*args) for _ in range(2)]
    _stop_while_a_trial_trains(worker_procs, postgres_server, storage, "restart")
    time.sleep(5)
    postgres_server.start()
    for worker in workers:
        assert worker.wait(timeout=600) == 0, worker_procs.report()
    errors = [worker_procs.stderr(worker) for worker in workers]
    assert any("cannot be reached" in err for err in errors)
    assert not any("Traceback" in err for err in errors)
    trials = _trials(storage, "restart")
    assert {t.state for t in trials} == {TrialState.COMPLETE} and len(trials) >= 4
    assert all(len(t.intermediate_values) == 80 for t in trials)


def test_an_outage_past_the_grace_period_fails_the_trial_once_and_trains_it_again(
    tiny_config, postgres_server, postgres_url, worker_procs
):
    """The server stops for 10 s, past the grace period (4 s): the worker gives the trial up
    before another would fail it as stale, fails it with the reason once the server is back,
    and its re-queued copy completes; nothing is left RUNNING and the worker exits 0."""
    storage = _outage_study(tiny_config, postgres_url, "outage", grace_period_s=4)
    worker = worker_procs.start(
        "worker", "--storage", postgres_url, "--study", "outage", "--no-progress"
    )
    lost = _stop_while_a_trial_trains(worker_procs, postgres_server, storage, "outage")
    time.sleep(10)
    postgres_server.start()
    assert worker.wait(timeout=600) == 0, worker_procs.report()
    assert "Traceback" not in worker_procs.stderr(worker)
    trials = _trials(storage, "outage")
    assert trials[lost].state == TrialState.FAIL
    assert trials[lost].user_attrs["fail_reason"].startswith("HeartbeatLost:")
    (copy,) = [t for t in trials if t.user_attrs.get("retry_of") == lost]
    assert copy.params == trials[lost].params and copy.state == TrialState.COMPLETE
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 3
    assert all(t.state != TrialState.RUNNING for t in trials)


def test_a_database_down_past_db_retry_s_stops_the_worker_in_one_line(
    tiny_config, postgres_server, postgres_url, worker_procs
):
    """The server stays down past study.db_retry_s (3 s): the worker stops with one line naming
    the database (exit code 2). Once the server is back, the next worker fails the abandoned
    trial by its heartbeat, trains it again and finishes the study: nothing stays RUNNING."""
    storage = _outage_study(
        tiny_config, postgres_url, "down", grace_period_s=4, db_retry_s=3, max_retry=1
    )
    worker = worker_procs.start(
        "worker", "--storage", postgres_url, "--study", "down", "--no-progress"
    )
    lost = _stop_while_a_trial_trains(worker_procs, postgres_server, storage, "down")
    try:
        assert worker.wait(timeout=120) == 2, worker_procs.report()
    finally:
        postgres_server.start()
    err = worker_procs.stderr(worker)
    assert "Traceback" not in err
    assert (
        err.strip()
        .splitlines()[-1]
        .startswith(
            f"nas worker: error: the study's database {postgres_url} did not answer for 3 s ("
        )
    )
    second = worker_procs.start(
        "worker", "--storage", postgres_url, "--study", "down", "--no-progress"
    )
    assert second.wait(timeout=600) == 0, worker_procs.report()
    trials = _trials(storage, "down")
    assert trials[lost].state == TrialState.FAIL
    (copy,) = [t for t in trials if t.user_attrs.get("retry_of") == lost]
    assert copy.params == trials[lost].params and copy.state == TrialState.COMPLETE
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 3
    assert all(t.state != TrialState.RUNNING for t in trials)
