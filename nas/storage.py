"""Where a study lives: opening Optuna storages, their locks, and heartbeats.

A study config names a storage URL: a database (``postgresql://``, ``sqlite:///``) for several
machines, or a journal file path, the local default, safe for several processes of one machine
(``nas.journal``).
This module knows nothing of trials' contents; the engine's other rooms (``nas.study``,
``nas.objective``, ``nas.worker``) open their storages here.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import re
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial

from .journal import StudyJournal, open_lock_file

StaleTrialCallback = Callable[[optuna.Study, FrozenTrial], None]

#: PostgreSQL drivers in the order a bare ``postgresql://`` URL takes them: psycopg 3 (what the
#: ``postgres`` extra installs), then psycopg2. SQLAlchemy's own default depends on its version.
POSTGRES_DRIVERS = ("psycopg", "psycopg2")
#: The pip package that provides a SQLAlchemy driver module, for messages.
DRIVER_PACKAGES = {
    "psycopg": "psycopg[binary]",
    "psycopg2": "psycopg2-binary",
    "mysqldb": "mysqlclient",
    "pymysql": "PyMySQL",
}


def is_database(url: str) -> bool:
    """Whether ``url`` names a database rather than a local journal file."""
    return "://" in url


def open_storage(
    url: str,
    *,
    heartbeat_interval_s: int | None = None,
    grace_period_s: int | None = None,
    stale_trial_callback: StaleTrialCallback | None = None,
    must_exist: bool = False,
) -> optuna.storages.BaseStorage:
    """An Optuna storage for ``url``: a database URL or a journal file path (locked with
    :class:`FlockJournalLock`).

    For databases, ``heartbeat_interval_s`` turns on Optuna's heartbeats: a trial whose worker
    stopped beating for ``grace_period_s`` is marked FAIL by the next worker that asks for a
    trial, which then calls ``stale_trial_callback`` (the engine re-queues it).
    ``must_exist`` (for commands that only read) refuses a journal or SQLite file that does not
    exist instead of creating it.
    """
    local = _local_file(url)
    if must_exist and local is not None and not local.is_file():
        raise FileNotFoundError(
            f"no study storage at {local}; run `nas search` first, or pass the --storage the "
            "study was created with"
        )
    if is_database(url):
        try:
            return optuna.storages.RDBStorage(
                database_url(url),
                heartbeat_interval=heartbeat_interval_s,
                grace_period=grace_period_s,
                heartbeat_stale_trial_callback=stale_trial_callback
                if heartbeat_interval_s
                else None,
                engine_kwargs={"pool_pre_ping": True},
            )
        except Exception as exc:  # SQLAlchemy and the DB drivers raise many types
            if "Failed to import DB access module" in str(exc):
                raise RuntimeError(_missing_driver(url)) from None
            if "Can't load plugin" in str(exc):
                raise RuntimeError(
                    f"cannot open storage {redact(url)}: SQLAlchemy knows no database or driver "
                    f"{url.partition('://')[0]!r}; write e.g. postgresql://, "
                    "postgresql+psycopg2://, mysql:// or sqlite:///"
                ) from None
            first_line = (
                str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            )
            raise RuntimeError(
                f"cannot open storage {redact(url)}: {first_line} (check that the database "
                "server is running and reachable, and the URL's user, password and database)"
            ) from None
    path = Path(url)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(StudyJournal(path))
    except OSError as exc:
        raise ValueError(
            f"cannot open the journal {path}: {exc.strerror or exc}; choose another "
            "study.runs_dir or --storage path"
        ) from None


def database_url(url: str) -> str:
    """``url`` as SQLAlchemy should open it: a bare ``postgresql://`` (or ``postgres://``) gets
    the first installed driver of :data:`POSTGRES_DRIVERS`, so the URL users write works with
    whichever one they have; every other URL is unchanged."""
    scheme, _, rest = url.partition("://")
    if scheme not in ("postgresql", "postgres"):
        return url
    for driver in POSTGRES_DRIVERS:
        if importlib.util.find_spec(driver) is not None:
            return f"postgresql+{driver}://{rest}"
    raise RuntimeError(
        f"cannot open storage {redact(url)}: no PostgreSQL driver is installed; install the "
        "postgres extra (pip install 'attention-nas[postgres]', psycopg 3) or psycopg2-binary"
    )


def _missing_driver(url: str) -> str:
    """The message for a database URL whose driver module is not installed, naming it."""
    from sqlalchemy.engine import make_url

    driver = make_url(database_url(url)).get_dialect().driver
    package = DRIVER_PACKAGES.get(driver, driver)
    return (
        f"cannot open storage {redact(url)}: its driver module {driver!r} is not installed; "
        f"pip install {package} (or name an installed driver in the URL, e.g. postgresql+psycopg://)"
    )


def _local_file(url: str) -> Path | None:
    """The file a journal path or a ``sqlite:///`` URL names; None for database servers."""
    if not is_database(url):
        return Path(url)
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        return Path(url.removeprefix("sqlite:///"))
    return None


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


@contextlib.contextmanager
def machine_lock(url: str, study_name: str) -> Iterator[None]:
    """An exclusive lock shared by the processes of this machine that work on one study.

    The worker holds it while it counts trials and asks for the next one, so that its machine
    starts exactly ``n_trials``. Workers on other machines rely on the counts alone.
    """
    if is_database(url):
        key = hashlib.sha256(f"{url}|{study_name}".encode()).hexdigest()[:16]
        lock_path = Path(tempfile.gettempdir()) / f"attention-nas-{key}.ask.lock"
    else:
        lock_path = Path(url).with_suffix(".ask.lock")
    with open_lock_file(lock_path) as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def heartbeat_interval(study: optuna.Study) -> int | None:
    """Seconds between heartbeats of the study's storage; None where it keeps none."""
    get = getattr(study._storage, "get_heartbeat_interval", None)
    return get() if get is not None else None


@contextlib.contextmanager
def heartbeat(study: optuna.Study, trial: optuna.Trial) -> Iterator[None]:
    """Record heartbeats for ``trial`` while the block runs, where the storage keeps them.

    A beat the database refuses (a restart, a network blip) is tried again at the next
    interval, with one warning per outage: the thread outlives the blip, so the trial is not
    failed as stale by another worker once the database is back."""
    interval = heartbeat_interval(study)
    if not interval:
        yield
        return
    storage = study._storage
    stop = threading.Event()

    def beat() -> None:
        failing = False
        while True:
            try:
                storage.record_heartbeat(trial._trial_id)
            except Exception as exc:  # SQLAlchemy and the DB drivers raise many types
                if not failing:
                    warnings.warn(
                        f"trial {trial.number}: its heartbeat could not be recorded "
                        f"({type(exc).__name__}); trying again every {interval} s",
                        RuntimeWarning,
                        stacklevel=1,
                    )
                failing = True
            else:
                failing = False
            if stop.wait(interval):
                return

    thread = threading.Thread(target=beat, name=f"heartbeat-trial-{trial.number}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
