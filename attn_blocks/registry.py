"""Block registry: every attention block is created by name, with validated parameters.

A block is a class whose constructor takes ``channels`` first and its parameters as keywords
(timm's convention) and whose forward maps ``(B, C, H, W)`` to the same shape. Registering it
records its family, its paper and the parameters it takes, so that search spaces, the CLI and the
docs can enumerate blocks and their valid values without importing each class by hand.
Registering also makes the constructor validate ``channels`` and the registered parameters it is
given, so ``SqueezeExcite(64, reduction=0)`` fails with the same message as
``create("se", 64, reduction=0)``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from .params import CHANNELS, ParamSpec, check_positive_int, validate_params

FAMILIES = ("none", "channel", "spatial", "hybrid", "self-attention")


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
    def label(self) -> str:
        """How error messages name the block: ``block 'se'``."""
        return f"block {self.name!r}"

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
        return validate_params(self.label, self.params, params)


_REGISTRY: dict[str, BlockInfo] = {}


def _check_family(family: str) -> None:
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")


def _validating_init(block: BlockInfo, init: Callable[..., None]) -> Callable[..., None]:
    """``init`` preceded by the validation of ``channels`` and the registered parameters.

    Only the values the call passes are checked (the signature's defaults are the registry's,
    see the block tests); parameters the registry does not know pass through unchecked.
    ``functools.wraps`` keeps the signature visible to ``inspect.signature(cls)``.
    """
    signature = inspect.signature(init)
    specs = (CHANNELS, *block.params)
    names = {spec.name for spec in specs}

    @functools.wraps(init)
    def __init__(self: nn.Module, *args: Any, **kwargs: Any) -> None:
        given = signature.bind(self, *args, **kwargs).arguments
        validate_params(block.label, specs, {k: v for k, v in given.items() if k in names})
        init(self, *args, **kwargs)

    return __init__


def register(
    name: str,
    *,
    family: str,
    paper: str,
    params: Sequence[ParamSpec] = (),
    train_batch1: bool = True,
    notes: str = "",
) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator adding a block to the registry under ``name``.

    The class's ``__init__`` is wrapped to validate its arguments (see :func:`_validating_init`);
    subclasses inherit the check, and ``super().__init__`` calls go through it.
    """
    _check_family(family)

    def decorator(cls: type[nn.Module]) -> type[nn.Module]:
        if name in _REGISTRY and _REGISTRY[name].cls is not cls:
            raise ValueError(f"attention block {name!r} is already registered")
        block = BlockInfo(
            name=name,
            cls=cls,
            family=family,
            paper=paper,
            params=tuple(params),
            train_batch1=train_batch1,
            notes=notes,
        )
        _REGISTRY[name] = block
        cls.__init__ = _validating_init(block, cls.__init__)
        return cls

    return decorator


def available(family: str | None = None) -> list[str]:
    """Names of the registered blocks (``none`` first), optionally of one family."""
    if family is not None:
        _check_family(family)
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
    """Build block ``name`` for a ``channels``-channel feature map.

    Checks ``channels`` first, then the parameters, as the registered constructor does, so both
    ways of building a block fail with the same message.
    """
    block = info(name)
    validate_params(block.label, (CHANNELS,), {"channels": channels})
    return block.cls(channels, **block.validate(params))


# --- parameter specs shared by several blocks -------------------------------------------------


def reduction_param(default: int = 16, search: tuple[int, ...] = (4, 8, 16, 32)) -> ParamSpec:
    """The reduction ratio r of a bottleneck C -> C/r (see :func:`reduced_channels`)."""
    return ParamSpec(
        name="reduction",
        default=default,
        allowed="an int >= 1 (hidden width = max(1, channels // reduction))",
        check=check_positive_int,
        search=search,
        doc="reduction ratio r of the C -> C/r bottleneck",
    )


def reduced_channels(channels: int, reduction: int) -> int:
    """Hidden width of a C -> C/r bottleneck: ``max(1, channels // reduction)``.

    The papers write C/r and their code floors it; we floor too and never go below one channel,
    so a 3-channel input with r=16 gets one hidden channel instead of none. (timm instead rounds
    to a multiple of 8; the difference only shows for C/r < 8.)
    """
    return max(1, channels // reduction)
