"""Training one candidate: a ``TrainingConfig``, a ``ClassifierModule`` and a quiet ``Trainer``.

The search trains many small networks one after another, so everything here aims at runs that
are reproducible (seeded, deterministic on the CPU), quiet (no banners, summaries or log files
unless asked for) and fast where the hardware allows (bf16 autocast on a GPU and, for large
enough models, on a CPU with native bfloat16; channels-last where it was measured faster).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import warnings
from collections.abc import Iterable, Iterator, Mapping
from functools import partial
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, Logger
from lightning.pytorch.plugins.io import TorchCheckpointIO
from torch import nn
from torchmetrics import Metric

from search_spaces.backbones import backbone_family, backbone_sites
from search_spaces.spec import ArchSpec

from .compiling import compile_regions, compiled_regions_scope
from .config import TrainingConfig

SPLITS = ("test", "val")


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; the trial should be recorded as failed."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# -- device-dependent settings ----------------------------------------------------------------


def resolve_accelerator(accelerator: str = "auto") -> str:
    """``"auto"``: ``"cuda"`` when a CUDA GPU is visible, else ``"cpu"``; ``"gpu"`` means cuda."""
    if accelerator == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return "cuda" if accelerator == "gpu" else accelerator


#: Forward FLOPs per image (the ``flops`` cost) from which bfloat16 autocast trains faster than
#: float32 on a CPU with native bfloat16, so that ``precision = "auto"`` uses it there. From
#: ``benchmarks/speed.py --bf16`` (none, SE, ECA, CBAM in every unit, channels-last, 2 threads):
#: a CIFAR ResNet-20 step (82 MFLOPs) ran 1.07-1.42x float32's and torchvision's ResNet-18
#: (1.1 GFLOPs) 1.83-2.04x, every interval above 1; ResNet-8 on 32x32 (25 MFLOPs) 0.94-1.42x,
#: CBAM's interval holding 1; the quickstart's ResNet-8 on 8x8 digits (1.5 MFLOPs) 0.84-1.05x,
#: slower with SE and CBAM.
CPU_BF16_MIN_FLOPS = 50e6


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX); elsewhere oneDNN
    emulates it, slower than float32."""
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def resolve_precision(precision: str, accelerator: str, flops: float | None = None) -> str:
    """The Lightning precision string for a config value on a resolved accelerator: ``"auto"``
    is bf16-mixed on a CUDA GPU with bfloat16 and, for a model of at least
    :data:`CPU_BF16_MIN_FLOPS` per image (``flops``; unknown: float32), on a CPU with native
    bfloat16; float32 elsewhere."""
    if precision == "auto":
        if accelerator == "cuda":
            return "bf16-mixed" if torch.cuda.is_bf16_supported() else "32-true"
        pays = accelerator == "cpu" and (flops or 0.0) >= CPU_BF16_MIN_FLOPS
        return "bf16-mixed" if pays and cpu_has_native_bf16() else "32-true"
    return "32-true" if precision == "32" else precision


#: Backbone families (``search_spaces.backbones.backbone_family``) whose training step runs
#: faster in channels-last memory format on a CPU, so that ``channels_last = "auto"`` turns it on
#: there (a CUDA GPU turns it on for every model). From ``benchmarks/speed.py``
#: (``benchmarks/results/speed.md``: one training step, batch 128, 32x32, none / SE / ECA / CBAM
#: in every unit, 1 thread): the CIFAR ResNets ran 1.16-1.31x and torchvision's ResNet-18
#: 1.13-1.15x contiguous. A fixed rule, not a measurement at run time, so that a config trains
#: the same way on every run; families not listed (MobileNetV2, timm's, a ``model=`` module) were
#: not measured and stay contiguous.
CPU_CHANNELS_LAST_FAMILIES = frozenset({"cifar_resnet", "torchvision_resnet"})


def resolve_channels_last(value: bool | str, device_type: str, family: str | None) -> bool:
    """``training.channels_last`` for a model of backbone ``family`` on ``device_type``:
    ``"auto"`` is on for a CUDA GPU and, on the CPU, for :data:`CPU_CHANNELS_LAST_FAMILIES`."""
    if value != "auto":
        return bool(value)
    return device_type == "cuda" or (device_type == "cpu" and family in CPU_CHANNELS_LAST_FAMILIES)


def validation_interval(validate: str, epochs: int, curve_read: bool) -> int:
    """``check_val_every_n_epoch`` for a run of ``epochs`` under ``training.validate``: 1 (every
    epoch) for ``"every_epoch"`` and, under ``"auto"``, where ``curve_read`` (a pruner compares
    trials at their epochs, a table keeps curves); ``epochs`` (once, after the last) otherwise,
    where only the final accuracy is read. Skipping validations trains the same weights."""
    if validate == "every_epoch" or (validate == "auto" and curve_read):
        return 1
    return epochs


def _resolve_flag(value: bool | str, device_type: str, auto_when_cuda: bool) -> bool:
    if value == "auto":
        return auto_when_cuda if device_type == "cuda" else not auto_when_cuda
    return bool(value)


# -- optimiser parameter groups and schedules --------------------------------------------------

_NORM_LAYERS = (
    nn.modules.batchnorm._BatchNorm,
    nn.modules.instancenorm._InstanceNorm,
    nn.GroupNorm,
    nn.LayerNorm,
)


def param_groups_weight_decay(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two optimiser groups: decayed weights, and the rest with ``weight_decay=0``.

    Exempt from decay: parameters of normalisation layers, every ``bias``, every parameter with
    fewer than two dimensions (gains and gates such as those of GCT or SRM are affine
    re-scalings, like BN's gamma) and names listed by a timm-style ``model.no_weight_decay()``.
    """
    explicit = set(model.no_weight_decay()) if hasattr(model, "no_weight_decay") else set()
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    seen: set[int] = set()
    for module_name, module in model.named_modules():
        for param_name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            full_name = f"{module_name}.{param_name}" if module_name else param_name
            exempt = (
                isinstance(module, _NORM_LAYERS)
                or param_name == "bias"
                or param.ndim <= 1
                or full_name in explicit
            )
            (no_decay if exempt else decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def warmup_cosine_factor(step: int, *, warmup_steps: int, total_steps: int) -> float:
    """LR multiplier at optimiser step ``step`` (from 0): a linear ramp ``(step+1)/warmup_steps``,
    then a half cosine from 1 to 0 over the remaining steps (SGDR, Loshchilov & Hutter 2017,
    without restarts)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def warmup_constant_factor(step: int, *, warmup_steps: int) -> float:
    """LR multiplier of a linear ramp to 1 over ``warmup_steps`` steps, then 1."""
    return min(1.0, (step + 1) / warmup_steps) if warmup_steps else 1.0


# -- the LightningModule -----------------------------------------------------------------------


class EpochMetrics(Metric):
    """Loss and accuracy of one split over one epoch, each sample counted once.

    States: the float64 sum of per-sample losses, the hits and the samples (so ``acc`` is exactly
    correct / count), summed across processes by ``compute`` and moved with the LightningModule;
    NaN losses stay in the mean. Updated per step, logged once per epoch: a ``self.log`` per step
    costs Lightning a walk over its result collection every step. Not torchmetrics'
    ``MeanMetric`` (1.9): after a device move it casts its input to float32 again despite
    ``set_dtype(torch.float64)``, and with ``nan_strategy="disable"`` (its NaN check would sync
    the GPU every step) it ignores ``weight`` (torchmetrics issue #3434).
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = None
    loss_sum: torch.Tensor
    correct: torch.Tensor
    count: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.add_state("loss_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("correct", torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0), dist_reduce_fx="sum")

    def update(self, losses: torch.Tensor, logits: torch.Tensor, target: torch.Tensor) -> None:
        """Add one batch: ``losses`` per sample, ``logits`` (B, classes), ``target`` (B,)."""
        # In place: assigning a state would go through nn.Module.__setattr__ at every step.
        self.loss_sum.add_(losses.sum(dtype=torch.float64))
        self.correct.add_((logits.argmax(dim=1) == target).sum())
        self.count.add_(target.numel())

    def compute(self) -> dict[str, torch.Tensor]:
        return {"loss": self.loss_sum / self.count, "acc": self.correct.double() / self.count}


class ClassifierModule(L.LightningModule):
    """Image classification with cross-entropy, for one architecture of the search.

    Build it from an :class:`ArchSpec` (``spec=``, the model comes from
    ``search_spaces.build.build_model(spec, seed=seed, pretrained=pretrained)``) or from a ready
    ``model=``. The spec, config and seed are saved as hyper-parameters, so
    ``ClassifierModule.load_from_checkpoint`` rebuilds a spec-built module by itself (its weights
    come from the checkpoint, so ``pretrained`` is not saved); a module built from ``model=``
    needs the model again: ``load_from_checkpoint(path, model=net)``.

    Metrics (an :class:`EpochMetrics` per split: ``train_metrics``, ``val_metrics``,
    ``test_metrics``), logged once per epoch: ``train_loss`` / ``train_acc`` (means over the
    epoch's training samples, as trained on: augmented, weights changing), ``val_loss`` /
    ``val_acc`` and ``test_loss`` / ``test_acc`` (exact over the whole split); all summed across
    processes. ``val_history`` keeps one ``{"epoch", "val_loss", "val_acc"}`` per validation
    during fit.
    """

    def __init__(
        self,
        spec: ArchSpec | Mapping[str, Any] | None = None,
        *,
        config: TrainingConfig | Mapping[str, Any],
        model: nn.Module | None = None,
        seed: int = 0,
        pretrained: bool | str = False,
    ) -> None:
        super().__init__()
        if (spec is None) == (model is None):
            raise ValueError(
                "ClassifierModule needs exactly one of spec= (an ArchSpec or its dict) or "
                "model= (an nn.Module); to reload a checkpoint of a model= module pass "
                "load_from_checkpoint(path, model=...)"
            )
        if not _is_int(seed):
            raise ValueError(f"ClassifierModule seed must be an int, got {seed!r}")
        self.config = (
            config if isinstance(config, TrainingConfig) else TrainingConfig.from_dict(config)
        )
        if spec is not None:
            from search_spaces.build import build_model

            self.spec: ArchSpec | None = (
                spec if isinstance(spec, ArchSpec) else ArchSpec.from_dict(spec)
            )
            self.model = build_model(self.spec, seed=seed, pretrained=pretrained)
        else:
            self.spec = None
            self.model = model
        self.save_hyperparameters(
            {
                "spec": None if self.spec is None else self.spec.to_dict(),
                "config": self.config.to_dict(),
                "seed": seed,
            }
        )
        self.val_history: list[dict[str, float | int]] = []
        #: The backbone family whose measured settings apply (``channels_last = "auto"``): the
        #: spec's; None for a ``model=`` module unless its builder says (a supernet does).
        self.backbone_family = None if self.spec is None else backbone_family(self.spec.backbone)
        #: Whether the model trains in channels-last memory format (resolved at setup).
        self.channels_last = False
        #: What is compiled at setup: ``"units"`` (each residual unit of the spec's backbone),
        #: ``"model"`` (the whole network) or None (nothing). The caller decides
        #: (``nas.compiling``; e.g. ``TrialRunner`` from ``training.compile``).
        self.compile_scope: str | None = None
        self.train_metrics = EpochMetrics()
        self.val_metrics = EpochMetrics()
        self.test_metrics = EpochMetrics()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    # -- setup ---------------------------------------------------------------------------

    def setup(self, stage: str) -> None:
        device_type = self.trainer.strategy.root_device.type
        self.channels_last = resolve_channels_last(
            self.config.channels_last, device_type, self.backbone_family
        )
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        compile_regions(self.model, self.compiled_paths())

    def compiled_paths(self) -> list[str]:
        """The modules compiled at setup, by ``compile_scope``: every insertion site of the
        spec's backbone, ``[""]`` (the model itself) or none (a ``model=`` module is never
        compiled)."""
        if self.compile_scope is None or self.spec is None:
            return []
        if self.compile_scope == "model":
            return [""]
        return [s.path for s in backbone_sites(self.spec.backbone, **self.spec.backbone_args)]

    def _inputs(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last and x.dim() == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    # -- steps ---------------------------------------------------------------------------

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        x, y = batch
        logits = self(self._inputs(x))
        loss = F.cross_entropy(logits, y, label_smoothing=self.config.label_smoothing)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"training loss is {loss.item()} at global step {self.global_step} (epoch "
                f"{self.current_epoch}, batch {batch_idx}); lower lr, set gradient_clip or use "
                "precision='32'"
            )
        # The batch mean once per sample: the epoch's mean weights each batch by its size.
        self.train_metrics.update(loss.detach().expand(len(y)), logits.detach(), y)
        return loss

    def _evaluate_batch(
        self, metrics: EpochMetrics, batch: tuple[torch.Tensor, torch.Tensor]
    ) -> None:
        x, y = batch
        logits = self(self._inputs(x))
        metrics.update(F.cross_entropy(logits.float(), y, reduction="none"), logits, y)

    def _log_epoch(self, metrics: EpochMetrics, prefix: str) -> dict[str, float]:
        """Log the epoch's ``<prefix>_loss`` and ``<prefix>_acc``, return them, reset; nothing
        when the epoch had no batch."""
        if metrics.update_count == 0:
            return {}
        values = {f"{prefix}_{name}": float(value) for name, value in metrics.compute().items()}
        metrics.reset()
        # Already identical on every process; sync_dist only averages equal values (and keeps
        # Lightning from asking for it under DDP).
        self.log_dict(values, prog_bar=True, sync_dist=True)
        return values

    def on_train_epoch_start(self) -> None:
        self.train_metrics.reset()

    def on_train_epoch_end(self) -> None:
        self._log_epoch(self.train_metrics, "train")

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._evaluate_batch(self.val_metrics, batch)

    def on_validation_epoch_start(self) -> None:
        self.val_metrics.reset()

    def on_validation_epoch_end(self) -> None:
        metrics = self._log_epoch(self.val_metrics, "val")
        if metrics and self.trainer.state.fn == "fit" and not self.trainer.sanity_checking:
            self.val_history.append({"epoch": self.current_epoch, **metrics})

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._evaluate_batch(self.test_metrics, batch)

    def on_test_epoch_start(self) -> None:
        self.test_metrics.reset()

    def on_test_epoch_end(self) -> None:
        self._log_epoch(self.test_metrics, "test")

    # -- optimisation --------------------------------------------------------------------

    def configure_optimizers(self) -> dict[str, Any]:
        cfg = self.config
        groups = param_groups_weight_decay(self.model, cfg.weight_decay)
        if cfg.optimizer == "sgd":
            optimizer: torch.optim.Optimizer = torch.optim.SGD(
                groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov
            )
        else:
            optimizer = torch.optim.AdamW(groups, lr=cfg.lr)
        if cfg.schedule == "constant" and cfg.warmup_epochs == 0:
            return {"optimizer": optimizer}

        total_steps = self.trainer.estimated_stepping_batches
        if not math.isfinite(total_steps):
            raise ValueError(
                f"schedule {cfg.schedule!r} needs a finite number of steps; set max_epochs or "
                "max_steps on the Trainer, or use schedule='constant'"
            )
        total_steps = int(total_steps)
        warmup_steps = min(
            total_steps, round(total_steps * cfg.warmup_epochs / max(1, self.trainer.max_epochs))
        )
        if cfg.schedule == "onecycle":
            # Momentum stays at the configured value: the search compares architectures under one
            # optimiser setting, not momentum cycles (OneCycleLR's default would override it).
            pct_start = warmup_steps / total_steps if warmup_steps else 0.3
            scheduler: torch.optim.lr_scheduler.LRScheduler = torch.optim.lr_scheduler.OneCycleLR(
                optimizer,
                max_lr=cfg.lr,
                total_steps=total_steps,
                pct_start=pct_start,
                cycle_momentum=False,
            )
        elif cfg.schedule == "cosine":
            factor = partial(
                warmup_cosine_factor, warmup_steps=warmup_steps, total_steps=total_steps
            )
            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        else:
            factor = partial(warmup_constant_factor, warmup_steps=warmup_steps)
            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    # -- checkpoints ---------------------------------------------------------------------

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["val_history"] = list(self.val_history)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.val_history = list(checkpoint.get("val_history", []))


# -- the Trainer -------------------------------------------------------------------------------


@contextlib.contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Hide Lightning's info banners and its num_workers and logging-interval hints for the
    duration of a call."""
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
            # Metrics are logged once per epoch: the step interval of a tracker does not apply.
            warnings.filterwarnings("ignore", message=r".*smaller than the logging interval.*")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


@contextlib.contextmanager
def _torch_flags(deterministic: bool, device_type: str) -> Iterator[None]:
    """Deterministic kernels (or cuDNN autotuning) for one call, then the caller's flags back."""
    previous = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.benchmark,
    )
    if deterministic and device_type == "cuda":
        # cuBLAS needs a fixed workspace for reproducible results (CUDA docs, "Results
        # reproducibility"); it is read when cuBLAS starts, so it must be set early.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic)
    torch.backends.cudnn.benchmark = not deterministic and device_type == "cuda"
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
        torch.backends.cudnn.benchmark = previous[2]


class RunScope(Callback):
    """Process-wide settings for each ``fit`` / ``validate`` / ``test`` / ``predict`` run, and the
    caller's back after it.

    Torch: deterministic algorithms (with a fixed cuBLAS workspace on CUDA) or, when not
    deterministic, cuDNN autotuning on CUDA; ``use_deterministic_algorithms`` (and warn-only)
    and ``cudnn.benchmark`` are restored, ``CUBLAS_WORKSPACE_CONFIG`` stays set (cuBLAS reads it
    once, when it starts). A :class:`ClassifierModule` with compiled regions: dynamo reset and its
    recompile limit fitted to the model (:func:`~nas.compiling.compiled_regions_scope`). Lightning:
    its loggers at WARNING and its num_workers hint hidden (the data is in memory; there are no
    workers to add). Set in ``setup`` and restored in ``teardown``; when the run raises (a
    pruned trial, a NaN loss) Lightning 2.6 calls ``on_exception`` but no ``teardown`` hook, so
    they are restored there too. One callback, not two: Lightning calls every hook of every
    callback at every step.
    """

    def __init__(self, deterministic: bool, device_type: str) -> None:
        self.deterministic = deterministic
        self.device_type = device_type
        self._stack = contextlib.ExitStack()

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._stack.enter_context(_torch_flags(self.deterministic, self.device_type))
        self._stack.enter_context(_quiet_lightning())
        regions = pl_module.compiled_paths() if isinstance(pl_module, ClassifierModule) else []
        if regions:
            self._stack.enter_context(compiled_regions_scope(len(regions)))

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._stack.close()

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self._stack.close()  # a no-op when setup never ran or teardown already closed it


def _make_trainer(
    cfg: TrainingConfig,
    *,
    callbacks: Iterable[Callback],
    accelerator: str,
    devices: int | str | list[int],
    enable_progress_bar: bool,
    default_root_dir: str | os.PathLike | None,
    max_epochs: int | None,
    logger: bool | Iterable[Logger],
    validate: bool = True,
    val_every_n_epochs: int = 1,
    plugins: Iterable[Any] = (),
) -> L.Trainer:
    device_type = resolve_accelerator(accelerator)
    callbacks = list(callbacks)
    root = os.fspath(default_root_dir) if default_root_dir is not None else os.getcwd()
    deterministic = _resolve_flag(cfg.deterministic, device_type, False)
    with _quiet_lightning():  # the "GPU available" banners come from Trainer.__init__
        return L.Trainer(
            accelerator=device_type,
            devices=devices,
            precision=resolve_precision(cfg.precision, device_type),
            max_epochs=cfg.epochs if max_epochs is None else max_epochs,
            # First, so that the user's callbacks already run under its settings.
            callbacks=[RunScope(deterministic, device_type), *callbacks],
            logger=_loggers(logger, root),
            enable_checkpointing=any(isinstance(cb, ModelCheckpoint) for cb in callbacks),
            enable_progress_bar=enable_progress_bar,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            limit_val_batches=None if validate else 0,
            check_val_every_n_epoch=val_every_n_epochs,
            plugins=list(plugins) or None,
            gradient_clip_val=cfg.gradient_clip,
            gradient_clip_algorithm="norm",
            default_root_dir=root,
        )


def _loggers(logger: bool | Iterable[Logger], root: str) -> list[Logger] | bool:
    """The Trainer's loggers: ``True`` a CSV logger under ``root``, else those given (or none)."""
    if isinstance(logger, bool):
        return [CSVLogger(root, name="logs")] if logger else False
    return list(logger) or False


def build_trainer(
    cfg: TrainingConfig,
    *,
    seed: int,
    callbacks: Iterable[Callback] = (),
    accelerator: str = "auto",
    devices: int | str | list[int] = 1,
    enable_progress_bar: bool = False,
    default_root_dir: str | os.PathLike | None = None,
    max_epochs: int | None = None,
    logger: bool | Iterable[Logger] = False,
    validate: bool = True,
    val_every_n_epochs: int = 1,
    plugins: Iterable[Any] = (),
) -> L.Trainer:
    """A seeded, quiet Lightning ``Trainer`` for ``cfg``.

    Seeds Python, NumPy and torch (and DataLoader workers) with ``seed``. Writes nothing to disk
    unless asked: ``logger=True`` adds a CSV logger under ``default_root_dir`` (Lightning loggers
    given instead are used as they are: a trial's trackers, ``nas.tracking``), and checkpoints
    are written only when a ``ModelCheckpoint`` is among ``callbacks``. Precision, channels-last
    and determinism resolve from the device as documented on :class:`TrainingConfig`. A plain
    ``lightning.Trainer``: a :class:`RunScope` callback, ahead of ``callbacks``, sets the torch
    determinism flags and Lightning's log levels only while ``fit`` / ``validate`` / ``test`` /
    ``predict`` run, and restores them also when they raise. ``max_epochs`` overrides
    ``cfg.epochs`` (schedules follow it); ``validate=False`` runs no validation during fit, and
    ``val_every_n_epochs`` validates after every n-th epoch only (n = the epochs: once, at the
    end); ``plugins`` go to the Trainer (e.g. an :class:`AtomicCheckpointIO`).
    """
    if not _is_int(seed):
        raise ValueError(f"build_trainer seed must be an int, got {seed!r}")
    L.seed_everything(seed, workers=True, verbose=False)
    return _make_trainer(
        cfg,
        callbacks=callbacks,
        accelerator=accelerator,
        devices=devices,
        enable_progress_bar=enable_progress_bar,
        default_root_dir=default_root_dir,
        max_epochs=max_epochs,
        logger=logger,
        validate=validate,
        val_every_n_epochs=val_every_n_epochs,
        plugins=plugins,
    )


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temporary file beside the target and renamed over it, so a
    process killed while saving leaves the previous checkpoint whole (Lightning writes in place)."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None
    ) -> None:
        target = os.fspath(path)
        partial = f"{target}.partial"
        super().save_checkpoint(checkpoint, partial, storage_options)
        os.replace(partial, target)


def evaluate(
    module: ClassifierModule,
    datamodule: L.LightningDataModule,
    split: str = "test",
    *,
    accelerator: str = "auto",
) -> dict[str, float]:
    """Loss and accuracy of ``module`` on one split: ``{"test_acc", "test_loss"}`` for
    ``split="test"``, ``{"val_acc", "val_loss"}`` for ``split="val"``. Does not touch
    ``val_history`` and writes nothing to disk."""
    if split not in SPLITS:
        raise ValueError(f"evaluate split {split!r} is unknown; use one of {list(SPLITS)}")
    trainer = _make_trainer(
        module.config,
        callbacks=(),
        accelerator=accelerator,
        devices=1,
        enable_progress_bar=False,
        default_root_dir=None,
        max_epochs=None,
        logger=False,
    )
    run = trainer.test if split == "test" else trainer.validate
    (results,) = run(module, datamodule=datamodule, verbose=False)
    return {key: float(value) for key, value in results.items()}
