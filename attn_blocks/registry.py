"""Block registry: every attention block is created by name, with validated parameters.

A block is a class whose constructor takes ``channels`` first and its parameters as keywords
(timm's convention) and whose forward maps ``(B, C, H, W)`` to the same shape. Registering it
records its family, its paper and the parameters it takes, so that search spaces, the CLI and the
docs can enumerate blocks and their valid values without importing each class by hand.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

FAMILIES = ("none", "channel", "spatial", "hybrid", "self-attention")


@dataclass(frozen=True)
class ParamSpec:
    """One constructor parameter of a block.

    ``check`` returns ``None`` for a valid value, otherwise a short reason. ``allowed`` is the
    human description of the valid values that error messages quote. ``search`` lists the values
    a search space offers by default (a subset of the valid ones).
    """

    name: str
    default: Any
    allowed: str
    check: Callable[[Any], str | None]
    search: tuple[Any, ...] = ()
    doc: str = ""


@dataclass(frozen=True)
class BlockInfo:
    """Metadata of a registered block."""

    name: str
    cls: type[nn.Module]
    family: str
    paper: str
    params: tuple[ParamSpec, ...] = ()
    #: False where training mode needs more than one sample (BatchNorm over a (B, C, 1, 1) tensor).
    train_batch1: bool = True
    notes: str = ""
    defaults: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "defaults", {p.name: p.default for p in self.params})

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def param(self, name: str) -> ParamSpec:
        for p in self.params:
            if p.name == name:
                return p
        raise ValueError(
            f"block {self.name!r} has no parameter {name!r}; "
            f"its parameters are {list(self.param_names) or 'none'}"
        )

    def validate(self, params: dict[str, Any]) -> dict[str, Any]:
        """Return the full parameter dict (defaults filled in) or raise ``ValueError``."""
        unknown = sorted(set(params) - set(self.param_names))
        if unknown:
            raise ValueError(
                f"block {self.name!r} got unknown parameter(s) {unknown}; "
                f"it takes {list(self.param_names) or 'no parameters'}"
            )
        full = dict(self.defaults)
        for key, value in params.items():
            spec = self.param(key)
            reason = spec.check(value)
            if reason is not None:
                raise ValueError(
                    f"block {self.name!r}: parameter {key!r}={value!r} is invalid ({reason}); "
                    f"allowed: {spec.allowed}"
                )
            full[key] = value
        return full


_REGISTRY: dict[str, BlockInfo] = {}


def register(
    name: str,
    *,
    family: str,
    paper: str,
    params: Sequence[ParamSpec] = (),
    train_batch1: bool = True,
    notes: str = "",
) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator adding a block to the registry under ``name``."""
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")

    def decorator(cls: type[nn.Module]) -> type[nn.Module]:
        if name in _REGISTRY and _REGISTRY[name].cls is not cls:
            raise ValueError(f"attention block {name!r} is already registered")
        _REGISTRY[name] = BlockInfo(
            name=name,
            cls=cls,
            family=family,
            paper=paper,
            params=tuple(params),
            train_batch1=train_batch1,
            notes=notes,
        )
        return cls

    return decorator


def available(family: str | None = None) -> list[str]:
    """Names of the registered blocks (``none`` first), optionally of one family."""
    if family is not None and family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    names = [n for n, i in _REGISTRY.items() if family is None or i.family == family]
    return sorted(names, key=lambda n: (n != "none", n))


def info(name: str) -> BlockInfo:
    """Metadata of block ``name``; unknown names raise ``ValueError`` listing the known ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown attention block {name!r}; available: {', '.join(available())}"
        ) from None


def create(name: str, channels: int, **params: Any) -> nn.Module:
    """Build block ``name`` for a ``channels``-channel feature map."""
    block = info(name)
    if not isinstance(channels, int) or isinstance(channels, bool) or channels < 1:
        raise ValueError(f"block {name!r}: channels must be a positive int, got {channels!r}")
    return block.cls(channels, **block.validate(params))


# --- parameter specs shared by several blocks -------------------------------------------------


def _positive_int(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return f"expected an int, got {type(value).__name__}"
    return None if value >= 1 else "must be >= 1"


def _positive_float(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"expected a number, got {type(value).__name__}"
    return None if value > 0 and math.isfinite(value) else "must be a finite number > 0"


def reduction_param(default: int = 16, search: tuple[int, ...] = (4, 8, 16, 32)) -> ParamSpec:
    """The reduction ratio r of a bottleneck C -> C/r (see :func:`reduced_channels`)."""
    return ParamSpec(
        name="reduction",
        default=default,
        allowed="an int >= 1 (hidden width = max(1, channels // reduction))",
        check=_positive_int,
        search=search,
        doc="reduction ratio r of the C -> C/r bottleneck",
    )


def int_param(name: str, default: int, doc: str, search: tuple[int, ...] = ()) -> ParamSpec:
    return ParamSpec(name, default, "an int >= 1", _positive_int, search, doc)


def float_param(name: str, default: float, doc: str) -> ParamSpec:
    return ParamSpec(name, default, "a finite number > 0", _positive_float, (), doc)


def reduced_channels(channels: int, reduction: int) -> int:
    """Hidden width of a C -> C/r bottleneck: ``max(1, channels // reduction)``.

    The papers write C/r and their code floors it; we floor too and never go below one channel,
    so a 3-channel input with r=16 gets one hidden channel instead of none. (timm instead rounds
    to a multiple of 8; the difference only shows for C/r < 8.)
    """
    return max(1, channels // reduction)
