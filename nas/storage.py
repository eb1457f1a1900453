"""Where a study lives: opening Optuna storages, their locks, and heartbeats.

A study config names a storage URL: a database (``postgresql://``, ``sqlite:///``) for several
machines, or a journal file path, the local default, safe for several processes of one machine
(``nas.journal``).
This module knows nothing of trials' contents; the engine's other rooms (``nas.study``,
``nas.objective``, ``nas.worker``) open their storages here.
"""

from __future__ import annotations

import abc
import contextlib
import fcntl
import hashlib
import importlib.util
import math
import re
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage
from optuna.storages._cached_storage import _CachedStorage
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.trial import FrozenTrial, TrialState

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
#: Seconds a database call is retried when the server cannot be reached (``study.db_retry_s``).
DEFAULT_RETRY_S = 60.0
#: The first and the longest wait between two tries of a refused database call.
FIRST_RETRY_DELAY_S = 0.5
MAX_RETRY_DELAY_S = 8.0


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
    retry_s: float = DEFAULT_RETRY_S,
) -> optuna.storages.BaseStorage:
    """An Optuna storage for ``url``: a database URL or a journal file path (locked with
    :class:`FlockJournalLock`).

    For databases, ``heartbeat_interval_s`` turns on Optuna's heartbeats: a trial whose worker
    stopped beating for ``grace_period_s`` is marked FAIL by the next worker that asks for a
    trial, which then calls ``stale_trial_callback`` (the engine re-queues it). A call the server
    does not answer is tried again for ``retry_s`` seconds (:class:`RetryingStorage`).
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
            rdb = optuna.storages.RDBStorage(
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
            raise RuntimeError(
                f"cannot open storage {redact(url)}: {_first_line(exc)} (check that the database "
                "server is running and reachable, and the URL's user, password and database)"
            ) from None
        # Optuna caches finished trials in front of a database (as optuna.create_study does).
        return RetryingStorage(_CachedStorage(rdb), url, retry_s)
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


class DatabaseUnavailable(RuntimeError):
    """The study's database did not answer for ``study.db_retry_s``: the worker stops."""


def connection_lost(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) says the database could not be reached or dropped the
    connection - worth waiting for - rather than refused a statement. Optuna wraps these in a
    StorageInternalError that blames "invalid data in the commit"."""
    from sqlalchemy import exc as sa_exc

    seen: BaseException | None = exc
    for _ in range(8):  # a cause chain, not a cycle
        if seen is None:
            return False
        if isinstance(seen, (sa_exc.OperationalError, sa_exc.InterfaceError)) or (
            isinstance(seen, sa_exc.DBAPIError) and seen.connection_invalidated
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class RetryingStorage(BaseStorage, BaseHeartbeat):
    """A database storage that rides out outages: a call refused because the server cannot be
    reached (a restart, a network blip, a failover) is tried again with exponential backoff
    (0.5 s doubling to 8 s) for ``retry_s`` seconds, with one warning per outage; then
    :class:`DatabaseUnavailable` says so in one line, instead of Optuna's chained tracebacks.

    Each call of Optuna's RDB storage is one transaction, rolled back when it fails, so trying
    it again writes it once. Heartbeats are not retried here: :func:`heartbeat` keeps its own
    rhythm. Every other call goes to ``storage`` (Optuna's cached RDB storage) unchanged.
    """

    def __init__(
        self,
        storage: _CachedStorage,
        url: str,
        retry_s: float = DEFAULT_RETRY_S,
        *,
        sleep: Callable[[float], Any] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.storage = storage
        self.url = url
        self.retry_s = retry_s
        self._sleep = sleep
        self._clock = clock

    def retry(self, function: Callable[[], Any]) -> Any:
        """``function()`` (a call of the storage), tried again while the server cannot be
        reached."""
        deadline = None
        delay = FIRST_RETRY_DELAY_S
        while True:
            try:
                return function()
            except Exception as exc:  # SQLAlchemy and the DB drivers raise many types
                if not connection_lost(exc):
                    raise
                now = self._clock()
                if deadline is None:
                    deadline = now + self.retry_s
                    if self.retry_s > 0:
                        warnings.warn(
                            f"the study's database {redact(self.url)} cannot be reached "
                            f"({_first_line(exc)}); trying again for up to {self.retry_s:g} s "
                            "(study.db_retry_s)",
                            RuntimeWarning,
                            stacklevel=3,
                        )
                if now >= deadline:
                    raise DatabaseUnavailable(
                        f"the study's database {redact(self.url)} did not answer for "
                        f"{self.retry_s:g} s ({_first_line(exc)}), so this worker stops; run the "
                        "same command once the database is back: a trial it was running is "
                        "failed by its heartbeat and queued again (study.db_retry_s sets the "
                        "wait)"
                    ) from None
                self._sleep(min(delay, deadline - now))
                delay = min(2 * delay, MAX_RETRY_DELAY_S)

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Any = None) -> bool:
        """Finish (or start) a trial. A retry whose first try was committed but not
        acknowledged finds the trial already in ``state``: that is the write done, not an
        error."""
        tries = 0

        def attempt() -> bool:
            nonlocal tries
            tries += 1
            try:
                return self.storage.set_trial_state_values(trial_id, state=state, values=values)
            except UpdateFinishedTrialError:
                if tries > 1 and self.storage.get_trial(trial_id).state == state:
                    return True
                raise

        return self.retry(attempt)

    def record_heartbeat(self, trial_id: int) -> None:
        self.storage.record_heartbeat(trial_id)


def _retried(name: str) -> Callable[..., Any]:
    def method(self: RetryingStorage, *args: Any, **kwargs: Any) -> Any:
        return self.retry(lambda: getattr(self.storage, name)(*args, **kwargs))

    method.__name__ = name
    method.__doc__ = f"Optuna's ``{name}``, tried again while the database cannot be reached."
    return method


#: The storage calls :class:`RetryingStorage` tries again: every call of Optuna's storage API
#: but the two it defines itself.
RETRIED_CALLS = sorted(
    {
        name
        for base in (BaseStorage, BaseHeartbeat)
        for name, value in vars(base).items()
        if callable(value) and not name.startswith("__")
    }
    - {"set_trial_state_values", "record_heartbeat"}
)
for _name in RETRIED_CALLS:
    setattr(RetryingStorage, _name, _retried(_name))
abc.update_abstractmethods(RetryingStorage)


def _first_line(exc: BaseException) -> str:
    """The first line of the error at the root of ``exc``'s chain (a driver's own error under
    SQLAlchemy's ``orig``), for one-line messages."""
    for _ in range(8):
        inner = getattr(exc, "orig", None) or exc.__cause__
        if not isinstance(inner, BaseException):
            break
        exc = inner
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


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


class HeartbeatLost(Exception):
    """No heartbeat of the running trial was recorded for nearly the grace period: another
    worker may fail it as stale and train it again, so this worker abandons it."""

    def __init__(self) -> None:
        super().__init__(
            "its heartbeat could not be recorded for nearly study.grace_period_s, so another "
            "worker may fail it as stale and train it again: abandoned"
        )


@contextlib.contextmanager
def heartbeat(
    study: optuna.Study, trial: optuna.Trial, grace_period_s: float | None = None
) -> Iterator[threading.Event]:
    """Record heartbeats for ``trial`` while the block runs, where the storage keeps them;
    yields an event set once the trial is lost (:class:`HeartbeatLost`).

    A beat the database refuses (a restart, a network blip) is tried again at the next
    interval, with one warning per outage: the thread outlives the blip, so the trial is not
    failed as stale by another worker once the database is back. When no beat was recorded for
    ``grace_period_s`` less one interval, other workers may fail the trial any moment: the
    thread stops beating and sets the event, and the worker stops training the trial rather
    than race its re-queued copy."""
    lost = threading.Event()
    interval = heartbeat_interval(study)
    if not interval:
        yield lost
        return
    storage = study._storage
    stop = threading.Event()
    give_up_after = (grace_period_s - interval) if grace_period_s else math.inf

    def beat() -> None:
        last_recorded = time.monotonic()
        failing = False
        while True:
            try:
                storage.record_heartbeat(trial._trial_id)
            except Exception as exc:  # SQLAlchemy and the DB drivers raise many types
                if time.monotonic() - last_recorded >= give_up_after:
                    lost.set()
                    return
                if not failing:
                    warnings.warn(
                        f"trial {trial.number}: its heartbeat could not be recorded "
                        f"({_first_line(exc)}); trying again every {interval} s",
                        RuntimeWarning,
                        stacklevel=1,
                    )
                failing = True
            else:
                last_recorded, failing = time.monotonic(), False
            if stop.wait(interval):
                return

    thread = threading.Thread(target=beat, name=f"heartbeat-trial-{trial.number}", daemon=True)
    thread.start()
    try:
        yield lost
    finally:
        stop.set()
        thread.join()
