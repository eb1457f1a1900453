"""The attention block zoo: ``create(name, channels, **params)`` builds any registered block, and
``timm_attn_layer(name, **params)`` hands it to timm as an ``attn_layer``."""

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
from .timm_layer import TimmAttnLayer, timm_attn_layer

__all__ = [
    "FAMILIES",
    "BlockInfo",
    "ParamSpec",
    "TimmAttnLayer",
    "available",
    "create",
    "info",
    "reduced_channels",
    "register",
    "timm_attn_layer",
    "validate_params",
]
