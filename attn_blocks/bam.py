"""BAM: parallel channel and spatial branches, added and applied residually (Park et al., 2018)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .registry import reduced_channels, reduction_param, register

DILATION = 4


@register(
    "bam",
    family="hybrid",
    paper="Park et al., BAM: Bottleneck Attention Module, BMVC 2018",
    params=(reduction_param(16),),
    train_batch1=False,
    notes="branches added as in the paper (the official code multiplies); BN over (B, C)",
)
class BAM(nn.Module):
    """BAM: ``x * (1 + sigmoid(M_c(x) + M_s(x)))`` with a channel and a spatial branch.

    Channel branch (Eq. 2): global average pool, MLP ``C -> h -> C`` with ReLU, BatchNorm over C.
    Spatial branch (Eq. 4): 1x1 conv ``C -> h``, two 3x3 convs ``h -> h`` with dilation 4 and
    padding 4 (ReLU after each hidden conv), 1x1 conv ``h -> 1``, BatchNorm. The (B, C, 1, 1) and
    (B, 1, H, W) outputs are broadcast-added (Eq. 1), and the block returns ``F + F * M(F)``.
    Park et al., BAM: Bottleneck Attention Module, BMVC 2018. The paper places it between stages.

    Args:
        channels: input channels C.
        reduction: ratio r shared by both branches; hidden width ``h = max(1, C // r)``
            (:func:`reduced_channels`).

    Deviations and choices: the paper's equations leave out the hidden non-linearity; we put a
    ReLU after each hidden layer as the authors' code does. The authors' code differs from the
    paper elsewhere: it multiplies the two branches instead of adding them, puts BN + ReLU after
    every hidden layer and has no BN at the end of either branch; we follow the paper. Biases of
    the layers that feed a BatchNorm are left out (BN removes any constant shift).

    Batch 1: the channel branch's BatchNorm sees one value per channel, so training at batch 1
    raises ``ValueError`` (use batch >= 2 or eval mode). Parameters:
    ``2*C*h + h + 2*C`` (channel) ``+ C*h + h + 2*(9*h^2 + h) + h + 2`` (spatial).
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = reduced_channels(channels, reduction)
        self.channel_fc1 = nn.Linear(channels, hidden)
        self.channel_fc2 = nn.Linear(hidden, channels, bias=False)
        self.channel_norm = nn.BatchNorm1d(channels)
        self.spatial_reduce = nn.Conv2d(channels, hidden, 1)
        self.spatial_dilated1 = nn.Conv2d(hidden, hidden, 3, padding=DILATION, dilation=DILATION)
        self.spatial_dilated2 = nn.Conv2d(hidden, hidden, 3, padding=DILATION, dilation=DILATION)
        self.spatial_out = nn.Conv2d(hidden, 1, 1, bias=False)
        self.spatial_norm = nn.BatchNorm2d(1)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        if self.training and x.shape[0] == 1:
            raise ValueError(
                "BAM: training at batch size 1 is not possible: the channel branch's BatchNorm "
                "needs more than one value per channel; use batch size >= 2 or call .eval()"
            )
        channel = self.channel_fc2(self.act(self.channel_fc1(x.mean(dim=(2, 3)))))
        channel = self.channel_norm(channel).unsqueeze(-1).unsqueeze(-1)

        spatial = self.act(self.spatial_reduce(x))
        spatial = self.act(self.spatial_dilated1(spatial))
        spatial = self.act(self.spatial_dilated2(spatial))
        spatial = self.spatial_norm(self.spatial_out(spatial))

        return x * (1.0 + torch.sigmoid(channel + spatial))
