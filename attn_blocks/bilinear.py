"""Bilinear (second-order) channel attention, as described in Guo et al.'s attention survey."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .registry import reduced_channels, reduction_param, register

#: Cap on the embedding width C': the bilinear width grows as C'^2 / 2, the parameters as C * C'^2.
MAX_EMBED_CHANNELS = 64


def bilinear_embed_channels(channels: int, reduction: int) -> int:
    """Embedding width ``C' = min(64, max(1, C // reduction))``."""
    return min(MAX_EMBED_CHANNELS, reduced_channels(channels, reduction))


def upper_triangle_products(embedded: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """Per-position outer product, upper triangle: ``(B, C', H, W) -> (B, D, H, W)``.

    Entry m is ``z_rows[m] * z_cols[m]`` with ``(rows, cols) = torch.triu_indices(C', C')``,
    i.e. the pairs i <= j in row-major order; D = C'(C'+1)/2.
    """
    return embedded.index_select(1, rows) * embedded.index_select(1, cols)


def _conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


@register(
    "bilinear",
    family="channel",
    paper=(
        "Fang et al., Bilinear Attention Networks for Person Retrieval, ICCV 2019 "
        "(as described in Guo et al., Attention Mechanisms in Computer Vision: A Survey, 2022)"
    ),
    params=(reduction_param(16),),
    train_batch1=False,
    notes="C' = min(64, max(1, C // reduction)); pooled branch has BatchNorm over (B, C, 1, 1)",
)
class BilinearAttention(nn.Module):
    """Bilinear attention: a gate from second-order (pairwise channel product) statistics.

    Algorithm: embed ``z = ReLU(BN(conv1x1_{C->C'}(x)))``; at each position take the upper
    triangle of the outer product ``z z^T`` (D = C'(C'+1)/2 values, the bilinear features b);
    a local branch ``l = ReLU(BN(conv1x1_{D->C}(b)))`` per position and a global branch
    ``g = ReLU(BN(conv1x1_{D->C}(GAP(b))))``; ``att = sigmoid(l * g)``; ``out = x * att``.
    Paper: Fang et al., "Bilinear Attention Networks for Person Retrieval", ICCV 2019, in the
    form summarised by Guo et al., "Attention Mechanisms in Computer Vision: A Survey", 2022.

    Both branches end in ReLU, so ``l * g >= 0`` and the gate lies in [0.5, 1): the block can
    only attenuate channels/positions by up to half. Convs before a BN have no bias.

    Args:
        channels: number of input channels C.
        reduction: r of the embedding width ``C' = min(64, max(1, C // r))``. The cap keeps the
            cost bounded: without it C = 2048, r = 16 would need ~34M parameters; with it the
            largest D is 2080.

    Batch size 1: the global branch applies BatchNorm to a (B, C, 1, 1) tensor, so training at
    batch 1 raises ``ValueError`` (use batch >= 2 or eval mode); eval mode works everywhere.
    Parameters: ``C*C' + 2C'`` (embedding) + ``2 * (D*C + 2C)`` (two branches),
    D = C'(C'+1)/2. Memory: the (B, D, H, W) bilinear features.
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        embed = bilinear_embed_channels(channels, reduction)
        rows, cols = torch.triu_indices(embed, embed)
        self.channels = channels
        self.embed_channels = embed
        self.bilinear_channels = rows.numel()
        self.register_buffer("rows", rows, persistent=False)
        self.register_buffer("cols", cols, persistent=False)
        self.embed = _conv_bn_relu(channels, embed)
        self.local_branch = _conv_bn_relu(self.bilinear_channels, channels)
        self.global_branch = _conv_bn_relu(self.bilinear_channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        if self.training and x.shape[0] == 1:
            raise ValueError(
                "bilinear: training at batch size 1 is not possible: the BatchNorm of its "
                "pooled branch over (B, C, 1, 1) needs more than one value per channel; use "
                "batch size >= 2 or eval mode"
            )
        bilinear = upper_triangle_products(self.embed(x), self.rows, self.cols)
        local = self.local_branch(bilinear)
        pooled = self.global_branch(F.adaptive_avg_pool2d(bilinear, 1))
        return x * torch.sigmoid(local * pooled)
