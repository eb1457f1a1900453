"""Database URLs as users write them: a bare ``postgresql://`` takes the installed driver, and a
missing or unknown driver is one line that names it (no server needed)."""

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
