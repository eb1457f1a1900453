"""Per-trial overhead of a search, and Lightning's training loop against a plain PyTorch loop.

Part 1 runs real trials through ``nas.worker.run_worker`` (the quickstart study with the random
sampler and no pruning, so every trial trains the full budget) in a fresh storage (a journal file,
the default, and SQLite), with timers around every phase of a trial: sampling, storage writes, the
duplicate check, model build, cost model, Trainer set-up, the training and validation epochs (a
Lightning Callback marks them), Lightning's own work in ``fit`` outside the epochs, the pruning
report, the checkpoint, ``tell`` and the checkpoint clean-up. Times are exclusive (a phase nested
in another counts once, in the inner one), and whatever no timer covers (the worker loop, its file
lock) is reported as "other", so the rows add up to the measured trial time. Overhead is
everything outside the epochs; the target is at most 5% of a trial. The first trial of a process
also pays one-off warm-up (lazy imports, first calls into torch and Lightning), so means are shown
over all trials and over the steady state (every quiet trial but the first, see below).

Part 2 trains one architecture of the same space on the same data for a few epochs with the
project's Trainer (``build_trainer`` + ``ClassifierModule``) and with a hand-written loop (same
model from ``build_model``, same batches, SGD parameter groups, LR schedule, label smoothing,
determinism flags and torch threads; validation in both), alternating which runs first. It reports
median seconds per training epoch and per validation epoch (warm-up epochs excluded) and the ratio
Lightning / plain.

The machine may be shared: with two cores, another busy process makes torch's threads wait on each
other and an epoch 10-30x slower. Every trial, epoch and run therefore records how many cores other
processes took meanwhile (``/proc/stat`` minus this process's CPU time); the steady-state numbers
use only samples taken while that stayed under ``QUIET_CORES``, the tables say how many, and a
run with too few quiet samples is marked as contended. ``--budget-s`` bounds each part's time.

    .venv/bin/python benchmarks/overhead.py     # digits, 12 trials x 8 epochs per storage, ~1.5 min
    .venv/bin/python benchmarks/overhead.py --trials 32 --repeats 9 --compare-epochs 10
    .venv/bin/python benchmarks/overhead.py --data cifar10 --per-class 500 --out /tmp/cifar10.md
    .venv/bin/python benchmarks/overhead.py --quick --out -     # smoke run, writes nothing

Results go to ``benchmarks/results/overhead.md`` (and ``.json`` beside it) unless ``--out`` says
otherwise (``-``: print only). ``--data cifar10`` reads the JPEG copy of CIFAR-10
(``$ATTN_NAS_DATA`` or ``../shared/data``, see its README); its first run decodes it once (about a
minute on 2 cores) into ``~/.cache/attention-nas``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import math
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

# Run as a script (``python benchmarks/overhead.py``) from a checkout that is not pip-installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import lightning
import optuna
import torch
import torch.nn.functional as F
from optuna.trial import TrialState

import nas.objective
import nas.pruning
import nas.worker
from benchmarks._harness import (
    QUIET_CORES,
    RESULTS,
    Session,
    Snapshot,
    add_output_arguments,
    cifar10_data,
    command_line,
    cpu_snapshot,
    fmt,
    markdown_table,
    others_cores,
    quickstart_study,
    quiet_samples,
    results_path,
    write_results,
)
from nas.config import StudyConfig
from nas.data import TensorDataModule, build_datamodule
from nas.study import quiet_third_party_output
from nas.training import (
    ClassifierModule,
    TrainingConfig,
    build_trainer,
    param_groups_weight_decay,
    warmup_constant_factor,
    warmup_cosine_factor,
)
from search_spaces.build import build_model
from search_spaces.space import suggest_arch
from search_spaces.spec import ArchSpec

DEFAULT_OUT = RESULTS / "overhead.md"
#: Overhead above this share of a trial misses the target.
TARGET = 0.05
# Phase names. Training is what a trial is for; every other phase is overhead.
TRAIN, VAL = "train epochs", "validation epochs"
TRAINING = (TRAIN, VAL)
#: Per-worker start-up, paid once per process and not per trial.
STARTUP = ("open study", "load data")
ROOT_PHASE = "other (worker loop, machine lock)"
#: Overhead phases in the order of a trial, with what each one covers.
OVERHEAD = {
    "orphan check + counts": "fail_orphaned_trials / fail_stale_trials and _count (storage reads)",
    "ask": "study.ask (sampler, new trial in storage)",
    "sample architecture": "suggest_arch (suggest_categorical: sampler and storage)",
    "storage writes": "trial.set_user_attr: worker, arch, summary, digest, seed, cost, history",
    "duplicate check": "TrialRunner._earlier_duplicate (reads earlier trials)",
    "model build": "ClassifierModule(spec, ...) incl. build_model",
    "cost model": "model_cost (FLOPs, params, ...)",
    "Trainer set-up": "build_trainer (seed_everything, Trainer.__init__)",
    "Lightning fit outside epochs": "trainer.fit minus the epochs: setup, optimizers, teardown",
    "pruning report": "PruningCallback.on_validation_end (intermediate value to storage)",
    "checkpoint save": "save_checkpoint (torch.save, atomic rename)",
    "tell": "study.tell (values and state to storage)",
    "delete dominated checkpoints": "delete_dominated_checkpoints (reads completed trials)",
    ROOT_PHASE: "time no timer covers: run_worker's loop, machine_lock, heartbeat, signals",
}


# --- timing ----------------------------------------------------------------------------------


class PhaseClock:
    """Exclusive wall-clock time per (trial, phase).

    Phases nest on a stack; at every event (a phase starts or ends, a new trial begins) the time
    since the previous event goes to the phase on top of the stack, in the current trial's bucket.
    So nested phases are not counted twice, and the root phase collects what nothing else covers.
    Main thread only.
    """

    def __init__(self) -> None:
        self.stack: list[str] = []
        self.bucket = 0
        self.asked = False
        self.last = time.perf_counter()
        self.totals: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        #: A snapshot where each trial's bucket starts (and one at ``finish``).
        self.marks: list[Snapshot] = [cpu_snapshot()]

    def _tick(self) -> None:
        now = time.perf_counter()
        if self.stack:
            self.totals[self.bucket][self.stack[-1]] += now - self.last
        self.last = now

    def push(self, name: str) -> None:
        self._tick()
        self.stack.append(name)

    def pop(self, name: str) -> None:
        """End the innermost ``name`` (and anything left open above it); no-op if not open."""
        if name not in self.stack:
            return
        self._tick()
        while self.stack.pop() != name:
            pass

    def new_trial(self) -> None:
        """Called at each ``study.ask``: later time belongs to the next trial."""
        self._tick()
        if self.asked:
            self.bucket += 1
            self.marks.append(cpu_snapshot())
        self.asked = True

    def finish(self) -> None:
        self._tick()
        self.marks.append(cpu_snapshot())

    def others(self) -> list[float | None]:
        """Cores other processes took during each trial's bucket."""
        return [others_cores(a, b) for a, b in zip(self.marks, self.marks[1:], strict=False)]

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        self.push(name)
        depth = len(self.stack)
        try:
            yield
        finally:
            # Also closes phases a hook opened but never closed (an exception inside fit).
            self._tick()
            del self.stack[depth - 1 :]

    def timed(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self.phase(name):
                return fn(*args, **kwargs)

        return wrapper


class EpochTimer(lightning.Callback):
    """Seconds of each training epoch (first batch fetched to last batch done) and each
    validation epoch; with a ``clock``, also marks them as the clock's training phases.

    Validation runs inside Lightning's training epoch, after the last batch: the training part
    ends at ``on_validation_start`` (or at ``on_train_epoch_end`` when no validation runs).
    """

    def __init__(self, clock: PhaseClock | None = None) -> None:
        self.clock = clock
        self.train_s: list[float] = []
        self.val_s: list[float] = []
        #: The epoch of each validation (a run may validate after some epochs only).
        self.val_epochs: list[int] = []
        #: Cores other processes took during each epoch (see :func:`others_cores`).
        self.train_others: list[float | None] = []
        self.val_others: list[float | None] = []
        self._start: Snapshot | None = None

    def start(self, name: str) -> None:
        self._start = cpu_snapshot()
        if self.clock is not None:
            self.clock.push(name)

    def stop(self, name: str, into: list[float]) -> None:
        if self._start is None:
            return
        end = cpu_snapshot()
        into.append(end[0] - self._start[0])
        others = self.train_others if into is self.train_s else self.val_others
        others.append(others_cores(self._start, end))
        self._start = None
        if self.clock is not None:
            self.clock.pop(name)

    def on_train_epoch_start(self, trainer: lightning.Trainer, pl_module: Any) -> None:
        self.start(TRAIN)

    def on_validation_start(self, trainer: lightning.Trainer, pl_module: Any) -> None:
        if trainer.sanity_checking:
            return
        self.stop(TRAIN, self.train_s)
        self.start(VAL)

    def on_validation_end(self, trainer: lightning.Trainer, pl_module: Any) -> None:
        if not trainer.sanity_checking:
            self.stop(VAL, self.val_s)
            self.val_epochs.append(trainer.current_epoch)

    def on_train_epoch_end(self, trainer: lightning.Trainer, pl_module: Any) -> None:
        self.stop(TRAIN, self.train_s)


@contextlib.contextmanager
def instrumented(clock: PhaseClock) -> Iterator[dict[str, Any]]:
    """Wrap the phases of ``nas.worker.run_worker`` with ``clock``'s timers; restore on exit.

    Functions are replaced where ``nas.worker`` and ``nas.objective`` look them up (their module
    namespaces, or the class for methods), so the real code path runs, only timed. Yields a dict
    that receives the ``study`` the worker opened.
    """
    seen: dict[str, Any] = {}
    saved: list[tuple[Any, str, Any]] = []

    def patch(owner: Any, name: str, label: str, wrap: Callable | None = None) -> None:
        original = getattr(owner, name)
        saved.append((owner, name, original))
        setattr(owner, name, (wrap or functools.partial(clock.timed, label))(original))

    def open_study(original: Callable) -> Callable:
        @functools.wraps(original)
        def wrapper(*args: Any, **kwargs: Any) -> optuna.Study:
            with clock.phase("open study"):
                seen["study"] = original(*args, **kwargs)
            return seen["study"]

        return wrapper

    def ask(original: Callable) -> Callable:
        @functools.wraps(original)
        def wrapper(*args: Any, **kwargs: Any) -> optuna.Trial:
            clock.new_trial()
            with clock.phase("ask"):
                return original(*args, **kwargs)

        return wrapper

    def trainer_factory(original: Callable) -> Callable:
        @functools.wraps(original)
        def wrapper(*args: Any, callbacks: Any = (), **kwargs: Any) -> lightning.Trainer:
            with clock.phase("Trainer set-up"):
                trainer = original(*args, callbacks=[*callbacks, EpochTimer(clock)], **kwargs)
            trainer.fit = clock.timed("Lightning fit outside epochs", trainer.fit)
            return trainer

        return wrapper

    patch(nas.worker, "load_or_create_study", "", open_study)
    patch(nas.objective.TrialRunner, "__init__", "load data")
    patch(nas.worker, "fail_orphaned_trials", "orphan check + counts")
    patch(optuna.storages, "fail_stale_trials", "orphan check + counts")
    patch(nas.worker, "_count", "orphan check + counts")
    patch(optuna.Study, "ask", "", ask)
    patch(nas.objective, "suggest_arch", "sample architecture")
    patch(optuna.trial.Trial, "set_user_attr", "storage writes")
    patch(optuna.trial.Trial, "set_constraint", "storage writes")
    patch(nas.objective.TrialRunner, "_earlier_duplicate", "duplicate check")
    patch(nas.objective, "ClassifierModule", "model build")
    patch(nas.objective, "model_cost", "cost model")
    patch(nas.objective, "build_trainer", "", trainer_factory)
    patch(nas.pruning.PruningCallback, "on_validation_end", "pruning report")
    patch(nas.objective, "save_checkpoint", "checkpoint save")
    patch(optuna.Study, "tell", "tell")
    patch(nas.worker, "delete_dominated_checkpoints", "delete dominated checkpoints")
    try:
        yield seen
    finally:
        for owner, name, original in reversed(saved):
            setattr(owner, name, original)


# --- configuration -----------------------------------------------------------------------------


def make_config(args: argparse.Namespace, runs_dir: str) -> StudyConfig:
    """The quickstart study with the random sampler and no pruning (every trial trains the full
    budget), ``args.trials`` trials of ``args.epochs`` epochs, and the chosen data."""
    data = quickstart_study("overhead-bench", runs_dir, args.trials, args.epochs)
    # run_worker starts no new trial past this: a busy machine cannot run for hours.
    data["study"]["timeout_s"] = args.budget_s
    if args.backbone:
        data["backbone"] = {"name": args.backbone}
    if args.data == "cifar10":
        data["data"] = cifar10_data()
    if args.per_class:
        data["data"]["per_class"] = args.per_class
        data["data"]["val_per_class"] = max(1, args.per_class // 5)
    return StudyConfig.from_dict(data)


def _storage_url(kind: str, runs_dir: str) -> str:
    if kind == "sqlite":
        return f"sqlite:///{runs_dir}/overhead.db"
    return str(Path(runs_dir) / "journal.log")


# --- part 1: where a trial's time goes ------------------------------------------------------


def measure_trials(args: argparse.Namespace, storage: str) -> dict[str, Any]:
    """Run ``args.trials`` trials through ``run_worker`` with timers (fewer if ``args.budget_s``
    runs out first); per-trial phase seconds and the cores other processes took meanwhile."""
    clock = PhaseClock()
    with tempfile.TemporaryDirectory() as runs, warnings.catch_warnings():
        # Optuna says heartbeats are meant for Study.optimize; run_worker uses them on purpose.
        warnings.filterwarnings("ignore", message="Heartbeat of storage")
        cfg = make_config(args, runs)
        url = _storage_url(storage, runs)
        with instrumented(clock) as seen, clock.phase(ROOT_PHASE):
            nas.worker.run_worker(cfg, storage=url, progress=False)
        clock.finish()
        trials = seen["study"].get_trials(deepcopy=False)
        failed = [t for t in trials if t.state != TrialState.COMPLETE]
        if failed:
            reasons = {t.number: t.user_attrs.get("fail_reason", t.state.name) for t in failed}
            raise RuntimeError(f"trials did not complete: {reasons}")
        duplicates = [t.number for t in trials if "duplicate_of" in t.user_attrs]
        steps = len(build_datamodule(cfg.data, seed=cfg.study.seed).train_dataloader())
    startup = {name: clock.totals[0].pop(name, 0.0) for name in STARTUP}
    per_trial = [dict(clock.totals[b]) for b in range(len(trials))]
    return {
        "storage": storage,
        "trials": len(trials),
        "epochs": cfg.training.epochs,
        "steps_per_epoch": steps,
        "duplicates": duplicates,
        "startup_s": startup,
        "per_trial_s": per_trial,
        "others_cores": clock.others()[: len(trials)],
    }


def steady_trials(result: dict[str, Any]) -> tuple[list[int], bool]:
    """Trials for the steady-state numbers, and whether they are contended.

    Steady: trained (duplicates train nothing), not the first (one-off warm-up), and quiet (other
    processes took under ``QUIET_CORES``). When too few are quiet, all trained trials but the
    first are used and the result is flagged as contended.
    """
    trained = [i for i, p in enumerate(result["per_trial_s"]) if p.get(TRAIN, 0) > 0]
    candidates = [i for i in trained if i > 0] or trained
    others = result["others_cores"]
    return quiet_samples(candidates, [others[i] if i < len(others) else None for i in candidates])


def summarise_trials(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per phase: mean ms per trial and % of the trial, over all trained trials and over
    the steady state (see :func:`steady_trials`). Duplicates (which train nothing) are left out."""
    per_trial = result["per_trial_s"]
    steady, _ = steady_trials(result)
    groups = {
        "all": [p for p in per_trial if p.get(TRAIN, 0) > 0],
        "steady": [per_trial[i] for i in steady],
    }

    def mean(group: str, names: tuple[str, ...] | list[str]) -> float:
        trials = groups[group]
        return sum(sum(p.get(n, 0.0) for n in names) for p in trials) / len(trials)

    every = [*TRAINING, *OVERHEAD]
    totals = {g: mean(g, every) for g in groups}
    rows = []

    def row(name: str, kind: str, names: tuple[str, ...] | list[str]) -> None:
        values = {g: mean(g, names) for g in groups}
        rows.append(
            {
                "phase": name,
                "kind": kind,
                "ms_all": values["all"] * 1e3,
                "share_all": values["all"] / totals["all"],
                "ms_steady": values["steady"] * 1e3,
                "share_steady": values["steady"] / totals["steady"],
                "storage": result["storage"],
            }
        )

    for name in TRAINING:
        row(name, "training", (name,))
    for name in OVERHEAD:
        row(name, "overhead", (name,))
    row("overhead total", "total", list(OVERHEAD))
    row("trial total", "total", every)
    return rows


# --- part 2: Lightning against a plain loop ----------------------------------------------------


def sample_spec(cfg: StudyConfig, dm: TensorDataModule) -> ArchSpec:
    """The first architecture the study's random sampler proposes (fixed by ``study.seed``)."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=cfg.study.seed))
    return suggest_arch(
        study.ask(), cfg.space, in_channels=dm.in_channels, num_classes=dm.num_classes
    )


def run_lightning(
    spec: ArchSpec, tcfg: TrainingConfig, dm: TensorDataModule, epochs: int, seed: int
) -> EpochTimer:
    """``epochs`` epochs with the project's Trainer; the timer holds the per-epoch seconds."""
    module = ClassifierModule(spec, config=tcfg, seed=seed)
    timer = EpochTimer()
    trainer = build_trainer(tcfg, seed=seed, callbacks=[timer], max_epochs=epochs)
    trainer.fit(module, datamodule=dm)
    return timer


def run_plain(
    spec: ArchSpec, tcfg: TrainingConfig, dm: TensorDataModule, epochs: int, seed: int
) -> EpochTimer:
    """The same training by hand: what ``ClassifierModule`` and the Trainer do on the CPU, minus
    Lightning (no hooks, no logging, no finite-loss check, no train-accuracy metric)."""
    lightning.seed_everything(seed, workers=True, verbose=False)
    model = build_model(spec, seed=seed)
    groups = param_groups_weight_decay(model, tcfg.weight_decay)
    if tcfg.optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(
            groups, lr=tcfg.lr, momentum=tcfg.momentum, nesterov=tcfg.nesterov
        )
    else:
        opt = torch.optim.AdamW(groups, lr=tcfg.lr)
    train_loader, val_loader = dm.train_dataloader(), dm.val_dataloader()
    total = epochs * len(train_loader)
    warmup = min(total, round(total * tcfg.warmup_epochs / epochs))
    if tcfg.schedule == "cosine":
        factor = functools.partial(warmup_cosine_factor, warmup_steps=warmup, total_steps=total)
    else:  # constant (onecycle is not timed apart: same per-step cost as a LambdaLR)
        factor = functools.partial(warmup_constant_factor, warmup_steps=warmup)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    timer = EpochTimer()
    deterministic = tcfg.deterministic if isinstance(tcfg.deterministic, bool) else True
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(deterministic)
    try:
        for epoch in range(epochs):
            train_loader.sampler.set_epoch(epoch)
            timer.start(TRAIN)
            model.train()
            for batch in train_loader:
                x, y = dm.on_after_batch_transfer(batch, 0)
                loss = F.cross_entropy(model(x), y, label_smoothing=tcfg.label_smoothing)
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
            timer.stop(TRAIN, timer.train_s)
            timer.start(VAL)
            model.eval()
            loss_sum = correct = count = 0.0
            with torch.inference_mode():
                for batch in val_loader:
                    x, y = dm.on_after_batch_transfer(batch, 0)
                    logits = model(x)
                    loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
                    correct += float((logits.argmax(dim=1) == y).sum())
                    count += len(y)
            timer.stop(VAL, timer.val_s)
            timer.val_epochs.append(epoch)
    finally:
        torch.use_deterministic_algorithms(previous)
    return timer


def compare_loops(args: argparse.Namespace) -> dict[str, Any]:
    """Per-epoch seconds of Lightning and the plain loop, ``args.repeats`` runs each, alternating
    which goes first; the first ``args.warmup_epochs`` epochs of every run are dropped. No new
    repeat starts after ``args.budget_s`` seconds. Every sample comes with the cores other
    processes took while it ran."""
    with tempfile.TemporaryDirectory() as runs:
        cfg = make_config(args, runs)
    dm = build_datamodule(cfg.data, seed=cfg.study.seed)
    dm.prepare_data()
    dm.setup("fit")
    spec = sample_spec(cfg, dm)
    epochs = args.compare_epochs
    samples: dict[str, dict[str, list[Any]]] = {
        side: {
            key: [] for key in ("train", "val", "run", "train_others", "val_others", "run_others")
        }
        for side in ("lightning", "plain")
    }
    runners = {"lightning": run_lightning, "plain": run_plain}
    warm = args.warmup_epochs
    deadline = time.perf_counter() + args.budget_s
    repeats = 0
    while repeats < args.repeats and (repeats == 0 or time.perf_counter() < deadline):
        order = ("lightning", "plain") if repeats % 2 == 0 else ("plain", "lightning")
        for side in order:
            begin = cpu_snapshot()
            timer = runners[side](spec, cfg.training, dm, epochs, cfg.study.seed)
            end = cpu_snapshot()
            got = samples[side]
            got["run"].append(end[0] - begin[0])
            got["run_others"].append(others_cores(begin, end))
            got["train"] += timer.train_s[warm:]
            got["train_others"] += timer.train_others[warm:]
            got["val"] += timer.val_s[warm:]
            got["val_others"] += timer.val_others[warm:]
        repeats += 1
    return {
        "arch": spec.summary(),
        "epochs": epochs,
        "repeats": repeats,
        "warmup_epochs": args.warmup_epochs,
        "steps_per_epoch": len(dm.train_dataloader()),
        "val_batches": len(dm.val_dataloader()),
        "samples_s": samples,
    }


def summarise_loops(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Median Lightning and plain time per training epoch, validation epoch and whole run, over
    the quiet samples (see :func:`quiet_samples`)."""
    s = result["samples_s"]
    rows = []
    for what, label, per in (
        ("train", "training epoch", result["steps_per_epoch"]),
        ("val", "validation epoch", result["val_batches"]),
        ("run", f"whole run ({result['epochs']} epochs, incl. set-up)", None),
    ):
        light, light_busy = quiet_samples(s["lightning"][what], s["lightning"][f"{what}_others"])
        plain, plain_busy = quiet_samples(s["plain"][what], s["plain"][f"{what}_others"])
        light_ms, plain_ms = statistics.median(light) * 1e3, statistics.median(plain) * 1e3
        rows.append(
            {
                "what": label,
                "lightning_ms": light_ms,
                "plain_ms": plain_ms,
                "ratio": light_ms / plain_ms,
                "extra_ms_per_batch": (light_ms - plain_ms) / per if per else None,
                "n": f"{len(light)}/{len(s['lightning'][what])}, "
                f"{len(plain)}/{len(s['plain'][what])}",
                "contended": light_busy or plain_busy,
            }
        )
    return rows


# --- output ---------------------------------------------------------------------------------


def trial_table(rows: list[dict[str, Any]], result: dict[str, Any]) -> list[str]:
    n = result["trials"] - len(result["duplicates"])
    startup = ", ".join(f"{k} {v * 1e3:.0f} ms" for k, v in result["startup_s"].items())
    lines = [
        f"Storage: {result['storage']}. {n} trained trials x {result['epochs']} epochs "
        f"({result['steps_per_epoch']} training steps per epoch); duplicates left out: "
        f"{result['duplicates'] or 'none'}. Once per worker, not per trial: {startup}. "
        f"{steady_note(result)}",
        "",
    ]
    header = ["phase", "kind", "ms/trial (all)", "% of trial (all)", "ms/trial (steady)"]
    header.append("% of trial (steady)")
    cells = []
    for r in rows:
        phase = f"**{r['phase']}**" if r["kind"] == "total" else r["phase"]
        every = [f"{r['ms_all']:.1f}", f"{r['share_all']:.2%}"]
        steady = [f"{r['ms_steady']:.1f}", f"{r['share_steady']:.2%}"]
        cells.append([phase, r["kind"], *every, *steady])
    return lines + markdown_table(header, "llrrrr", cells)


def steady_note(result: dict[str, Any]) -> str:
    """Which trials the steady columns average, and how busy the machine was."""
    steady, contended = steady_trials(result)
    others = [o for o in result["others_cores"] if o is not None]
    busy = (
        f"other processes took {statistics.median(others):.2f} cores in the median trial "
        f"(max {max(others):.2f})"
        if others
        else "the machine's CPU use was not readable"
    )
    if contended:
        return (
            f"**Contended run**: {busy}, and too few trials ran on a quiet machine (other "
            f"processes under {QUIET_CORES} cores), so the steady columns average all "
            f"{len(steady)} trials after the first; re-run on a quiet machine."
        )
    return (
        f"Steady columns: the {len(steady)} trials after the first that ran on a quiet machine "
        f"(other processes under {QUIET_CORES} cores; {busy})."
    )


def loop_table(rows: list[dict[str, Any]], result: dict[str, Any]) -> list[str]:
    lines = [
        f"Architecture: `{result['arch']}`. {result['repeats']} runs per side x "
        f"{result['epochs']} epochs, first {result['warmup_epochs']} epoch(s) of each run "
        f"dropped; {result['steps_per_epoch']} training steps and {result['val_batches']} "
        f"validation batches per epoch. Medians over the samples taken while other processes "
        f"took under {QUIET_CORES} cores (quiet / all samples, Lightning then plain, in the "
        "last column)"
        + (
            "; **contended: too few quiet samples, so all are used**."
            if any(r["contended"] for r in rows)
            else "."
        ),
        "",
    ]
    header = ["median", "Lightning ms", "plain PyTorch ms", "Lightning / plain"]
    header += ["extra ms per batch", "samples (quiet/all)"]
    cells = []
    for r in rows:
        times = [f"{r['lightning_ms']:.1f}", f"{r['plain_ms']:.1f}", f"{r['ratio']:.2f}x"]
        cells.append([r["what"], *times, fmt(r["extra_ms_per_batch"], ".2f", ""), r["n"]])
    return lines + markdown_table(header, "lrrrrr", cells)


def reading(
    trial_rows: list[dict[str, Any]], trials: dict[str, Any], loop_rows: list[dict[str, Any]]
) -> str:
    """A paragraph that states the verdict and where the time goes, from the numbers."""
    total = next(r for r in trial_rows if r["phase"] == "overhead total")
    trial = next(r for r in trial_rows if r["phase"] == "trial total")
    share = total["share_steady"]
    verdict = "met" if share <= TARGET else "missed"
    top = sorted(
        (r for r in trial_rows if r["kind"] == "overhead"), key=lambda r: -r["share_steady"]
    )[:3]
    biggest = ", ".join(f"{r['phase']} {r['share_steady']:.1%}" for r in top)
    step = loop_rows[0]
    caveat = ""
    if steady_trials(trials)[1] or step["contended"]:
        caveat = (
            " These numbers come from a contended machine (see above) and are not a reliable "
            "verdict."
        )
    steps = trials["steps_per_epoch"] * trials["epochs"]
    lightning_per_trial = step["extra_ms_per_batch"] * steps
    with_lightning = (total["ms_steady"] + lightning_per_trial) / trial["ms_steady"]
    epoch_ms = (trial["ms_steady"] - total["ms_steady"]) / trials["epochs"]
    # overhead / (overhead + E * epoch) <= TARGET  <=>  E >= overhead * (1 / TARGET - 1) / epoch
    min_epochs = math.ceil(total["ms_steady"] * (1 / TARGET - 1) / epoch_ms)
    return (
        f"With {trials['storage']} storage, time outside the training and validation epochs is "
        f"{share:.1%} of a trial in the steady state ({total['ms_steady']:.0f} ms of "
        f"{trial['ms_steady']:.0f} ms) and {total['share_all']:.1%} averaged over all trials "
        f"including the first one's one-off warm-up, so the <= {TARGET:.0%} target is "
        f"**{verdict}** for {trials['epochs']}-epoch trials. The largest overhead phases are "
        f"{biggest}. The overhead is nearly a fixed cost per trial: at {epoch_ms:.0f} ms per "
        f"epoch it stays within {TARGET:.0%} for trials of at least {min_epochs} epoch(s), so "
        f"trials pruned earlier spend a larger share on it. Inside the epochs, Lightning's "
        f"training epoch takes {step['ratio']:.2f}x the plain loop's "
        f"({step['extra_ms_per_batch']:+.2f} ms per step, {lightning_per_trial:+.0f} ms per "
        f"trial of {steps} steps); that cost is counted as training above, and counting it as "
        f"overhead too would make the share {with_lightning:.1%}.{caveat}"
    )


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12, help="trials per storage (part 1)")
    parser.add_argument("--epochs", type=int, default=8, help="epochs per trial (part 1)")
    parser.add_argument(
        "--storage", nargs="+", choices=("journal", "sqlite"), default=["journal", "sqlite"]
    )
    parser.add_argument("--data", choices=("digits", "cifar10"), default="digits")
    parser.add_argument(
        "--per-class", type=int, help="train images per class (val: a fifth); cifar10: 200"
    )
    parser.add_argument("--backbone", help="backbone instead of the quickstart's resnet8")
    parser.add_argument("--compare-epochs", type=int, default=6, help="epochs per run (part 2)")
    parser.add_argument("--repeats", type=int, default=5, help="runs per side (part 2)")
    parser.add_argument("--warmup-epochs", type=int, default=1, help="dropped per run (part 2)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--budget-s",
        type=float,
        default=180.0,
        help="no new trial (per storage) or repeat (part 2) starts after this many seconds",
    )
    add_output_arguments(parser, DEFAULT_OUT, "json")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 2 trials x 1 epoch on 20 digits/class"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.trials, args.epochs, args.compare_epochs, args.repeats = 2, 1, 2, 1
        args.per_class = args.per_class or 20
    if args.data == "cifar10" and args.per_class is None:
        args.per_class = 200
    if args.compare_epochs <= args.warmup_epochs:
        parser.error("--compare-epochs must exceed --warmup-epochs")
    command = command_line(__file__, argv)

    quiet_third_party_output()
    session = Session()
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        trial_results = [measure_trials(args, storage) for storage in args.storage]
        loops = compare_loops(args)
        info = session.machine(torch_threads=args.threads)
    finally:
        torch.set_num_threads(threads)

    trial_rows = [summarise_trials(r) for r in trial_results]
    loop_rows = summarise_loops(loops)
    sections: list[str] = []
    for rows, result in zip(trial_rows, trial_results, strict=True):
        sections += [f"## Where a trial's time goes ({result['storage']} storage)", ""]
        sections += [*trial_table(rows, result), ""]
    sections += ["## Lightning training against a plain PyTorch loop", ""]
    sections += [*loop_table(loop_rows, loops), ""]
    sections += ["## Reading", ""]
    for rows, result in zip(trial_rows, trial_results, strict=True):
        sections += [reading(rows, result, loop_rows), ""]
    sections += ["## Phases", ""]
    sections += markdown_table(["phase", "what it times"], "ll", OVERHEAD.items())

    print(f"# {command}")
    print(
        f"# {info['cpu']}, {info['cores']} cores, torch threads {args.threads}, "
        f"torch {info['torch']}, lightning {info['lightning']}, load average "
        f"{info['load_average'][0]} -> {info['load_average'][1]}"
    )
    print("\n".join(sections))
    out = results_path(args, DEFAULT_OUT)
    if out is not None:
        raw = {
            "args": vars(args),
            "trials": trial_results,
            "trial_rows": trial_rows,
            "loops": loops,
            "loop_rows": loop_rows,
        }
        written = write_results(
            out,
            title="Per-trial overhead of a search",
            command=command,
            info=info,
            load_note="this machine is shared; each table says how many of its samples ran while "
            "other processes used the CPU, and leaves those out",
            body=sections,
            raw=raw,
        )
        print("# written: " + " and ".join(map(str, written)))
    rows = [r for rows in trial_rows for r in rows]
    return rows + [{"phase": "loops", **r} for r in loop_rows]


if __name__ == "__main__":
    main()
