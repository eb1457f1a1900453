"""The attention block zoo: ``create(name, channels, **params)`` builds any registered block."""

from importlib import import_module

from .registry import (
    FAMILIES,
    BlockInfo,
    ParamSpec,
    available,
    create,
    info,
    reduced_channels,
    register,
)

# TEMPORARY during parallel development: modules are added by several people at once.
_BLOCK_MODULES = (
    "identity",
    "se",
    "eca",
    "gct",
    "srm",
    "gsop",
    "fca",
    "encoding",
    "bilinear",
    "cbam",
    "bam",
    "coord",
    "gc",
    "non_local",
    "simam",
)
for _m in _BLOCK_MODULES:
    try:
        import_module(f"{__name__}.{_m}")
    except ModuleNotFoundError as _e:
        if _e.name != f"{__name__}.{_m}":
            raise

__all__ = [
    "FAMILIES",
    "BlockInfo",
    "ParamSpec",
    "available",
    "create",
    "info",
    "reduced_channels",
    "register",
]
