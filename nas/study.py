"""Running a search: storage, samplers, the per-trial objective, workers, resume.

Data flows one way: config -> space -> spec -> model -> trainer -> trial values. Each trial
stores its ArchSpec (``arch``), its one-line ``summary``, its ``digest`` and every ``cost`` in its
user attrs before training starts, so optuna-dashboard and the report see them, and so the
multi-objective pruners can compare a running trial with trials that cost no more.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import math
import multiprocessing
import os
import re
import signal
import socket
import tempfile
import threading
import time
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import lightning
import optuna
import torch
from optuna.trial import FrozenTrial, TrialState
from tqdm.auto import tqdm

from search_spaces.cost import model_cost
from search_spaces.space import suggest_arch
from search_spaces.spec import ArchSpec

from .checkpoints import (
    checkpoint_dir,
    delete_dominated_checkpoints,
    record_location,
    save_checkpoint,
)
from .config import StudyConfig
from .data import build_datamodule
from .pruning import (
    CurveAwareTPESampler,
    MOASHAPruner,
    ParetoPercentilePruner,
    PruningCallback,
    finish_pruned,
    record_epoch,
)
from .training import ClassifierModule, build_trainer

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def quiet_third_party_output() -> None:
    """Keep the terminal for our progress bars and tables: Optuna's per-trial INFO lines and
    known third-party deprecation notices say nothing the user can act on."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")


# -- storage and study ----------------------------------------------------------------------------


class FlockJournalLock:
    """The journal file's lock, held with ``fcntl.flock`` so the kernel drops it when its holder
    dies.

    Optuna's default ``JournalFileSymlinkLock`` is a lock *file*: a worker killed (SIGKILL, the
    OOM killer) while it writes leaves the file behind, and every other worker waits out the
    lock's 30 s grace period before breaking it. An flock needs no grace period. Like SQLite's
    locks it is not reliable on network filesystems, where the journal is not supported anyway.
    A thread lock in front makes it exclusive between the threads of one process too.
    """

    def __init__(self, journal_path: str) -> None:
        self.path = f"{journal_path}.flock"
        self._threads = threading.Lock()
        self._handle: IO[str] | None = None

    def acquire(self) -> bool:
        self._threads.acquire()
        handle = None
        try:
            # Opened per acquire, never inherited: a forked child sharing the open file
            # description would share the lock instead of waiting for it.
            handle = open(self.path, "a")  # noqa: SIM115 (closed by release)
            fcntl.flock(handle, fcntl.LOCK_EX)
        except BaseException:
            if handle is not None:
                handle.close()
            self._threads.release()
            raise
        self._handle = handle
        return True

    def release(self) -> None:
        handle, self._handle = self._handle, None
        try:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()
        finally:
            self._threads.release()


def open_storage(
    url: str,
    *,
    heartbeat_interval_s: int | None = None,
    grace_period_s: int | None = None,
    max_retry: int = 1,
) -> optuna.storages.BaseStorage:
    """An Optuna storage for ``url``: a database URL (``postgresql://``, ``sqlite:///``) or a
    journal file path (the local default, safe for several processes on one machine; locked
    with :class:`FlockJournalLock`).

    For databases, ``heartbeat_interval_s`` turns on Optuna's heartbeats: a trial whose worker
    stopped beating for ``grace_period_s`` is marked FAIL by the next worker that asks for a
    trial, and re-queued (at most ``max_retry`` times per original trial).
    """
    if "://" in url:
        retry = functools.partial(requeue_trial, max_retry=max_retry)
        try:
            storage = optuna.storages.RDBStorage(
                url,
                heartbeat_interval=heartbeat_interval_s,
                grace_period=grace_period_s,
                heartbeat_stale_trial_callback=retry if heartbeat_interval_s else None,
                engine_kwargs={"pool_pre_ping": True},
            )
        except Exception as exc:  # SQLAlchemy and the DB drivers raise many types
            first_line = (
                str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            )
            raise RuntimeError(
                f"cannot open storage {_redact(url)}: {first_line} (check that the database "
                "server is running and reachable, and the URL's user, password and database)"
            ) from None
        return storage
    path = Path(url)
    path.parent.mkdir(parents=True, exist_ok=True)
    backend = optuna.storages.journal.JournalFileBackend(str(path), FlockJournalLock(str(path)))
    return optuna.storages.JournalStorage(backend)


def _redact(url: str) -> str:
    """The URL without its password, for messages."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def make_sampler(cfg: StudyConfig, worker: int = 0) -> optuna.samplers.BaseSampler:
    """The configured sampler, seeded with ``study.seed + worker``.

    Concurrent workers must use different ``worker`` numbers: with one seed they would propose
    the same architectures in the same order and train each one twice."""
    seed = cfg.study.seed + worker
    name = cfg.study.sampler
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(population_size=cfg.study.population_size, seed=seed)
    if name == "tpe":
        return CurveAwareTPESampler(
            multivariate=True,
            group=True,
            constant_liar=True,
            n_startup_trials=cfg.study.population_size,
            seed=seed,
        )
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=cfg.study.population_size)
    return optuna.samplers.RandomSampler(seed=seed)


def make_pruner(cfg: StudyConfig) -> optuna.pruners.BasePruner:
    p = cfg.pruning
    costs = tuple(cfg.objectives.minimize)
    if p.pruner == "pareto":
        return ParetoPercentilePruner(
            percentile=p.percentile,
            cost_names=costs,
            n_startup_trials=p.n_startup_trials,
            n_warmup_epochs=p.n_warmup_epochs,
        )
    if p.pruner == "moasha":
        return MOASHAPruner(
            min_epochs=p.min_epochs,
            reduction_factor=p.reduction_factor,
            cost_names=costs,
            max_epochs=cfg.training.epochs,
        )
    if p.pruner == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=p.n_startup_trials, n_warmup_steps=p.n_warmup_epochs
        )
    if p.pruner == "percentile":
        return optuna.pruners.PercentilePruner(
            p.percentile, n_startup_trials=p.n_startup_trials, n_warmup_steps=p.n_warmup_epochs
        )
    if p.pruner == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=p.min_epochs, reduction_factor=p.reduction_factor
        )
    return optuna.pruners.NopPruner()


def load_or_create_study(
    cfg: StudyConfig, storage: str | None = None, worker: int = 0
) -> optuna.Study:
    """Create the study, or load it to resume; the config is stored with the study.

    Re-running the same config resumes. A different config under the same study name is refused
    (its trials would not be comparable) with the fields that differ.
    """
    url = storage or cfg.study.storage_url()
    study = optuna.create_study(
        study_name=cfg.study.name,
        storage=open_storage(
            url,
            heartbeat_interval_s=cfg.study.heartbeat_interval_s,
            grace_period_s=cfg.study.grace_period_s,
            max_retry=cfg.study.max_retry,
        ),
        directions=cfg.objectives.directions,
        sampler=make_sampler(cfg, worker),
        pruner=make_pruner(cfg),
        load_if_exists=True,
    )
    stored = study.user_attrs.get("config")
    current = cfg.to_dict()
    comparable = {k: v for k, v in current.items() if k != "study"}
    if stored is None:
        study.set_user_attr("config", current)
        study.set_metric_names(cfg.objectives.names)
    else:
        old = {k: v for k, v in stored.items() if k != "study"}
        if old != comparable:
            changed = sorted(
                f"{section}.{key}"
                for section in comparable
                for key in set(comparable[section]) | set(old.get(section, {}))
                if comparable[section].get(key) != old.get(section, {}).get(key)
            )
            raise ValueError(
                f"study {cfg.study.name!r} in {url} was created with a different config "
                f"(changed: {', '.join(changed)}); use a new study.name, or restore the old values"
            )
    return study


# -- one trial ------------------------------------------------------------------------------------


@dataclass
class TrialOutcome:
    state: TrialState
    values: list[float] | None = None


class TrialRunner:
    """Runs trials of one study in this process: data loaded once, a model and Trainer per trial."""

    def __init__(
        self, cfg: StudyConfig, study: optuna.Study, *, device: str = "cpu", progress: bool = True
    ) -> None:
        self.cfg = cfg
        self.study = study
        self.device = device
        self.progress = progress
        self.datamodule = build_datamodule(cfg.data, device=device, seed=cfg.study.seed)
        self.datamodule.prepare_data()
        self.datamodule.setup("fit")
        self.pruner = study.pruner

    def run(self, trial: optuna.Trial) -> TrialOutcome:
        cfg = self.cfg
        dm = self.datamodule
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        spec = suggest_arch(
            trial, cfg.space, in_channels=dm.in_channels, num_classes=dm.num_classes
        )
        seed = cfg.study.seed + trial.number
        trial.set_user_attr("arch", spec.to_dict())
        trial.set_user_attr("summary", spec.summary())
        trial.set_user_attr("digest", spec.digest())
        trial.set_user_attr("seed", seed)

        duplicate = self._completed_duplicate(spec.digest(), trial.number)
        if duplicate is not None:
            trial.set_user_attr("duplicate_of", duplicate.number)
            for key in ("cost", "val_history", "epochs_run", "checkpoint"):
                if key in duplicate.user_attrs:
                    trial.set_user_attr(key, duplicate.user_attrs[key])
            for name, cap in cfg.objectives.constraints.items():
                trial.set_constraint(name, duplicate.user_attrs["cost"][name] - cap)
            for epoch, value in sorted(duplicate.intermediate_values.items()):
                record_epoch(trial, epoch, value)
            return TrialOutcome(TrialState.COMPLETE, list(duplicate.values))

        module = ClassifierModule(spec, config=cfg.training, seed=seed)
        cost = model_cost(
            module.model,
            tuple(dm.input_shape),
            latency=cfg.objectives.needs_latency,
            batch_size=cfg.objectives.latency_batch,
        ).to_dict()
        trial.set_user_attr("cost", cost)
        for name, cap in cfg.objectives.constraints.items():
            # Optuna's samplers read these (feasible when <= 0).
            trial.set_constraint(name, cost[name] - cap)

        callbacks: list[Any] = [PruningCallback(trial, monitor="val_acc", pruner=self.pruner)]
        if self.progress:
            callbacks.append(EpochProgress(trial.number, cfg.training.epochs))
        on_gpu = self.device.startswith("cuda")
        trainer = build_trainer(
            cfg.training,
            seed=seed,
            callbacks=callbacks,
            accelerator="gpu" if on_gpu else "cpu",
            devices=[torch.device(self.device).index or 0] if on_gpu else 1,
        )
        history = module.val_history
        try:
            trainer.fit(module, datamodule=dm)
        except optuna.TrialPruned:
            self._store_history(trial, history)
            return TrialOutcome(TrialState.PRUNED, self._values(history[-1]["val_acc"], cost))
        except SystemExit:
            # Lightning turns Ctrl-C into SystemExit after a graceful shutdown.
            if trainer.interrupted:
                raise KeyboardInterrupt from None
            raise
        finally:
            # Lightning ignores SIGINT after an interrupt; give Ctrl-C back to the user.
            signal.signal(signal.SIGINT, signal.default_int_handler)
        if trainer.interrupted:
            raise KeyboardInterrupt
        self._store_history(trial, history)
        self._save_weights(trial, spec, module)
        return TrialOutcome(TrialState.COMPLETE, self._values(history[-1]["val_acc"], cost))

    def _save_weights(self, trial: optuna.Trial, spec: ArchSpec, module: ClassifierModule) -> None:
        dm = self.datamodule
        path = checkpoint_dir(self.cfg.study.runs_dir, self.cfg.study.name)
        path = path / f"trial_{trial.number}.pt"
        save_checkpoint(
            path,
            model=module.model,
            spec=spec,
            trial_number=trial.number,
            study_name=self.cfg.study.name,
            input_shape=tuple(dm.input_shape),
            class_names=dm.class_names,
            mean=dm.mean,
            std=dm.std,
        )
        record_location(trial, path)

    def _values(self, accuracy: float, cost: dict[str, float]) -> list[float]:
        return [float(accuracy)] + [float(cost[name]) for name in self.cfg.objectives.minimize]

    @staticmethod
    def _store_history(trial: optuna.Trial, history: list[dict]) -> None:
        trial.set_user_attr("val_history", [dict(h) for h in history])
        trial.set_user_attr("epochs_run", len(history))

    def _completed_duplicate(self, digest: str, number: int) -> FrozenTrial | None:
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            if t.number != number and t.user_attrs.get("digest") == digest:
                return t
        return None


class EpochProgress(lightning.Callback):
    """One tqdm bar per trial, advanced per validation epoch, showing val_acc."""

    def __init__(self, trial_number: int, epochs: int) -> None:
        self.trial_number = trial_number
        self.epochs = epochs
        self.bar: tqdm | None = None

    def on_fit_start(
        self, trainer: lightning.Trainer, pl_module: lightning.LightningModule
    ) -> None:
        self.bar = tqdm(
            total=self.epochs,
            desc=f"trial {self.trial_number}",
            unit="epoch",
            leave=False,
            dynamic_ncols=True,
        )

    def on_validation_epoch_end(
        self, trainer: lightning.Trainer, pl_module: lightning.LightningModule
    ) -> None:
        if self.bar is None or trainer.sanity_checking:
            return
        acc = trainer.callback_metrics.get("val_acc")
        self.bar.set_postfix(val_acc=f"{float(acc):.3f}" if acc is not None else "-")
        self.bar.update(1)

    def teardown(
        self, trainer: lightning.Trainer, pl_module: lightning.LightningModule, stage: str
    ) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


# -- the search loop ------------------------------------------------------------------------------


@contextlib.contextmanager
def _ask_lock(cfg: StudyConfig, storage: str | None) -> Iterator[None]:
    """Serialise "count trials, then ask" between the processes of this machine, so that its
    workers start exactly ``n_trials`` trials. Workers on other machines rely on counts alone."""
    url = storage or cfg.study.storage_url()
    if "://" in url:
        key = hashlib.sha256(f"{url}|{cfg.study.name}".encode()).hexdigest()[:16]
        lock_path = Path(tempfile.gettempdir()) / f"attention-nas-{key}.ask.lock"
    else:
        lock_path = Path(url).with_suffix(".ask.lock")
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


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
        worker = t.user_attrs.get("worker", "")
        w_host, _, pid = worker.rpartition(":")
        if w_host == host and pid.isdigit() and not _pid_alive(int(pid)):
            # Optuna has no public call to finish another process's trial.
            storage = study._storage
            storage.set_trial_user_attr(t._trial_id, "fail_reason", "worker process died mid-trial")
            if storage.set_trial_state_values(t._trial_id, TrialState.FAIL):
                requeue_trial(study, storage.get_trial(t._trial_id), max_retry)
                failed.append(t.number)
    return failed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _count(study: optuna.Study) -> tuple[int, int, int]:
    """(finished, running, failed) trials; enqueued (WAITING) trials are not started yet."""
    trials = study.get_trials(deepcopy=False)
    finished = sum(t.state in FINISHED for t in trials)
    running = sum(t.state == TrialState.RUNNING for t in trials)
    failed = sum(t.state == TrialState.FAIL for t in trials)
    return finished, running, failed


def run_worker(
    cfg: StudyConfig,
    *,
    storage: str | None = None,
    worker: int = 0,
    device: str = "cpu",
    progress: bool = True,
) -> int:
    """Run trials until the study has ``n_trials`` finished or running trials; returns how many
    trials this worker ran. Failed trials (NaN loss, out of memory, errors) are recorded with
    their reason and do not count towards ``n_trials``; when ``n_trials`` trials have failed and
    none finished, the search stops: the setup is broken rather than one architecture."""
    study = load_or_create_study(cfg, storage, worker)
    runner = TrialRunner(cfg, study, device=device, progress=progress)
    deadline = time.monotonic() + cfg.study.timeout_s if cfg.study.timeout_s else math.inf
    ran = 0
    bar = _trial_bar(cfg, study) if progress else None
    heartbeats = _has_heartbeats(study)
    while time.monotonic() < deadline:
        with _ask_lock(cfg, storage):
            if heartbeats:
                optuna.storages.fail_stale_trials(study)
            else:
                fail_orphaned_trials(study, cfg.study.max_retry)
            finished, running, failed = _count(study)
            if failed >= cfg.study.n_trials and finished == 0:
                raise RuntimeError(
                    f"{failed} trials failed and none finished: the setup is broken rather than "
                    "one architecture; see their fail_reason user attrs (nas status)"
                )
            trial = study.ask() if finished + running < cfg.study.n_trials else None
        if trial is None:
            if finished >= cfg.study.n_trials or not heartbeats:
                break
            # The rest of the budget is held by running trials, and on another machine one may
            # be dead: wait until they finish, or until its heartbeat times out and it is
            # re-queued. (Local workers are checked by pid instead, at once.)
            time.sleep(study._storage.get_heartbeat_interval())
            continue
        ran += 1
        try:
            with _heartbeat(study, trial):
                outcome = runner.run(trial)
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
            _fail(study, trial, f"{type(exc).__name__}: {exc}")
            if bar is not None:
                bar.update(1)
            continue
        if outcome.state == TrialState.PRUNED:
            if len(cfg.objectives.directions) > 1:
                finish_pruned(study, trial, outcome.values)
            else:
                trial.set_user_attr("pruned_at_epoch", trial.user_attrs["epochs_run"] - 1)
                study.tell(trial, state=TrialState.PRUNED)
        else:
            study.tell(trial, outcome.values)
            delete_dominated_checkpoints(study)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return ran


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


def _has_heartbeats(study: optuna.Study) -> bool:
    return bool(getattr(study._storage, "get_heartbeat_interval", lambda: None)())


@contextlib.contextmanager
def _heartbeat(study: optuna.Study, trial: optuna.Trial) -> Iterator[None]:
    """Record heartbeats for ``trial`` while it runs, where the storage supports them."""
    if not _has_heartbeats(study):
        yield
        return
    storage = study._storage
    interval = storage.get_heartbeat_interval()
    stop = threading.Event()

    def beat() -> None:
        while True:
            storage.record_heartbeat(trial._trial_id)
            if stop.wait(interval):
                return

    thread = threading.Thread(target=beat, name=f"heartbeat-trial-{trial.number}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _abandon(study: optuna.Study, trial: optuna.Trial, reason: str, max_retry: int) -> None:
    """FAIL a trial this worker gives up on (a stop signal), and queue its architecture again."""
    _fail(study, trial, reason)
    requeue_trial(study, study._storage.get_trial(trial._trial_id), max_retry)


def requeue_trial(study: optuna.Study, trial: FrozenTrial, max_retry: int = 1) -> None:
    """Queue the architecture of an interrupted trial again, at most ``max_retry`` times.

    Only the parameters are carried over (unlike Optuna's RetryHeartbeatStaleTrialCallback, which
    also copies the attrs, and with them the old trial's failure reason); the new trial records
    ``retry_of`` (the trial it repeats) and ``retries`` (how many times the original was retried).
    """
    retries = int(trial.user_attrs.get("retries", 0))
    if retries >= max_retry or not trial.params:
        return
    study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number, "retries": retries + 1})


def _fail(study: optuna.Study, trial: optuna.Trial, reason: str) -> None:
    trial.set_user_attr("fail_reason", reason[:2000])
    study.tell(trial, state=TrialState.FAIL)


def _trial_bar(cfg: StudyConfig, study: optuna.Study) -> tqdm:
    done = sum(t.state in FINISHED for t in study.get_trials(deepcopy=False))
    return tqdm(
        total=cfg.study.n_trials,
        initial=min(done, cfg.study.n_trials),
        desc="trials",
        unit="trial",
        dynamic_ncols=True,
    )


def _worker_main(
    cfg_dict: dict, storage: str | None, worker: int, threads: int, device: str
) -> None:
    torch.set_num_threads(threads)
    quiet_third_party_output()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    cfg = StudyConfig.from_dict(cfg_dict)
    with contextlib.suppress(KeyboardInterrupt, WorkerStopped), stop_on_sigterm():
        run_worker(cfg, storage=storage, worker=worker, device=device, progress=False)


def join_study(
    storage: str, study_name: str, *, workers: int = 1, progress: bool = True
) -> optuna.Study:
    """Join an existing study from any machine: its config is stored with the study, so the
    storage URL and the study name are all a worker needs."""
    try:
        study = optuna.load_study(study_name=study_name, storage=open_storage(storage))
    except KeyError:
        raise ValueError(
            f"no study named {study_name!r} in {_redact(storage)}; create it with "
            "`nas search CONFIG --storage URL` first"
        ) from None
    stored = study.user_attrs.get("config")
    if stored is None:
        raise ValueError(
            f"study {study_name!r} was not created by `nas search` (no stored config); "
            "create it with `nas search CONFIG --storage URL`"
        )
    cfg = StudyConfig.from_dict(stored)
    return run_search(
        cfg, storage=storage, workers=workers, progress=progress, first_worker=_joining_worker()
    )


def _joining_worker() -> int:
    """A sampler-seed offset for a process that joins a study: distinct from the ``nas search``
    workers (0, 1, ...) and, via host and pid, from other joining processes."""
    return 1000 * (1 + zlib.crc32(f"{socket.gethostname()}:{os.getpid()}".encode()) % 1_000_000)


def run_search(
    cfg: StudyConfig,
    *,
    storage: str | None = None,
    workers: int = 1,
    progress: bool = True,
    first_worker: int = 0,
) -> optuna.Study:
    """Run (or resume) the study with ``workers`` local processes; returns the study.

    Worker i seeds its sampler with ``study.seed + first_worker + i``. Threads per worker are
    ``cores // workers`` so workers do not oversubscribe the CPU; with GPUs, worker i uses GPU
    ``i % n_gpus``.
    """
    if workers < 1:
        raise ValueError("--workers must be >= 1")
    gpus = torch.cuda.device_count()
    # Create the study (and store its config) once, before workers race to do it.
    load_or_create_study(cfg, storage)
    if workers == 1:
        device = "cuda:0" if gpus else "cpu"
        with stop_on_sigterm():
            run_worker(cfg, storage=storage, worker=first_worker, device=device, progress=progress)
    else:
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
    return load_or_create_study(cfg, storage)
