"""Registered blocks as timm's ``attn_layer``: ``timm_attn_layer("eca", kernel_size=3)``.

timm builds a block's attention through ``timm.layers.create_attn(attn_layer, channels,
**kwargs)``, which calls a non-string ``attn_layer`` as ``attn_layer(channels, **kwargs)``;
recent timm passes ``device`` and ``dtype`` as the kwargs. :class:`TimmAttnLayer` is such a
callable for any registered block, e.g. for timm's ResNets (which take it through
``block_args``)::

    timm.create_model("resnet50", block_args={"attn_layer": timm_attn_layer("eca", kernel_size=3)})

The block then sits in timm's ``se`` slot, after the last BN of each residual branch: SENet's
``standard`` position. timm itself is not imported here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .registry import create, info


@dataclass(frozen=True)
class TimmAttnLayer:
    """A picklable ``attn_layer`` for timm: ``layer(channels)`` builds block ``name``."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Fail when the layer is made, not deep inside timm's model constructor.
        object.__setattr__(self, "params", info(self.name).validate(dict(self.params)))

    def __call__(
        self,
        channels: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        **kwargs: Any,
    ) -> nn.Module:
        if kwargs:
            raise ValueError(
                f"timm_attn_layer({self.name!r}): timm passed {sorted(kwargs)}, which block "
                f"{self.name!r} does not take; set its parameters in timm_attn_layer("
                f"{self.name!r}, ...) ({list(info(self.name).param_names) or 'none'})"
            )
        block = create(self.name, channels, **self.params)
        if device is not None or dtype is not None:
            block = block.to(device=device, dtype=dtype)
        return block

    def __repr__(self) -> str:
        args = "".join(f", {k}={v!r}" for k, v in self.params.items())
        return f"timm_attn_layer({self.name!r}{args})"


def timm_attn_layer(name: str, **params: Any) -> TimmAttnLayer:
    """Block ``name`` with ``params`` (validated now) as timm's ``attn_layer``."""
    return TimmAttnLayer(name, params)
