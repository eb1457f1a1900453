"""Training one candidate: a ``TrainingConfig``, a ``ClassifierModule`` and a quiet ``Trainer``.

The search trains many small networks one after another, so everything here aims at runs that
are reproducible (seeded, deterministic on the CPU), quiet (no banners, summaries or log files
unless asked for) and cheap on a GPU (bf16 autocast and channels-last by default there).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from torch import nn

from search_spaces.spec import ArchSpec

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "onecycle", "constant")
PRECISIONS = ("auto", "32", "bf16-mixed")
SPLITS = ("test", "val")


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; the trial should be recorded as failed."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class TrainingConfig:
    """How one candidate is trained.

    ``lr`` is the peak learning rate (the plateau of ``constant``, the start of ``cosine`` after
    warm-up, ``max_lr`` of ``onecycle``). ``momentum`` and ``nesterov`` apply to SGD only.
    ``weight_decay`` is applied to conv / linear weights only, never to normalisation parameters
    or biases (Goyal et al. 2017, "Accurate, Large Minibatch SGD", sec. 3; AdamW decouples it
    from the gradient, Loshchilov & Hutter 2019, so it usually wants a larger value there).
    ``warmup_epochs`` ramps the LR linearly from ``lr/steps`` to ``lr`` for ``cosine`` and
    ``constant``, and sets the rising fraction of ``onecycle`` (its default 0.3 when 0).
    ``"auto"`` settings resolve from the device: ``precision`` is ``bf16-mixed`` on a CUDA GPU
    and ``32`` elsewhere, ``channels_last`` is on for a CUDA GPU, ``deterministic`` is on for the
    CPU (on a GPU it is off and cuDNN autotuning is on instead). ``gradient_clip`` is a max
    gradient norm.
    """

    epochs: int
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    warmup_epochs: float = 0
    label_smoothing: float = 0.0
    precision: str = "auto"
    channels_last: bool | str = "auto"
    gradient_clip: float | None = None
    deterministic: bool | str = "auto"

    def __post_init__(self) -> None:
        if not _is_int(self.epochs) or self.epochs < 1:
            raise ValueError(f"TrainingConfig.epochs must be an int >= 1, got {self.epochs!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"TrainingConfig.optimizer {self.optimizer!r} is unknown; use one of "
                f"{list(OPTIMIZERS)}"
            )
        if not _is_number(self.lr) or self.lr <= 0:
            raise ValueError(f"TrainingConfig.lr must be a positive number, got {self.lr!r}")
        if not _is_number(self.momentum) or not 0 <= self.momentum < 1:
            raise ValueError(f"TrainingConfig.momentum must be in [0, 1), got {self.momentum!r}")
        if not isinstance(self.nesterov, bool):
            raise ValueError(
                f"TrainingConfig.nesterov must be True or False, got {self.nesterov!r}"
            )
        if self.optimizer == "sgd" and self.nesterov and self.momentum == 0:
            raise ValueError(
                "TrainingConfig.nesterov needs momentum > 0 with SGD; set momentum (e.g. 0.9) "
                "or nesterov=False"
            )
        if not _is_number(self.weight_decay) or self.weight_decay < 0:
            raise ValueError(
                f"TrainingConfig.weight_decay must be a number >= 0, got {self.weight_decay!r}"
            )
        if self.schedule not in SCHEDULES:
            raise ValueError(
                f"TrainingConfig.schedule {self.schedule!r} is unknown; use one of "
                f"{list(SCHEDULES)}"
            )
        if not _is_number(self.warmup_epochs) or not 0 <= self.warmup_epochs < self.epochs:
            raise ValueError(
                f"TrainingConfig.warmup_epochs must be >= 0 and below epochs={self.epochs}, "
                f"got {self.warmup_epochs!r}"
            )
        if not _is_number(self.label_smoothing) or not 0 <= self.label_smoothing < 1:
            raise ValueError(
                f"TrainingConfig.label_smoothing must be in [0, 1), got {self.label_smoothing!r}"
            )
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"TrainingConfig.precision {self.precision!r} is unknown; use one of "
                f"{list(PRECISIONS)}"
            )
        for name in ("channels_last", "deterministic"):
            value = getattr(self, name)
            if not (isinstance(value, bool) or value == "auto"):
                raise ValueError(
                    f"TrainingConfig.{name} must be True, False or 'auto', got {value!r}"
                )
        if self.gradient_clip is not None and (
            not _is_number(self.gradient_clip) or self.gradient_clip <= 0
        ):
            raise ValueError(
                "TrainingConfig.gradient_clip must be a positive max gradient norm or None, "
                f"got {self.gradient_clip!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainingConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(
                f"TrainingConfig has unknown key(s) {sorted(unknown)}; expected some of "
                f"{sorted(known)}"
            )
        return cls(**data)


# -- device-dependent settings ----------------------------------------------------------------


def resolve_accelerator(accelerator: str = "auto") -> str:
    """``"auto"``: ``"cuda"`` when a CUDA GPU is visible, else ``"cpu"``; ``"gpu"`` means cuda."""
    if accelerator == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return "cuda" if accelerator == "gpu" else accelerator


def resolve_precision(precision: str, accelerator: str) -> str:
    """The Lightning precision string for a config value on a resolved accelerator."""
    if precision == "auto":
        on_bf16_gpu = accelerator == "cuda" and torch.cuda.is_bf16_supported()
        return "bf16-mixed" if on_bf16_gpu else "32-true"
    return "32-true" if precision == "32" else precision


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


def _add_totals(
    totals: torch.Tensor | None, loss_sum: torch.Tensor, logits: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    """``totals`` (float64 loss sum, correct count, sample count) plus one batch's."""
    correct = (logits.argmax(dim=1) == y).sum()
    step = torch.stack([loss_sum, correct.to(loss_sum.dtype), loss_sum.new_tensor(len(y))])
    return step.double() if totals is None else totals + step.double()


class ClassifierModule(L.LightningModule):
    """Image classification with cross-entropy, for one architecture of the search.

    Build it from an :class:`ArchSpec` (``spec=``, the model comes from
    ``search_spaces.build.build_model(spec, seed=seed)``) or from a ready ``model=``. The spec,
    config and seed are saved as hyper-parameters, so ``ClassifierModule.load_from_checkpoint``
    rebuilds a spec-built module by itself; a module built from ``model=`` needs the model again:
    ``load_from_checkpoint(path, model=net)``.

    Metrics: ``train_loss`` / ``train_acc`` (means over the epoch's training samples, as
    trained on: augmented, weights changing), ``val_loss`` / ``val_acc`` and ``test_loss`` /
    ``test_acc`` (exact over the whole split); all summed across processes.
    ``val_history`` keeps one ``{"epoch", "val_acc", "val_loss"}`` per validation during fit.
    """

    def __init__(
        self,
        spec: ArchSpec | Mapping[str, Any] | None = None,
        *,
        config: TrainingConfig | Mapping[str, Any],
        model: nn.Module | None = None,
        seed: int = 0,
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
            self.model = build_model(self.spec, seed=seed)
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
        self._channels_last = False
        self._totals: torch.Tensor | None = None
        self._train_totals: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    # -- setup ---------------------------------------------------------------------------

    def setup(self, stage: str) -> None:
        device_type = self.trainer.strategy.root_device.type
        self._channels_last = _resolve_flag(self.config.channels_last, device_type, True)
        if self._channels_last:
            self.model.to(memory_format=torch.channels_last)

    def _inputs(self, x: torch.Tensor) -> torch.Tensor:
        if self._channels_last and x.dim() == 4:
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
        # Epoch sums kept here and logged once per epoch: a ``self.log`` call per step costs
        # Lightning ~0.6 ms (it walks its result object to move it to the device), 10-15% of a
        # small model's CPU step (benchmarks/overhead.py).
        with torch.no_grad():
            self._train_totals = _add_totals(
                self._train_totals, loss.detach().float() * len(y), logits, y
            )
        return loss

    def on_train_epoch_start(self) -> None:
        self._train_totals = None

    def on_train_epoch_end(self) -> None:
        totals, self._train_totals = self._train_totals, None
        self._log_totals("train", totals)

    def _accumulate(self, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
        x, y = batch
        logits = self(self._inputs(x))
        loss_sum = F.cross_entropy(logits.float(), y, reduction="sum")
        self._totals = _add_totals(self._totals, loss_sum, logits, y)

    def _split_metrics(self, prefix: str) -> dict[str, float]:
        totals, self._totals = self._totals, None
        return self._log_totals(prefix, totals)

    def _log_totals(self, prefix: str, totals: torch.Tensor | None) -> dict[str, float]:
        """Log ``<prefix>_loss`` and ``<prefix>_acc`` from summed (loss, correct, count)."""
        if totals is None:
            return {}
        # Sum over processes, so the metrics are exact over the whole split under DDP.
        totals = self.trainer.strategy.reduce(totals, reduce_op="sum")
        loss_sum, correct, count = totals.tolist()
        metrics = {f"{prefix}_loss": loss_sum / count, f"{prefix}_acc": correct / count}
        # Already identical on every process; sync_dist only averages equal values.
        self.log_dict(metrics, prog_bar=True, sync_dist=True)
        return metrics

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._accumulate(batch)

    def on_validation_epoch_start(self) -> None:
        self._totals = None

    def on_validation_epoch_end(self) -> None:
        metrics = self._split_metrics("val")
        if metrics and self.trainer.state.fn == "fit" and not self.trainer.sanity_checking:
            self.val_history.append({"epoch": self.current_epoch, **metrics})

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._accumulate(batch)

    def on_test_epoch_start(self) -> None:
        self._totals = None

    def on_test_epoch_end(self) -> None:
        self._split_metrics("test")

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
    """Hide Lightning's info banners and its num_workers hint for the duration of a call."""
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
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


class _ScopedTrainer(L.Trainer):
    """A ``Trainer`` whose fit/validate/test/predict run quietly and with the config's
    determinism flags, restoring the process-wide torch flags and log levels afterwards."""

    def __init__(
        self, *args: Any, torch_deterministic: bool, device_type: str, **kwargs: Any
    ) -> None:
        with _quiet_lightning():
            super().__init__(*args, **kwargs)
        self._deterministic = torch_deterministic
        self._device_type = device_type

    @contextlib.contextmanager
    def _scope(self) -> Iterator[None]:
        with _quiet_lightning(), _torch_flags(self._deterministic, self._device_type):
            yield

    def fit(self, *args: Any, **kwargs: Any) -> None:
        with self._scope():
            return super().fit(*args, **kwargs)

    def validate(self, *args: Any, **kwargs: Any) -> Any:
        with self._scope():
            return super().validate(*args, **kwargs)

    def test(self, *args: Any, **kwargs: Any) -> Any:
        with self._scope():
            return super().test(*args, **kwargs)

    def predict(self, *args: Any, **kwargs: Any) -> Any:
        with self._scope():
            return super().predict(*args, **kwargs)


def _make_trainer(
    cfg: TrainingConfig,
    *,
    callbacks: Iterable[Callback],
    accelerator: str,
    devices: int | str | list[int],
    enable_progress_bar: bool,
    default_root_dir: str | os.PathLike | None,
    max_epochs: int | None,
    logger: bool,
) -> L.Trainer:
    device_type = resolve_accelerator(accelerator)
    callbacks = list(callbacks)
    root = os.fspath(default_root_dir) if default_root_dir is not None else os.getcwd()
    return _ScopedTrainer(
        accelerator=device_type,
        devices=devices,
        precision=resolve_precision(cfg.precision, device_type),
        max_epochs=cfg.epochs if max_epochs is None else max_epochs,
        callbacks=callbacks,
        logger=CSVLogger(root, name="logs") if logger else False,
        enable_checkpointing=any(isinstance(cb, ModelCheckpoint) for cb in callbacks),
        enable_progress_bar=enable_progress_bar,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        gradient_clip_val=cfg.gradient_clip,
        gradient_clip_algorithm="norm",
        default_root_dir=root,
        torch_deterministic=_resolve_flag(cfg.deterministic, device_type, False),
        device_type=device_type,
    )


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
    logger: bool = False,
) -> L.Trainer:
    """A seeded, quiet Lightning ``Trainer`` for ``cfg``.

    Seeds Python, NumPy and torch (and DataLoader workers) with ``seed``. Writes nothing to disk
    unless asked: ``logger=True`` adds a CSV logger under ``default_root_dir``, and checkpoints
    are written only when a ``ModelCheckpoint`` is among ``callbacks``. Precision, channels-last
    and determinism resolve from the device as documented on :class:`TrainingConfig`; the torch
    determinism flags and Lightning's log levels are set only while ``fit`` / ``validate`` /
    ``test`` / ``predict`` run. ``max_epochs`` overrides ``cfg.epochs`` (schedules follow it).
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
    )


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
