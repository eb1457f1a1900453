"""Several workers on a real PostgreSQL server (started on 127.0.0.1 for these tests).

The server comes from Debian's ``postgresql`` package (``.ci/run`` installs it); where it is not
installed the tests skip and say so.
"""

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
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


@pytest.fixture(scope="module")
def postgres_server():
    """(host, port) of a throw-away PostgreSQL cluster, stopped and removed afterwards."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql; .ci/run does it)")
    bin_dir = Path(found[-1]).parent
    root = Path(tempfile.mkdtemp(prefix="nas-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(sock, "postgres")
    port = _free_port()
    subprocess.run(
        _as_postgres([str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]),
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c max_connections=100"
    subprocess.run(
        _as_postgres(
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-w",
                "-l",
                str(root / "log"),
                "start",
            ]
        ),
        check=True,
        capture_output=True,
    )
    try:
        yield bin_dir, port
    finally:
        subprocess.run(
            _as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server, request):
    bin_dir, port = postgres_server
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
        training={"epochs": 60},
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
    _, port = postgres_server
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
