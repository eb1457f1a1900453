"""Workers: the ask/tell loop, stop signals, re-queued trials and local worker processes.

A worker asks the study for a trial, hands it to the objective (``nas.objective.TrialRunner``)
and tells the study the outcome, until the study has ``study.n_trials`` finished or running
trials. Interrupted trials (Ctrl-C, SIGTERM, a killed process, a silent heartbeat) are marked
FAIL and their architecture queued again; failed architectures (NaN loss, out of memory) are
recorded with their reason and the study goes on, unless ``n_trials`` of a worker's own trials
failed and none finished (:func:`run_worker`).
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
import warnings
import zlib
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import optuna
import torch
from lightning.pytorch import LightningDataModule
from optuna.trial import FrozenTrial, TrialState
from tqdm.auto import tqdm

from . import trial_schema as schema
from .artifacts import ArtifactStoreError, open_artifact_store
from .checkpoints import delete_dominated_checkpoints
from .config import StudyConfig
from .data import error_message
from .objective import ArchitectureRunning, TrialOutcome, TrialRunner, check_runnable
from .pruning import finish_pruned
from .samplers import AdditiveCosts
from .storage import (
    DatabaseUnavailable,
    HeartbeatLost,
    heartbeat,
    heartbeat_interval,
    machine_lock,
)
from .study import (
    config_for_study,
    load_or_create_study,
    load_stored_study,
    quiet_third_party_output,
    requeue_trial,
    reseed_sampler,
)
from .supernet import SupernetTrialRunner, check_supernet_fits, ensure_supernet, is_supernet
from .tracking import check_trackers

if TYPE_CHECKING:
    from optuna.artifacts._protocol import ArtifactStore

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
#: Errors a user can fix (a config, a database down, a broken store): one line, no traceback.
USER_ERRORS = (ValueError, RuntimeError, FileNotFoundError, ImportError)
#: Characters of a failure reason quoted when a worker stops for a broken setup.
QUOTED_REASON = 200
#: Seconds between looks at an earlier trial that trains the same architecture.
DUPLICATE_POLL_S = 1.0


class WorkerStopped(BaseException):
    """A stop signal (SIGTERM) asked this worker to abandon its trial and exit.

    A BaseException, like KeyboardInterrupt, so that no ``except Exception`` on the way (ours,
    Lightning's) mistakes it for a failing architecture.
    """


@contextlib.contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into :class:`WorkerStopped` while the block runs (main thread only)."""

    def handler(signum: int, frame: Any) -> None:
        raise WorkerStopped(f"stopped by signal {signal.Signals(signum).name}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# -- trials that end without an outcome ---------------------------------------------------------


def fail_orphaned_trials(study: optuna.Study, max_retry: int = 1) -> list[int]:
    """Mark RUNNING trials whose worker process on this host is gone as FAIL, and re-queue them.

    A process killed mid-trial leaves its trial RUNNING. On a journal file there are no
    heartbeats, but on the same host the worker's pid tells whether it is alive: a dead worker's
    trial is never counted as complete, and its architecture is queued again (at most
    ``max_retry`` times per original trial, as Optuna's heartbeat retry does for databases).
    Returns the trial numbers failed.
    """
    host = socket.gethostname()
    failed = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        w_host, pid = schema.worker_host_pid(t)
        if (
            w_host == host
            and pid is not None
            and not _pid_alive(pid)
            and fail_and_requeue(study, t, "worker process died mid-trial", max_retry)
        ):
            failed.append(t.number)
    return failed


def fail_and_requeue(study: optuna.Study, trial: FrozenTrial, reason: str, max_retry: int) -> bool:
    """FAIL a RUNNING trial with ``reason`` and queue its architecture again (``max_retry``);
    False, and nothing written, where it finished meanwhile (another worker failed it as
    stale: that worker queued it)."""
    storage = study._storage
    try:
        # Optuna has no public call to finish another process's (or a lost) trial.
        schema.FAIL_REASON.set_stored(study, trial, reason)
        if not storage.set_trial_state_values(trial._trial_id, TrialState.FAIL):
            return False
    except optuna.exceptions.UpdateFinishedTrialError:
        return False
    requeue_trial(study, storage.get_trial(trial._trial_id), max_retry)
    return True


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clip_reason(reason: str, limit: int = schema.MAX_FAIL_REASON) -> str:
    """``reason`` cut to ``limit`` characters in its middle, so the file an error names at
    either end survives."""
    if len(reason) <= limit:
        return reason
    marker = " [...] "
    head = (limit - len(marker)) // 2
    return reason[:head] + marker + reason[len(reason) - (limit - len(marker) - head) :]


def _fail(study: optuna.Study, trial: optuna.Trial, reason: str) -> None:
    schema.FAIL_REASON.set(trial, clip_reason(reason))
    study.tell(trial, state=TrialState.FAIL)


def _abandon(study: optuna.Study, trial: optuna.Trial, reason: str, max_retry: int) -> None:
    """FAIL a trial this worker gives up on (a stop signal), and queue its architecture again."""
    _fail(study, trial, reason)
    requeue_trial(study, study._storage.get_trial(trial._trial_id), max_retry)


def tell_outcome(study: optuna.Study, trial: optuna.Trial, outcome: TrialOutcome) -> None:
    """Finish the trial in the study with its outcome. Pruned trials of multi-objective studies
    keep their partial values (``finish_pruned``)."""
    if outcome.state == TrialState.PRUNED:
        if len(study.directions) > 1:
            finish_pruned(study, trial, outcome.values)
        else:
            schema.PRUNED_AT_EPOCH.set(trial, schema.epochs_run(trial) - 1)
            study.tell(trial, state=TrialState.PRUNED)
        return
    study.tell(trial, outcome.values)


def _tell(
    study: optuna.Study, trial: optuna.Trial, outcome: TrialOutcome, runner: TrialRunner
) -> None:
    """Finish the trial in the study (:func:`tell_outcome`); a completed trial may make others'
    weights obsolete (removed from the runner's artifact store). A trial another worker failed
    as stale meanwhile keeps that state: its re-queued copy trains it again."""
    try:
        taken_over = study._storage.get_trial(trial._trial_id).state.is_finished()
        if not taken_over:
            tell_outcome(study, trial, outcome)
    except optuna.exceptions.UpdateFinishedTrialError:  # failed between the look and the tell
        taken_over = True
    if taken_over:
        warnings.warn(
            f"trial {trial.number} was failed as stale by another worker while this one "
            "finished it (its heartbeat was late); its re-queued copy trains it again",
            RuntimeWarning,
            stacklevel=2,
        )
        return
    # A confirm study keeps every repeat's weights (a table study keeps none).
    if outcome.state == TrialState.COMPLETE and schema.planned_seeds(study) is None:
        delete_dominated_checkpoints(study, runner.artifact_store)


# -- the loop ----------------------------------------------------------------------------------


def _count(study: optuna.Study) -> tuple[int, int, int]:
    """(finished, running, waiting) trials; enqueued (WAITING) trials are not started yet."""
    trials = study.get_trials(deepcopy=False)
    finished = sum(t.state in FINISHED for t in trials)
    running = sum(t.state == TrialState.RUNNING for t in trials)
    waiting = sum(t.state == TrialState.WAITING for t in trials)
    return finished, running, waiting


def _clear_dead_trials(cfg: StudyConfig, study: optuna.Study) -> None:
    """FAIL and re-queue the trials of dead workers: by heartbeat on databases, by pid here."""
    if heartbeat_interval(study):
        optuna.storages.fail_stale_trials(study)
    else:
        fail_orphaned_trials(study, cfg.study.max_retry)


def _next_trial(
    cfg: StudyConfig,
    study: optuna.Study,
    url: str,
    reseed: int | None,
    costs: AdditiveCosts | None = None,
) -> tuple[optuna.Trial | None, bool]:
    """Under this machine's lock: clear dead workers' trials, then ask for a trial while the
    budget has room (a confirm or table study: while a queued run waits; it samples nothing of
    its own); before the first ask of this process (``reseed`` = its worker number) the sampler
    gets a seed no earlier process had. Returns (trial, False), or (None, whether to wait:
    running trials hold the rest, and on a database a dead one's heartbeat may re-queue it)."""
    with machine_lock(url, cfg.study.name):
        _clear_dead_trials(cfg, study)
        finished, running, waiting = _count(study)
        planned = schema.planned_seeds(study) is not None
        may_wait = bool(heartbeat_interval(study)) and running > 0
        if planned and not waiting:
            return None, may_wait
        if finished + running >= cfg.study.n_trials:
            return None, may_wait and finished < cfg.study.n_trials
        if reseed is not None:
            reseed_sampler(study, cfg, reseed, costs)
        trial = study.ask()
        if planned and not schema.REPLICATE.has(trial):
            # Another machine took the last queued run between the count and the ask.
            _fail(study, trial, "no queued run was left for this worker")
            return None, bool(heartbeat_interval(study))  # look again once it runs
        return trial, False


def _run_unique(
    runner: TrialRunner,
    cfg: StudyConfig,
    study: optuna.Study,
    trial: optuna.Trial,
    url: str,
    lost: threading.Event,
) -> TrialOutcome:
    """Run the trial; while an earlier trial trains the same architecture, wait for its outcome
    (clearing dead workers' trials meanwhile, so a killed worker's duplicate does not block).
    A trial whose heartbeat is ``lost`` ends with :class:`HeartbeatLost`."""
    while True:
        try:
            outcome = runner.run(trial, stop=lost)
            if lost.is_set():  # lost after training: while testing or storing weights
                raise HeartbeatLost
            return outcome
        except ArchitectureRunning as running:
            while study.get_trials(deepcopy=False)[running.number].state == TrialState.RUNNING:
                time.sleep(DUPLICATE_POLL_S)
                with machine_lock(url, cfg.study.name):
                    _clear_dead_trials(cfg, study)


def run_worker(
    cfg: StudyConfig,
    *,
    storage: str | None = None,
    worker: int = 0,
    device: str = "cpu",
    progress: bool = True,
    datamodule: LightningDataModule | None = None,
    artifact_store: ArtifactStore | None = None,
) -> int:
    """Run trials until the study has ``n_trials`` finished or running trials; returns how many
    trials this worker ran. Failed trials (NaN loss, out of memory, errors) are recorded with
    their reason and do not count towards ``n_trials``.

    The setup is judged broken, rather than one architecture, from this worker's own trials
    only: once ``n_trials`` trials it ran have failed and none finished, it stops with a
    RuntimeError that quotes their most common reason. Failures stored by earlier runs (a full
    disk since freed, a corrupt image since fixed) and trials of workers that died never stop a
    new one, and an interrupted trial (Ctrl-C, SIGTERM) ends the worker instead of counting.
    ``datamodule``: the study's data, already set up, and ``artifact_store``, the study's store
    (default: loaded and opened here)."""
    url = storage or cfg.study.storage_url()
    study = load_or_create_study(cfg, storage, worker)
    cfg = config_for_study(cfg, schema.stored_config(study))
    runner_class = SupernetTrialRunner if is_supernet(cfg) else TrialRunner
    runner = runner_class(
        cfg,
        study,
        device=device,
        progress=progress,
        datamodule=datamodule,
        artifact_store=artifact_store,
    )
    costs = None
    if cfg.study.sampler == "additive":  # the costs of any architecture, before training
        dm = runner.datamodule
        costs = AdditiveCosts(
            cfg.space,
            cfg.objectives.minimize,
            dm.input_shape,
            num_classes=dm.num_classes,
            latency_batch=cfg.objectives.latency_batch,
        )
    deadline = time.monotonic() + cfg.study.timeout_s if cfg.study.timeout_s else math.inf
    ran = 0
    failures: list[str] = []  # why this worker's trials failed
    store_failures = 0  # trials in a row that trained but could not store their weights
    finished_one = False
    bar = _trial_bar(cfg, study) if progress else None
    while time.monotonic() < deadline:
        trial, wait = _next_trial(cfg, study, url, reseed=worker if ran == 0 else None, costs=costs)
        if trial is None:
            if not wait:
                break
            # The rest of the budget is held by running trials, and on another machine one may
            # be dead: wait until they finish, or until its heartbeat times out and it is
            # re-queued. (Local workers are checked by pid instead, at once.)
            time.sleep(heartbeat_interval(study))
            continue
        ran += 1
        try:
            with heartbeat(study, trial, cfg.study.grace_period_s) as lost:
                outcome = _run_unique(runner, cfg, study, trial, url, lost)
        except DatabaseUnavailable:
            raise  # nothing can be stored: the trial's silent heartbeat re-queues it
        except HeartbeatLost as exc:
            frozen = study._storage.get_trial(trial._trial_id)
            fail_and_requeue(study, frozen, f"HeartbeatLost: {exc}", cfg.study.max_retry)
            continue
        except (KeyboardInterrupt, WorkerStopped) as exc:
            reason = (
                "interrupted by the user (Ctrl-C)"
                if isinstance(exc, KeyboardInterrupt)
                else str(exc)
            )
            _abandon(study, trial, f"{reason}; re-run the command to resume", cfg.study.max_retry)
            raise
        except Exception as exc:  # NaN loss, out of memory, a broken block: the study goes on
            if isinstance(exc, torch.OutOfMemoryError) and torch.cuda.is_available():
                torch.cuda.empty_cache()
            failures.append(f"{type(exc).__name__}: {error_message(exc)}")
            if isinstance(exc, ArtifactStoreError):  # the store's fault: train it again later
                store_failures += 1
                _abandon(study, trial, failures[-1], cfg.study.max_retry)
                _stop_if_store_broken(store_failures, cfg.study.max_store_failures, exc)
            else:
                _fail(study, trial, failures[-1])
        else:
            _tell(study, trial, outcome, runner)
            finished_one, store_failures = True, 0
        if bar is not None:
            bar.update(1)
        if not finished_one:
            _stop_if_broken(failures, cfg.study.n_trials)
    if bar is not None:
        bar.close()
    return ran


def _stop_if_store_broken(in_a_row: int, limit: int, error: ArtifactStoreError) -> None:
    """Stop once ``limit`` trials in a row trained but could not store their weights: every
    further trial would train in full and fail the same way."""
    if in_a_row >= limit:
        raise RuntimeError(
            f"{in_a_row} trials in a row trained but could not store their weights, so this "
            f"worker stops instead of training more (they are queued again): {error} (run the "
            "same command once the store works; study.max_store_failures sets the limit)"
        )


def _stop_if_broken(failures: list[str], n_trials: int) -> None:
    """Stop once ``n_trials`` of this worker's trials failed (``failures``: their reasons) and
    none finished, quoting the most common first line of a reason."""
    if len(failures) < n_trials:
        return
    firsts = Counter(reason.strip().split("\n")[0] for reason in failures)
    reason, count = firsts.most_common(1)[0]
    if len(reason) > QUOTED_REASON:
        reason = reason[: QUOTED_REASON - 3] + "..."
    raise RuntimeError(
        f"{len(failures)} trials failed and none finished since this worker started: the setup "
        f"is broken rather than one architecture (the most common reason, {count} of "
        f"{len(failures)}: {reason}); fix it and run the same command again: the study keeps "
        "every trial, and only new failures count (nas status lists them)"
    )


def _trial_bar(cfg: StudyConfig, study: optuna.Study) -> tqdm:
    done = sum(t.state in FINISHED for t in study.get_trials(deepcopy=False))
    return tqdm(
        total=cfg.study.n_trials,
        initial=min(done, cfg.study.n_trials),
        desc="trials",
        unit="trial",
        dynamic_ncols=True,
    )


# -- processes ---------------------------------------------------------------------------------


def _worker_main(
    cfg_dict: dict, storage: str | None, worker: int, threads: int, device: str
) -> None:
    torch.set_num_threads(threads)
    quiet_third_party_output()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    cfg = StudyConfig.from_dict(cfg_dict)
    with contextlib.suppress(KeyboardInterrupt, WorkerStopped), stop_on_sigterm():
        try:
            run_worker(cfg, storage=storage, worker=worker, device=device, progress=False)
        except USER_ERRORS as exc:  # one line, as the nas command prints it, not a traceback
            print(f"worker {worker}: error: {error_message(exc)}", file=sys.stderr)
            sys.exit(2)


def join_study(
    storage: str, study_name: str, *, workers: int = 1, progress: bool = True
) -> optuna.Study:
    """Join an existing study from any machine: its config is stored with the study, so the
    storage URL and the study name are all a worker needs."""
    _, cfg = load_stored_study(storage, study_name)
    return run_search(
        cfg,
        storage=storage,
        workers=workers,
        progress=progress,
        first_worker=_joining_worker(),
        train_supernet=False,
    )


def _joining_worker() -> int:
    """A sampler-seed offset for a process that joins a study: distinct from the ``nas search``
    workers (0, 1, ...) and, via host and pid, from other joining processes."""
    return 1000 * (1 + zlib.crc32(schema.this_worker().encode()) % 1_000_000)


def run_search(
    cfg: StudyConfig,
    *,
    storage: str | None = None,
    workers: int = 1,
    progress: bool = True,
    first_worker: int = 0,
    train_supernet: bool = True,
) -> optuna.Study:
    """Run (or resume) the study with ``workers`` local processes; returns the study.

    Worker i seeds its sampler with ``study.seed + first_worker + i``. Threads per worker are
    ``cores // workers`` so workers do not oversubscribe the CPU; with GPUs, worker i uses GPU
    ``i % n_gpus``. A supernet study (``search.strategy = "supernet"``) first trains its
    supernet here (or resumes it; ``train_supernet=False`` refuses instead), then its workers
    evaluate sub-networks.
    """
    if workers < 1:
        raise ValueError("--workers must be >= 1")
    gpus = torch.cuda.device_count()
    device = "cuda:0" if gpus else "cpu"
    # The trackers, data, a model and the artifact store are checked before anything is stored:
    # a config that cannot run leaves no study behind. Then the study (and its config) is created
    # once, before workers race to.
    check_trackers(cfg)
    datamodule = check_runnable(cfg, device)
    if is_supernet(cfg):
        check_supernet_fits(cfg, datamodule, device)
    store = open_artifact_store(cfg.study.artifacts_url(), cfg.study.artifacts_endpoint)
    study = load_or_create_study(cfg, storage)
    cfg = config_for_study(cfg, schema.stored_config(study))
    if is_supernet(cfg):
        ensure_supernet(
            cfg, study, datamodule, store, device=device, progress=progress, train=train_supernet
        )
    if workers == 1:
        with stop_on_sigterm():
            run_worker(
                cfg,
                storage=storage,
                worker=first_worker,
                device=device,
                progress=progress,
                datamodule=datamodule,
                artifact_store=store,
            )
    else:
        _run_processes(cfg, storage, workers, first_worker, gpus)
    return load_or_create_study(cfg, storage)


def _run_processes(
    cfg: StudyConfig, storage: str | None, workers: int, first_worker: int, gpus: int
) -> None:
    threads = max(1, (os.cpu_count() or 1) // workers)
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(
            target=_worker_main,
            args=(
                cfg.to_dict(),
                storage,
                first_worker + i,
                threads,
                f"cuda:{i % gpus}" if gpus else "cpu",
            ),
        )
        for i in range(workers)
    ]
    for p in procs:
        p.start()
    try:
        with stop_on_sigterm():
            for p in procs:
                p.join()
    except (KeyboardInterrupt, WorkerStopped):
        # Ctrl-C reaches the workers by itself (same process group); a SIGTERM to this
        # process is passed on, so that every worker abandons its trial cleanly.
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join()
        raise
    bad = [p.exitcode for p in procs if p.exitcode]
    if bad:
        raise RuntimeError(f"{len(bad)} worker(s) exited with errors (exit codes {bad})")
