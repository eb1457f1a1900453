"""CBAM: sequential channel and spatial gates (Woo et al., ECCV 2018)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .params import ParamSpec, check_odd_int
from .registry import reduced_channels, reduction_param, register

SPATIAL_KERNEL_PARAM = ParamSpec(
    name="spatial_kernel",
    default=7,
    allowed="an odd int >= 1, so that padding k // 2 keeps the spatial size (the paper uses 7)",
    check=check_odd_int,
    doc="kernel size of the spatial gate's convolution",
)


@register(
    "cbam",
    family="hybrid",
    paper="Woo et al., CBAM: Convolutional Block Attention Module, ECCV 2018",
    params=(reduction_param(16), SPATIAL_KERNEL_PARAM),
    notes="spatial gate has BatchNorm (official code, timm); batch 1 trains unless the map is 1x1",
)
class CBAM(nn.Module):
    """CBAM: a channel gate followed by a spatial gate, both sigmoid, no residual inside.

    Channel gate (Eq. 2): the average- and max-pooled (B, C) descriptors go through ONE shared
    MLP ``C -> h -> C`` (ReLU after the hidden layer); the two outputs are summed, passed through
    a sigmoid and multiply x. Spatial gate (Eq. 3): the channel-wise mean and max maps, stacked in
    that order, go through a ``k x k`` conv (padding k // 2) to one map, then BatchNorm, sigmoid,
    multiply. Woo et al., CBAM: Convolutional Block Attention Module, ECCV 2018.

    Args:
        channels: input channels C.
        reduction: ratio r; hidden width ``h = max(1, C // r)`` (:func:`reduced_channels`).
        spatial_kernel: odd kernel size k of the spatial conv (paper: 7; its ablation shows 7 > 3).

    Sources differ in two details; this block follows the authors' code: the MLP layers have
    biases (timm's ``CbamModule`` defaults to ``mlp_bias=False``) and the spatial conv (no bias)
    is followed by BatchNorm, which Eq. 3 of the paper does not show (timm has it too). The authors'
    code stacks [max, mean] and uses BN momentum 0.01; we stack [mean, max] as the paper and timm
    do, and keep PyTorch's BN defaults.

    Batch 1: the spatial BN normalises over B*H*W values, so training at batch 1 works except on
    a 1x1 map (PyTorch then raises ``ValueError``). Parameters: ``2*C*h + h + C + 2*k^2 + 2``.
    """

    def __init__(self, channels: int, reduction: int = 16, spatial_kernel: int = 7) -> None:
        super().__init__()
        hidden = reduced_channels(channels, reduction)
        self.fc1 = nn.Linear(channels, hidden)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(hidden, channels)
        self.spatial_conv = nn.Conv2d(2, 1, spatial_kernel, padding=spatial_kernel // 2, bias=False)
        self.spatial_norm = nn.BatchNorm2d(1)

    def _shared_mlp(self, descriptor: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(descriptor)))

    def forward(self, x: Tensor) -> Tensor:
        logits = self._shared_mlp(x.mean(dim=(2, 3))) + self._shared_mlp(x.amax(dim=(2, 3)))
        x = x * torch.sigmoid(logits).unsqueeze(-1).unsqueeze(-1)

        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        spatial_gate = torch.sigmoid(self.spatial_norm(self.spatial_conv(pooled)))
        return x * spatial_gate
