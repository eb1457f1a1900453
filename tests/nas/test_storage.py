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
        "trial 4: its heartbeat could not be recorded (ConnectionError); trying again every 1 s"
    ]
