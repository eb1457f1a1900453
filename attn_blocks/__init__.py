"""The attention block zoo: ``create(name, channels, **params)`` builds any registered block."""

# Importing a block module registers its blocks.
from . import (  # noqa: F401
    bam,
    bilinear,
    cbam,
    coord,
    eca,
    encoding,
    fca,
    gc,
    gct,
    gsop,
    identity,
    non_local,
    se,
    simam,
    srm,
)
from .params import ParamSpec, validate_params
from .registry import (
    FAMILIES,
    BlockInfo,
    available,
    create,
    info,
    reduced_channels,
    register,
)

__all__ = [
    "FAMILIES",
    "BlockInfo",
    "ParamSpec",
    "available",
    "create",
    "info",
    "reduced_channels",
    "register",
    "validate_params",
]
