"""``[training]``: how every trial trains (optimiser, schedule, precision, memory format,
compilation). Its own file, as ``[tracking]``'s, to keep :mod:`.sections` readable."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any, Literal, get_args

from pydantic import ConfigDict, StrictBool, StrictStr, model_validator
from pydantic.dataclasses import dataclass

from ._validation import _field, _Int, _invalid, _Number, _one_line_errors, _one_of, _PositiveNumber

_Optimizer = Literal["sgd", "adamw"]
_Schedule = Literal["cosine", "onecycle", "constant"]
_Precision = Literal["auto", "32", "bf16-mixed"]
_Validate = Literal["auto", "every_epoch", "last_epoch"]
_CompileScope = Literal["auto", "units", "model"]

OPTIMIZERS: tuple[str, ...] = get_args(_Optimizer)
SCHEDULES: tuple[str, ...] = get_args(_Schedule)
PRECISIONS: tuple[str, ...] = get_args(_Precision)
VALIDATE: tuple[str, ...] = get_args(_Validate)
COMPILE_SCOPES: tuple[str, ...] = get_args(_CompileScope)


@_one_line_errors
@dataclass(frozen=True, config=ConfigDict(extra="forbid", allow_inf_nan=False))
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
    and, for trials of large enough models, on a CPU with native bfloat16
    (``nas.training.CPU_BF16_MIN_FLOPS``), ``32`` elsewhere, and a study keeps its first
    trial's, ``channels_last`` is on for a CUDA GPU and, on the CPU, for the
    backbone families measured faster so (``nas.training.CPU_CHANNELS_LAST_FAMILIES``),
    ``deterministic`` is on for the CPU (on a GPU it is off and cuDNN autotuning is on instead),
    ``compile`` compiles where the trial's expected training outlasts compiling,
    ``compile_scope`` is the whole model on the CPU and each residual unit on a GPU
    (``nas.compiling``), ``validate`` validates every epoch only where something reads
    each epoch's accuracy (a pruner, a table's curves) and once after the last epoch otherwise
    (``nas.training.validation_interval``). ``gradient_clip`` is a max gradient norm. Numbers
    must be finite.
    """

    epochs: _Int = _field(allowed="an int >= 1", doc="Epochs per trial.", ge=1)
    optimizer: _Optimizer = _field("sgd", allowed=_one_of(OPTIMIZERS), doc="Optimizer.")
    lr: _Number = _field(0.1, allowed="a positive number", doc="Peak learning rate.", gt=0)
    momentum: _Number = _field(0.9, allowed="a number in [0, 1)", doc="SGD momentum.", ge=0, lt=1)
    nesterov: StrictBool = _field(
        True, allowed="true or false", doc="Nesterov momentum (SGD; needs momentum > 0)."
    )
    weight_decay: _Number = _field(
        5e-4, allowed="a number >= 0", doc="Weight decay of conv and linear weights.", ge=0
    )
    schedule: _Schedule = _field("cosine", allowed=_one_of(SCHEDULES), doc="LR schedule.")
    warmup_epochs: _Number = _field(
        0,
        allowed="a number >= 0 and below epochs",
        doc="Linear LR warm-up (cosine, constant) or rising fraction (onecycle), in epochs.",
        ge=0,
    )
    label_smoothing: _Number = _field(
        0.0, allowed="a number in [0, 1)", doc="Label smoothing of the loss.", ge=0, lt=1
    )
    precision: _Precision = _field(
        "auto",
        allowed=_one_of(PRECISIONS),
        doc="auto: bf16-mixed on a CUDA GPU and for large models on a bf16 CPU, else 32.",
    )
    channels_last: StrictBool | Literal["auto"] = _field(
        "auto",
        allowed="true, false or 'auto'",
        doc="auto: on for a CUDA GPU, and on the CPU for the ResNets (measured faster there).",
    )
    gradient_clip: _PositiveNumber | None = _field(
        None,
        allowed="a positive max gradient norm or absent",
        doc="Clip gradients to this norm (absent: no clipping).",
    )
    deterministic: StrictBool | Literal["auto"] = _field(
        "auto", allowed="true, false or 'auto'", doc="auto: on for the CPU, off on a GPU."
    )
    compile: StrictBool | Literal["auto"] = _field(
        "auto", allowed="true, false or 'auto'", doc="auto: where training outlasts compiling."
    )
    compile_scope: _CompileScope = _field(
        "auto",
        allowed=_one_of(COMPILE_SCOPES),
        doc="What is compiled. auto: the whole model on the CPU, each residual unit on a GPU.",
    )
    compile_cache: StrictStr = _field(
        "", allowed="a folder, or '' for runs_dir/<name>/compile-cache", doc="Compiled code."
    )
    validate: _Validate = _field(
        "auto",
        allowed=_one_of(VALIDATE),
        doc="auto: every epoch where a pruner or a table reads the curve, else after the last.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> TrainingConfig:
        if self.optimizer == "sgd" and self.nesterov and self.momentum == 0:
            raise _invalid(
                "nesterov",
                "needs momentum > 0 with SGD; set momentum (e.g. 0.9) or nesterov=False",
            )
        if self.warmup_epochs >= self.epochs:
            raise _invalid(
                "warmup_epochs",
                f"must be >= 0 and below epochs={self.epochs}, got {self.warmup_epochs!r}",
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainingConfig:
        return cls(**data)
