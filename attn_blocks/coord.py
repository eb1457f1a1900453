"""Coordinate attention: direction-aware gates from strip pooling (Hou et al., CVPR 2021)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .registry import reduction_param, register

MIN_HIDDEN = 8


def coord_hidden_channels(channels: int, reduction: int) -> int:
    """The paper's bottleneck width ``mip = max(8, C // r)``."""
    return max(MIN_HIDDEN, channels // reduction)


@register(
    "coord",
    family="hybrid",
    paper="Hou et al., Coordinate Attention for Efficient Mobile Network Design, CVPR 2021",
    params=(reduction_param(32),),
    notes="hidden width max(8, C // r); BN over B*(H+W) values, so batch 1 trains",
)
class CoordAttention(nn.Module):
    """Coordinate attention: one gate per row and one per column, multiplied.

    x is average-pooled along W (giving a (C, H) strip) and along H (a (C, W) strip); the strips
    are concatenated along the spatial axis and share a 1x1 conv ``C -> mip``, BatchNorm and
    h-swish. The result is split back into its H and W parts; a 1x1 conv ``mip -> C`` and a
    sigmoid on each give the gates ``a_h`` (B, C, H, 1) and ``a_w`` (B, C, 1, W), and the block
    returns ``x * a_h * a_w``. Hou et al., Coordinate Attention for Efficient Mobile Network
    Design, CVPR 2021.

    Args:
        channels: input channels C.
        reduction: ratio r (paper: 32). Hidden width ``mip = max(8, C // r)`` as in the paper,
            not :func:`reduced_channels`: the floor of 8 keeps the shared encoder expressive.

    The shared conv has no bias since BatchNorm follows it (the authors' code has one, to no
    effect in training mode). timm's ``CoordAttn`` is the same computation but by default derives
    its width differently (``C * rd_ratio * 2/3`` rounded to 8) and has no conv biases.
    Batch 1 trains: the BN sees B * (H + W) >= 2 values per channel.
    Parameters: ``C*mip + 2*mip + 2*(mip*C + C)`` = ``3*C*mip + 2*mip + 2*C``.
    """

    def __init__(self, channels: int, reduction: int = 32) -> None:
        super().__init__()
        hidden = coord_hidden_channels(channels, reduction)
        self.conv_shared = nn.Conv2d(channels, hidden, 1, bias=False)
        self.norm = nn.BatchNorm2d(hidden)
        self.act = nn.Hardswish()
        self.conv_h = nn.Conv2d(hidden, channels, 1)
        self.conv_w = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        height = x.shape[2]
        strip_h = x.mean(dim=3, keepdim=True)  # (B, C, H, 1)
        strip_w = x.mean(dim=2, keepdim=True).transpose(2, 3)  # (B, C, W, 1)
        encoded = self.act(self.norm(self.conv_shared(torch.cat([strip_h, strip_w], dim=2))))
        gate_h = torch.sigmoid(self.conv_h(encoded[:, :, :height]))
        gate_w = torch.sigmoid(self.conv_w(encoded[:, :, height:].transpose(2, 3)))
        return x * gate_h * gate_w
