"""Global context block: query-independent attention pooling plus an additive transform (GCNet)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .registry import reduction_param, register

MIN_HIDDEN = 2


def gc_hidden_channels(channels: int, reduction: int) -> int:
    """Bottleneck width ``max(2, C // r)``: LayerNorm over a single channel outputs a constant."""
    return max(MIN_HIDDEN, channels // reduction)


@register(
    "gc",
    family="self-attention",
    paper="Cao et al., GCNet: Non-local Networks Meet Squeeze-Excitation Networks and Beyond, "
    "ICCV Workshops 2019",
    params=(reduction_param(16),),
    notes="additive fusion (paper default); identity at init; hidden width max(2, C // r)",
)
class GlobalContext(nn.Module):
    """Global context (GC) block: ``x + T(sum_j softmax_j(W_k x_j) x_j)``.

    Context modelling: a 1x1 conv ``C -> 1`` scores every position, a softmax over the H*W
    positions turns the scores into weights, and the weighted sum of x is one (B, C) context
    vector (the simplified non-local block: the same attention map for every query). Transform
    T: 1x1 conv ``C -> h``, LayerNorm over (h, 1, 1), ReLU, 1x1 conv ``h -> C``. Fusion: the
    result is broadcast-added to every position (the paper's default; timm's ``gc`` attention
    type fuses by scaling, its ``gca`` by addition). Cao et al., GCNet, ICCV Workshops 2019.

    Args:
        channels: input channels C.
        reduction: ratio r (paper: r = 16, with 1/4 as a variant, i.e. r = 4). Hidden width
            ``h = max(2, C // r)``, not :func:`reduced_channels`: with one hidden channel the
            LayerNorm output is its bias whatever the input, so the block would ignore x.

    Initialisation as the authors' code: the last conv is zero (weight and bias), so the block
    starts as the identity. The scoring conv has no bias: softmax over positions cancels it.
    LayerNorm eps is 1e-5 (PyTorch's default, as the authors use; timm's LayerNorm2d uses 1e-6).
    Batch 1 trains (LayerNorm has no batch statistics).
    Parameters: ``C`` (scoring) ``+ C*h + h + 2*h + h*C + C`` = ``2*C*h + 3*h + 2*C``.
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = gc_hidden_channels(channels, reduction)
        self.conv_attn = nn.Conv2d(channels, 1, 1, bias=False)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.norm = nn.LayerNorm([hidden, 1, 1])
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, 1)
        nn.init.kaiming_normal_(self.conv_attn.weight, mode="fan_in", nonlinearity="relu")
        nn.init.zeros_(self.fc2.weight)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, x: Tensor) -> Tensor:
        weights = torch.softmax(self.conv_attn(x).flatten(2), dim=-1)  # (B, 1, HW)
        context = torch.matmul(x.flatten(2), weights.transpose(1, 2))  # (B, C, 1)
        context = context.unsqueeze(-1)  # (B, C, 1, 1)
        return x + self.fc2(self.act(self.norm(self.fc1(context))))
