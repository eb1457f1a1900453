"""One trial in, an outcome out: sample an architecture, measure it, train it, keep its weights.

:class:`TrialRunner` is the engine's objective. Before training it stores the trial's ArchSpec,
summary, digest, seed and costs (``nas.trial_schema``), so optuna-dashboard and the report see
them and the multi-objective pruners can compare a running trial with trials that cost no more.
It never tells the study: the worker loop (``nas.worker``) does, from the :class:`TrialOutcome`.
Each trial is also a run of the study's experiment trackers (``[tracking]``, ``nas.tracking``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightning
import optuna
import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.loggers import Logger
from optuna.trial import FrozenTrial, TrialState
from tqdm.auto import tqdm

from search_spaces.build import build_model
from search_spaces.cost import model_cost
from search_spaces.ort_latency import ORT_LATENCY_COSTS
from search_spaces.space import suggest_arch
from search_spaces.spec import ArchSpec

from . import trial_schema as schema
from .artifacts import open_artifact_store, upload_weights
from .checkpoints import save_checkpoint
from .compiling import (
    CompileDecision,
    compile_cache_dir,
    decide,
    expected_training_s,
    use_compile_cache,
    with_cache,
)
from .config import StudyConfig
from .data import build_datamodule
from .pruning import PruningCallback, record_epoch
from .stats import binomial_se
from .storage import HeartbeatLost
from .tracking import TrialTracker
from .training import (
    ClassifierModule,
    build_trainer,
    evaluate,
    resolve_precision,
    validation_interval,
)

if TYPE_CHECKING:
    from optuna.artifacts._protocol import ArtifactStore


class ArchitectureRunning(Exception):
    """An earlier trial with the same architecture is still running: wait for its outcome
    instead of training the architecture twice."""

    def __init__(self, number: int) -> None:
        super().__init__(f"the same architecture is running as trial {number}")
        self.number = number


@dataclass
class TrialOutcome:
    """How a trial ended: COMPLETE or PRUNED, with its objective values (partial when pruned)."""

    state: TrialState
    values: list[float] | None = None


def load_data(cfg: StudyConfig, device: str = "cpu") -> LightningDataModule:
    """The study's data module, downloaded or decoded if needed and set up for fitting."""
    datamodule = build_datamodule(cfg.data, device=device, seed=cfg.study.seed)
    datamodule.prepare_data()
    datamodule.setup("fit")
    return datamodule


def check_runnable(cfg: StudyConfig, device: str = "cpu") -> LightningDataModule:
    """Load the study's data and build one architecture of its space; returns the data.

    Run before a study is stored, so that a config whose data or models cannot be built (a wrong
    ``data.root``, a backbone that does not fit the images) fails with its message and leaves
    nothing behind to be refused as "changed" once it is fixed. With ``backbone.pretrained`` the
    weights are loaded too, so a file that does not fit the backbone is refused here."""
    datamodule = load_data(cfg, device)
    probe = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=cfg.study.seed))
    spec = suggest_arch(
        probe.ask(),
        cfg.space,
        in_channels=datamodule.in_channels,
        num_classes=datamodule.num_classes,
    )
    build_model(spec, seed=cfg.study.seed, pretrained=cfg.pretrained)
    if cfg.training.compile is True or cfg.training.compile_cache:  # "auto" may never compile
        use_compile_cache(compile_cache_dir(cfg))
    return datamodule


class TrialRunner:
    """Runs trials of one study in this process: data loaded once, a model and Trainer per trial."""

    def __init__(
        self,
        cfg: StudyConfig,
        study: optuna.Study,
        *,
        device: str = "cpu",
        progress: bool = True,
        datamodule: LightningDataModule | None = None,
        artifact_store: ArtifactStore | None = None,
    ) -> None:
        self.cfg = cfg
        self.study = study
        self.device = device
        self.progress = progress
        self.datamodule = datamodule or load_data(cfg, device)
        #: Where completed trials' weights go (default: the config's ``study.artifacts``).
        self.artifact_store = artifact_store or open_artifact_store(
            cfg.study.artifacts_url(), cfg.study.artifacts_endpoint
        )
        self.pruner = study.pruner
        confirming = schema.confirm_plan(study)
        #: Whether each epoch's accuracy is read: by the study's pruner (also a baseline's, which
        #: it does not prune but compares other trials with), or as a table's curves.
        self.curve_read = (
            not isinstance(study.pruner, optuna.pruners.NopPruner)
            or schema.table_plan(study) is not None
        )
        #: Where compiled code is kept (the searched study's folder for its confirm study); made
        #: and used from the first trial that compiles.
        self.compile_cache = compile_cache_dir(cfg, (confirming or {}).get("of"))
        self.compile_cache_ready = False
        #: The last trial's compile decision (None before the first): each change is said once.
        self.last_compile: CompileDecision | None = None
        #: The precision the study's first trial stored (its searched study's, for a confirm
        #: study), once found: it never changes, so it is looked up until then only.
        self.study_precision: str | None = None
        #: Whether a bfloat16 precision chosen by ``"auto"`` on the CPU was said.
        self.precision_said = False
        #: Trackers that failed in this process (each warns once).
        self.tracking_warned: set[str] = set()

    def run(self, trial: optuna.Trial, stop: threading.Event | None = None) -> TrialOutcome:
        """Describe the trial (architecture, seeds), reuse an earlier run of the same training,
        or measure it (:meth:`measure`; training ends with :class:`HeartbeatLost` at the next
        batch once ``stop`` is set). The trackers record how it ended, also when it raises."""
        spec, seed, data_seed = self.describe(trial)
        duplicate = self._earlier_duplicate(spec.digest(), trial.number, seed)
        if duplicate is not None and duplicate.state == TrialState.RUNNING:
            raise ArchitectureRunning(duplicate.number)
        tracker = TrialTracker(self.cfg, trial, self.tracking_warned)
        try:
            if duplicate is not None:
                outcome = self._reuse(trial, duplicate)
            else:
                outcome = self.measure(trial, spec, seed, data_seed, stop, tracker.loggers)
        except BaseException as exc:
            tracker.finish(trial, "failed", reason=f"{type(exc).__name__}: {exc}")
            raise
        tracker.finish(trial, outcome.state.name.lower(), outcome.values)
        return outcome

    def describe(self, trial: optuna.Trial) -> tuple[ArchSpec, int, int]:
        """Sample the trial's architecture and store it with its seeds; (spec, seed, data seed)."""
        dm = self.datamodule
        schema.WORKER.set(trial, schema.this_worker())
        spec = suggest_arch(
            trial, self.cfg.space, in_channels=dm.in_channels, num_classes=dm.num_classes
        )
        seed, data_seed = trial_seeds(self.cfg, self.study, trial)
        schema.ARCH.set(trial, spec.to_dict())
        schema.SUMMARY.set(trial, spec.summary())
        schema.DIGEST.set(trial, spec.digest())
        schema.SEED.set(trial, seed)
        schema.DATA_SEED.set(trial, data_seed)
        return spec, seed, data_seed

    def store_cost(self, trial: optuna.Trial, model: torch.nn.Module) -> dict[str, float | None]:
        """Measure the stand-alone model's costs, store them and the constraints; the costs.

        ONNX Runtime latencies (an export and a session per model) are measured once per
        architecture: where an earlier trial of the study, in any state and any process,
        stored them for the trial's digest at the same batch size, they are reused."""
        cfg = self.cfg
        objectives = cfg.objectives
        known = (
            self._known_ort_latency(schema.DIGEST.get(trial))
            if objectives.needs_ort_latency
            else None
        )
        cost = model_cost(
            model,
            tuple(self.datamodule.input_shape),
            latency=objectives.needs_latency,
            ort_latency=objectives.needs_ort_latency and known is None,
            batch_size=objectives.latency_batch,
        ).to_dict()
        cost.update(known or {})
        schema.COST.set(trial, cost)
        self._set_constraints(trial, cost)
        return cost

    def measure(
        self,
        trial: optuna.Trial,
        spec: ArchSpec,
        seed: int,
        data_seed: int,
        stop: threading.Event | None = None,
        loggers: Sequence[Logger] = (),
    ) -> TrialOutcome:
        """Train the architecture from scratch (pruned by the study's pruner; abandoned once
        ``stop`` is set; each epoch's metrics logged to ``loggers``) and keep its weights."""
        cfg, dm = self.cfg, self.datamodule
        module = ClassifierModule(spec, config=cfg.training, seed=seed, pretrained=cfg.pretrained)
        cost = self.store_cost(trial, module.model)
        module.compile_scope = self._compile_decision(cost).scope
        module.config = dataclasses.replace(cfg.training, precision=self._precision(cost))

        # Baselines are references: they train their full epochs, whatever the pruner thinks.
        pruner = optuna.pruners.NopPruner() if schema.BASELINE.has(trial) else self.pruner
        callbacks: list[Any] = [PruningCallback(trial, monitor="val_acc", pruner=pruner)]
        if self.progress:
            callbacks.append(EpochProgress(f"trial {trial.number}", cfg.training.epochs))
        if stop is not None:
            callbacks.append(StopWhenLost(stop))
        on_gpu = self.device.startswith("cuda")
        trainer = build_trainer(
            module.config,
            seed=seed,
            callbacks=callbacks,
            accelerator="gpu" if on_gpu else "cpu",
            devices=[torch.device(self.device).index or 0] if on_gpu else 1,
            logger=loggers,
            val_every_n_epochs=validation_interval(
                cfg.training.validate, cfg.training.epochs, self.curve_read
            ),
        )
        history = module.val_history
        # The data modules of nas.data draw batches and augmentation from their seed.
        if hasattr(dm, "seed"):
            dm.seed = data_seed
        clock = TrainingClock()
        pruned = False
        try:
            with clock, ctrl_c_restored(trainer):
                trainer.fit(module, datamodule=dm)
        except optuna.TrialPruned:
            pruned = True
        self._store_history(trial, history, clock)
        self._store_settings(trial, module, trainer)
        if pruned:
            return TrialOutcome(TrialState.PRUNED, self._values(history[-1]["val_acc"], cost))
        if schema.REPLICATE.has(trial):  # a confirm or table run: the held-out test split too
            accelerator = "gpu" if on_gpu else "cpu"
            scores = evaluate(module, dm, "test", accelerator=accelerator)
            schema.TEST_ACC.set(trial, scores["test_acc"])
        if schema.table_plan(self.study) is None:  # a table keeps values, not 1,000 weights
            self._save_weights(trial, spec, module)
        return TrialOutcome(TrialState.COMPLETE, self._values(history[-1]["val_acc"], cost))

    def _compile_decision(self, cost: dict[str, float | None]) -> CompileDecision:
        """``training.compile`` for this trial (:func:`nas.compiling.decide`, from its FLOPs and
        the training split), said on stderr when it differs from the last trial's."""
        training, device_type = self.cfg.training, self.device.split(":")[0]
        samples = split_size(self.datamodule, "train") or 0
        flops = float(cost.get("flops") or 0.0)
        expected = expected_training_s(flops, samples, training.epochs, device_type)
        decision = decide(training.compile, expected, device_type, training.compile_scope)
        if not self.compile_cache_ready:
            decision = with_cache(decision, self.compile_cache)
            self.compile_cache_ready = decision.compile
        if self.last_compile is None or decision.scope != self.last_compile.scope:
            print(decision.line(), file=sys.stderr)
        self.last_compile = decision
        return decision

    def _precision(self, cost: dict[str, float | None]) -> str:
        """``training.precision`` for this trial. ``"auto"`` holds one precision per study: what
        its first trial trained with (for a confirm study, its searched study's first trial;
        trials of earlier releases ran float32 on a CPU), so a study resumed or joined on
        another machine does not mix precisions; before any trial stored it, what ``"auto"``
        resolves to for this trial's FLOPs on this device (:func:`nas.training.resolve_precision`);
        bfloat16 chosen so on a CPU is said once on stderr."""
        setting = self.cfg.training.precision
        if setting != "auto":
            return setting
        if self.study_precision is None:
            self.study_precision = self._stored_precision()
        if self.study_precision is not None:
            return self.study_precision
        device_type = self.device.split(":")[0]
        flops = cost.get("flops")
        precision = schema.CONFIG_PRECISION[resolve_precision("auto", device_type, flops)]
        if precision == "bf16-mixed" and device_type == "cpu" and not self.precision_said:
            print(
                f"precision: bf16-mixed (auto: this CPU computes bfloat16 natively and the model "
                f"trains {(flops or 0) / 1e6:.0f} MFLOPs per image; the study keeps it)",
                file=sys.stderr,
            )
            self.precision_said = True
        return precision

    def _stored_precision(self) -> str | None:
        """The precision the first trial stored: the searched study's for a confirm study, else
        this study's; None before one did."""
        confirming = schema.confirm_plan(self.study)
        studies = [self.study]
        if confirming is not None:
            searched = optuna.load_study(study_name=confirming["of"], storage=self.study._storage)
            studies.insert(0, searched)
        return next(filter(None, map(schema.study_precision, studies)), None)

    def _reuse(self, trial: optuna.Trial, duplicate: FrozenTrial) -> TrialOutcome:
        """Finish a trial whose architecture already finished with that trial's outcome: its
        values, curve and costs, COMPLETE or PRUNED as it was. No training, no new weights."""
        schema.DUPLICATE_OF.set(trial, duplicate.number)
        for attr in schema.REUSED_BY_DUPLICATES:
            if attr.has(duplicate):
                attr.set(trial, attr.get(duplicate))
        self._set_constraints(trial, schema.cost(duplicate))
        for epoch, value in sorted(duplicate.intermediate_values.items()):
            record_epoch(trial, epoch, value)
        values = list(duplicate.values) if duplicate.values is not None else None
        return TrialOutcome(duplicate.state, values)

    def _known_ort_latency(self, digest: str | None) -> dict[str, float] | None:
        """The ONNX Runtime latencies of the first trial of the study that stored them for this
        architecture at this study's latency batch (None where no trial did)."""
        for t in self.study.get_trials(deepcopy=False):
            cost = schema.cost(t)
            if (
                schema.DIGEST.get(t) == digest
                and cost.get("batch_size") == self.cfg.objectives.latency_batch
                and all(cost.get(key) is not None for key in ORT_LATENCY_COSTS)
            ):
                return {key: cost[key] for key in ORT_LATENCY_COSTS}
        return None

    def _set_constraints(self, trial: optuna.Trial, cost: dict[str, float | None]) -> None:
        for name, cap in self.cfg.objectives.constraints.items():
            # Optuna's samplers read these (feasible when <= 0).
            trial.set_constraint(name, cost[name] - cap)

    def _save_weights(self, trial: optuna.Trial, spec: ArchSpec, module: ClassifierModule) -> None:
        """Upload the trained weights to the study's artifact store, where export reads them on
        any machine, and record their id on the trial (``weights_artifact``); the local file is
        a temporary one."""
        dm = self.datamodule
        with tempfile.TemporaryDirectory(prefix="nas-weights-") as folder:
            path = Path(folder) / f"trial_{trial.number}.pt"  # the name the dashboard lists
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
            upload_weights(self.artifact_store, trial, path)

    def _values(self, accuracy: float, cost: dict[str, float | None]) -> list[float]:
        return [float(accuracy)] + [float(cost[name]) for name in self.cfg.objectives.minimize]

    def _store_history(
        self, trial: optuna.Trial, history: list[dict], clock: TrainingClock
    ) -> None:
        """The curve, the epochs run, the training's seconds and the measurement noise of the
        last ``val_acc``."""
        schema.VAL_HISTORY.set(trial, [dict(h) for h in history])
        # The last validation's epoch: a trial whose curve nothing reads validates only then.
        schema.EPOCHS_RUN.set(trial, int(history[-1]["epoch"]) + 1 if history else 0)
        schema.TRAIN_SECONDS.set(trial, clock.wall_s)
        schema.CPU_SECONDS.set(trial, clock.cpu_s)
        schema.TORCH_THREADS.set(trial, torch.get_num_threads())
        val_size = split_size(self.datamodule, "val")
        if history and val_size:
            schema.VAL_SIZE.set(trial, val_size)
            schema.VAL_ACC_SE.set(trial, binomial_se(history[-1]["val_acc"], val_size))

    @staticmethod
    def _store_settings(
        trial: optuna.Trial, module: ClassifierModule, trainer: lightning.Trainer
    ) -> None:
        """What the ``"auto"`` settings resolved to for this trial (``trained_with``)."""
        schema.TRAINED_WITH.set(
            trial,
            {
                "channels_last": module.channels_last,
                "compiled": module.compile_scope is not None,
                "compile_scope": module.compile_scope,
                "precision": str(trainer.precision),
            },
        )

    def _earlier_duplicate(self, digest: str, number: int, seed: int) -> FrozenTrial | None:
        """The first trial before ``number`` that finished or runs the same training: the same
        architecture and, unless trials are seeded apart (``per_trial``), the same seed.

        Failed trials do not count (their architecture deserves its run); waiting ones neither:
        when one starts it finds this trial and reuses its outcome."""
        states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
        any_seed = self.cfg.evaluation.seeding == "per_trial"
        for t in self.study.get_trials(deepcopy=False, states=states):
            if (
                t.number < number
                and schema.DIGEST.get(t) == digest
                and (any_seed or schema.SEED.get(t) == seed)
            ):
                return t
        return None


class TrainingClock:
    """Wall-clock and process CPU seconds of the block it wraps (kept also when it raises)."""

    wall_s: float = 0.0
    cpu_s: float = 0.0

    def __enter__(self) -> TrainingClock:
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall_s = time.perf_counter() - self._wall
        self.cpu_s = time.process_time() - self._cpu


@contextlib.contextmanager
def ctrl_c_restored(trainer: lightning.Trainer) -> Iterator[None]:
    """Around ``trainer.fit``: Ctrl-C comes out as ``KeyboardInterrupt`` (Lightning turns it into
    ``SystemExit`` after a graceful shutdown, or returns with ``trainer.interrupted``), and the
    SIGINT handler is given back to the user (Lightning ignores SIGINT after an interrupt)."""
    try:
        yield
    except SystemExit:
        if trainer.interrupted:
            raise KeyboardInterrupt from None
        raise
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if trainer.interrupted:
        raise KeyboardInterrupt


def trial_seeds(cfg: StudyConfig, study: optuna.Study, trial: optuna.Trial) -> tuple[int, int]:
    """(model and training seed, data seed) of a trial.

    ``evaluation.seeding = "common"``: ``study.seed`` for both, for every trial (common random
    numbers). ``"per_trial"``: ``study.seed + trial.number`` and ``study.seed``. A confirm or
    table trial (``replicate`` r) uses its study's r-th planned seed for both: its architectures
    share each repeat's draws, so they are compared paired by repeat."""
    seeds = schema.planned_seeds(study) if schema.REPLICATE.has(trial) else None
    if seeds is not None:
        seed = seeds[schema.REPLICATE.get(trial)]
        return seed, seed
    if cfg.evaluation.seeding == "common":
        return cfg.study.seed, cfg.study.seed
    return cfg.study.seed + trial.number, cfg.study.seed


def split_size(datamodule: LightningDataModule, split: str) -> int | None:
    """Images in one split of a data module of ``nas.data`` (None for other data modules)."""
    sizes = getattr(datamodule, "split_sizes", None)
    return int(sizes[split]) if isinstance(sizes, dict) and sizes.get(split) else None


class StopWhenLost(lightning.Callback):
    """End training with :class:`HeartbeatLost` at the next batch once ``lost`` is set (the
    trial's heartbeat could not be recorded: another worker may be training it again)."""

    def __init__(self, lost: threading.Event) -> None:
        self.lost = lost

    def on_train_batch_end(self, trainer: lightning.Trainer, *args: Any) -> None:
        if self.lost.is_set():
            raise HeartbeatLost


class EpochProgress(lightning.Callback):
    """One tqdm bar per training run, advanced per training epoch, showing ``monitor``'s latest
    value (a ``val_*`` metric is that of the last validation: a run may validate only at its
    end, and a supernet validates no path)."""

    def __init__(self, desc: str, epochs: int, monitor: str = "val_acc") -> None:
        self.desc = desc
        self.epochs = epochs
        self.monitor = monitor
        self.bar: tqdm | None = None

    def on_fit_start(
        self, trainer: lightning.Trainer, pl_module: lightning.LightningModule
    ) -> None:
        self.bar = tqdm(
            total=self.epochs,
            initial=min(trainer.current_epoch, self.epochs),
            desc=self.desc,
            unit="epoch",
            leave=False,
            dynamic_ncols=True,
        )

    def on_train_epoch_end(
        self, trainer: lightning.Trainer, pl_module: lightning.LightningModule
    ) -> None:
        # After the epoch's validation, where it has one.
        if self.bar is None:
            return
        value = trainer.callback_metrics.get(self.monitor)
        self.bar.set_postfix({self.monitor: f"{float(value):.3f}" if value is not None else "-"})
        self.bar.update(1)

    def teardown(
        self, trainer: lightning.Trainer, pl_module: lightning.LightningModule, stage: str
    ) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
