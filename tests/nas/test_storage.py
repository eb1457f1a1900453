"""Storages without a server: database URLs as users write them (a bare ``postgresql://`` takes
the installed driver, a missing or unknown driver is one line naming it) and a heartbeat thread
that outlives a database blip."""

import pytest


def test_a_bare_postgresql_url_takes_the_installed_driver(monkeypatch):
    from nas import storage

    found = {"psycopg": None, "psycopg2": object()}
    monkeypatch.setattr(storage.importlib.util, "find_spec", lambda name: found.get(name))
    assert storage.database_url("postgresql://u:p@h:5/db") == "postgresql+psycopg2://u:p@h:5/db"
    assert storage.database_url("postgres://u@h/db") == "postgresql+psycopg2://u@h/db"
    found["psycopg"] = object()  # psycopg 3 first: what the postgres extra installs
    assert storage.database_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    # A URL that names its driver, and every other database, are left as written.
    for url in ("postgresql+psycopg2://u@h/db", "sqlite:///x.db", "mysql://u@h/db"):
        assert storage.database_url(url) == url
    found.clear()
    with pytest.raises(RuntimeError, match=r"no PostgreSQL driver.*attention-nas\[postgres\]"):
        storage.open_storage("postgresql://u:secret@h/db")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "mysql://u:secret@127.0.0.1/db",
            "driver module 'mysqldb' is not installed; pip install mysqlclient",
        ),
        (
            "postgresql+nodriver://u:secret@127.0.0.1/db",
            "knows no database or driver 'postgresql+nodriver'",
        ),
    ],
)
def test_a_missing_or_unknown_driver_is_named(url, expected):
    from nas.storage import open_storage

    with pytest.raises(RuntimeError, match="cannot open storage") as error:
        open_storage(url)
    message = str(error.value)
    assert expected in message and "secret" not in message and "\n" not in message


def test_the_heartbeat_thread_outlives_a_database_blip():
    """Beats the database refuses are tried again at the next interval: after a blip of two
    refused beats the trial's heartbeats go on, with one warning for the outage."""
    import threading
    import time
    import warnings

    from nas.storage import heartbeat

    class BlippingStorage:
        def __init__(self) -> None:
            self.calls, self.recorded = 0, []
            self.done = threading.Event()

        def get_heartbeat_interval(self) -> int:
            return 1

        def record_heartbeat(self, trial_id: int) -> None:
            self.calls += 1
            if self.calls in (2, 3):
                raise ConnectionError("server closed the connection unexpectedly")
            self.recorded.append(trial_id)
            if len(self.recorded) == 3:
                self.done.set()

    class Study:
        _storage = BlippingStorage()

    class Trial:
        number, _trial_id = 4, 17

    storage = Study._storage
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        started = time.monotonic()
        with heartbeat(Study, Trial):
            assert storage.done.wait(10)
    assert storage.recorded == [17, 17, 17] and storage.calls == 5
    assert time.monotonic() - started >= 4  # one beat per interval, refused ones included
    assert [str(w.message) for w in caught] == [
        "trial 4: its heartbeat could not be recorded (server closed the connection "
        "unexpectedly); trying again every 1 s"
    ]


def test_a_lost_heartbeat_sets_the_event_before_the_grace_period():
    """With every beat refused, the thread gives the trial up one interval before other workers
    would judge it stale (grace period 3 s, interval 1 s: after 2 s) and stops beating; a blip
    shorter than that leaves the trial alone (the test above)."""
    import time
    import warnings

    from nas.storage import heartbeat

    class DownStorage:
        calls = 0

        def get_heartbeat_interval(self) -> int:
            return 1

        def record_heartbeat(self, trial_id: int) -> None:
            DownStorage.calls += 1
            raise ConnectionError("connection refused")

    class Study:
        _storage = DownStorage()

    class Trial:
        number, _trial_id = 2, 5

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        started = time.monotonic()
        with heartbeat(Study, Trial, grace_period_s=3) as lost:
            assert lost.wait(10)
            given_up = time.monotonic() - started
            calls = DownStorage.calls
            time.sleep(1.5)
            assert DownStorage.calls == calls  # no more beats once given up
    assert 2 <= given_up < 3 and calls == 3  # refused at 0, 1 and 2 s


class _Refusals:
    """Makes a method of a storage refuse ``times`` calls as a database that cannot be reached
    does through Optuna (a StorageInternalError caused by SQLAlchemy's OperationalError), then
    answer."""

    def __init__(self, method, times: int, *, commit_first: bool = False) -> None:
        self.method, self.left, self.commit_first, self.calls = method, times, commit_first, 0

    def __call__(self, *args, **kwargs):
        import optuna
        from sqlalchemy.exc import OperationalError

        self.calls += 1
        if self.left:
            self.left -= 1
            if self.commit_first and self.calls == 1:  # committed, but the answer was lost
                self.method(*args, **kwargs)
            try:
                raise OperationalError("SELECT 1", {}, ConnectionRefusedError("server is down"))
            except OperationalError as cause:
                raise optuna.exceptions.StorageInternalError(
                    "invalid data in the commit"
                ) from cause
        return self.method(*args, **kwargs)


def _sqlite_storage(tmp_path, retry_s: float):
    """A study storage on SQLite through open_storage, with a recorded clock instead of sleeps."""
    from nas.storage import open_storage

    storage = open_storage(f"sqlite:///{tmp_path / 'study.db'}", retry_s=retry_s)
    clock = {"now": 0.0, "sleeps": []}

    def sleep(seconds: float) -> None:
        clock["sleeps"].append(seconds)
        clock["now"] += seconds

    storage._sleep, storage._clock = sleep, lambda: clock["now"]
    return storage, clock


def test_database_calls_ride_out_an_outage_with_backoff(tmp_path):
    """A study whose database refuses writes for a while (connection refused) finishes its
    trials with every value stored: each refused call is tried again after 0.5, 1, 2, 4 s...,
    with one warning per outage naming the database."""
    import warnings

    import optuna

    storage, clock = _sqlite_storage(tmp_path, retry_s=60)
    study = optuna.create_study(storage=storage, study_name="s")
    inner = storage.storage
    inner.set_trial_intermediate_value = _Refusals(inner.set_trial_intermediate_value, 4)
    inner.set_trial_user_attr = _Refusals(inner.set_trial_user_attr, 2)

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr("note", trial.number)
        trial.report(0.5, step=0)
        return trial.suggest_float("x", 0, 1)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        study.optimize(objective, n_trials=3)
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3
    assert [t.user_attrs["note"] for t in trials] == [0, 1, 2]
    assert all(t.intermediate_values == {0: 0.5} for t in trials)
    assert clock["sleeps"] == [0.5, 1, 0.5, 1, 2, 4]  # the attr's outage, then the report's
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 2 and all("cannot be reached (server is down)" in m for m in messages)


def test_a_database_down_past_db_retry_s_is_one_line(tmp_path):
    import warnings

    import optuna

    from nas.storage import DatabaseUnavailable

    storage, clock = _sqlite_storage(tmp_path, retry_s=10)
    storage.url = "postgresql://nas:secret@dbhost/nas"  # as the message would name it
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    inner = storage.storage
    inner.set_trial_user_attr = _Refusals(inner.set_trial_user_attr, 100)
    with pytest.raises(DatabaseUnavailable) as error, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trial.set_user_attr("a", 1)
    message = str(error.value)
    assert message.startswith(
        "the study's database postgresql://nas:***@dbhost/nas did not answer for 10 s "
        "(server is down), so this worker stops"
    )
    assert "study.db_retry_s" in message and "\n" not in message and "secret" not in message
    assert clock["sleeps"] == [0.5, 1, 2, 4, 2.5] and sum(clock["sleeps"]) == 10  # up to 8 s each
    assert inner.set_trial_user_attr.calls == 6
    inner.set_trial_user_attr = inner.set_trial_user_attr.method  # the server is back
    # A refusal that is not about reaching the server is raised at once, as Optuna raises it.
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        study.tell(trial, 1.0)
        trial.set_user_attr("b", 2)
    assert len(clock["sleeps"]) == 5


def test_db_retry_s_zero_stops_at_the_first_refusal(tmp_path):
    import warnings

    import optuna

    from nas.storage import DatabaseUnavailable

    storage, clock = _sqlite_storage(tmp_path, retry_s=0)
    study = optuna.create_study(storage=storage, study_name="s")
    inner = storage.storage
    inner.get_all_trials = _Refusals(inner.get_all_trials, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "trying again" warning either
        with pytest.raises(DatabaseUnavailable, match="did not answer for 0 s"):
            study.get_trials()
    assert clock["sleeps"] == []


def test_a_finish_committed_but_not_acknowledged_is_not_an_error(tmp_path):
    """The first try of a trial's finishing write reaches the database but its answer is lost:
    the retry finds the trial already COMPLETE with those values, which is the write done. A
    trial another worker finished first is still refused."""
    import optuna

    storage, _ = _sqlite_storage(tmp_path, retry_s=60)
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    inner = storage.storage
    inner.set_trial_state_values = _Refusals(inner.set_trial_state_values, 1, commit_first=True)
    study.tell(trial, 0.25)
    (stored,) = study.get_trials()
    assert stored.state.name == "COMPLETE" and stored.values == [0.25]
    assert inner.set_trial_state_values.calls == 2

    other = study.ask()
    storage.set_trial_state_values(other._trial_id, optuna.trial.TrialState.FAIL)
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        storage.set_trial_state_values(other._trial_id, optuna.trial.TrialState.COMPLETE, [1.0])
