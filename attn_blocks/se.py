"""Squeeze-and-Excitation channel attention (Hu et al., CVPR 2018)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .registry import reduced_channels, reduction_param, register


@register(
    "se",
    family="channel",
    paper="Hu et al., Squeeze-and-Excitation Networks, CVPR 2018",
    params=(reduction_param(16),),
    notes="hidden width max(1, C // r); timm rounds it to a multiple of 8 instead",
)
class SqueezeExcite(nn.Module):
    """Squeeze-and-Excitation: a per-channel gate computed from globally pooled features.

    Algorithm: ``s = mean_hw(x)`` (squeeze), ``g = sigmoid(W2 relu(W1 s + b1) + b2)``
    (excitation through a C -> h -> C bottleneck), ``out = x * g`` (scale).
    Paper: Hu et al., "Squeeze-and-Excitation Networks", CVPR 2018.

    Args:
        channels: number of input channels C.
        reduction: reduction ratio r; hidden width ``h = max(1, C // r)`` (the paper floors C/r;
            timm's ``SEModule`` rounds to a multiple of 8, so pass it ``rd_channels=h`` to compare).

    The two fully connected layers are 1x1 convolutions with bias named ``fc1``/``fc2``, so a
    state dict loads into ``timm.layers.SEModule(C, rd_channels=h)`` unchanged.
    Batch size 1 works in training mode (no batch statistics).
    Parameters: ``2*C*h + h + C``.
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = reduced_channels(channels, reduction)
        self.channels = channels
        self.hidden_channels = hidden
        self.fc1 = nn.Conv2d(channels, hidden, kernel_size=1, bias=True)
        self.act = nn.ReLU()
        self.fc2 = nn.Conv2d(hidden, channels, kernel_size=1, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        squeezed = x.mean(dim=(2, 3), keepdim=True)
        gate = torch.sigmoid(self.fc2(self.act(self.fc1(squeezed))))
        return x * gate
