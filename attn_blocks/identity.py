"""The ``none`` entry: no attention at a site."""

from __future__ import annotations

from torch import Tensor, nn

from .registry import register


@register("none", family="none", paper="-")
class NoAttention(nn.Identity):
    """Identity; takes ``channels`` only so that it is built like every other block."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels

    def forward(self, x: Tensor) -> Tensor:
        return x
