"""Gated Channel Transformation (Yang et al., CVPR 2020)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .registry import register


@register(
    "gct",
    family="channel",
    paper="Yang et al., Gated Channel Transformation for Visual Recognition, CVPR 2020",
    notes="identity at init (gamma = beta = 0); l2 embedding variant",
)
class GatedChannelTransform(nn.Module):
    """GCT: channel gate from normalised per-channel L2 norms (competition between channels).

    Algorithm (l2 variant, eps = 1e-5):
    ``s_c = alpha_c * sqrt(sum_hw x_c^2 + eps)`` (global context embedding),
    ``n_c = gamma_c / sqrt(mean_c(s^2) + eps)`` (channel normalisation),
    ``g_c = 1 + tanh(s_c * n_c + beta_c)`` (gating), ``out = x * g``.
    Paper: Yang et al., "Gated Channel Transformation for Visual Recognition", CVPR 2020.

    Init alpha = 1, gamma = beta = 0, so the gate is exactly 1 and the block starts as the
    identity. Parameters are stored with shape (1, C, 1, 1), as in the authors' code.
    The paper places GCT before every convolution; used after a stage it is still a valid gate.

    Args:
        channels: number of input channels C.

    No hidden width (no reduction). Batch size 1 works in training mode (statistics are per
    sample). Parameters: ``3*C`` (alpha, gamma, beta).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.eps = 1e-5
        self.alpha = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        embedding = self.alpha * (x.pow(2).sum(dim=(2, 3), keepdim=True) + self.eps).sqrt()
        norm = self.gamma / (embedding.pow(2).mean(dim=1, keepdim=True) + self.eps).sqrt()
        gate = 1.0 + torch.tanh(embedding * norm + self.beta)
        return x * gate
