"""Non-local block, embedded Gaussian version (Wang et al., CVPR 2018)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .registry import reduced_channels, reduction_param, register


@register(
    "non_local",
    family="self-attention",
    paper="Wang et al., Non-local Neural Networks, CVPR 2018",
    params=(reduction_param(2, search=(2, 4, 8)),),
    notes="memory and time grow with (HW)^2; identity at init (zero BN gamma)",
)
class NonLocal(nn.Module):
    """Non-local block: ``z = x + BN(W_z (softmax(theta(x)^T phi(x)) g(x)))``.

    theta, phi and g are 1x1 convs ``C -> h``; for every position i the response is the
    average of g over all positions j weighted by ``softmax_j(theta_i . phi_j)`` (the embedded
    Gaussian of Eq. 3, no scaling), then a 1x1 conv ``h -> C`` and BatchNorm whose gamma starts
    at zero, so the block is the identity at initialisation, and a residual add.
    Wang et al., Non-local Neural Networks, CVPR 2018.

    Args:
        channels: input channels C.
        reduction: ratio r; ``h = max(1, C // r)`` (:func:`reduced_channels`); the paper uses
            r = 2. The search offers 2, 4 and 8.

    Cost: the (HW x HW) affinity matrix takes O(B * (HW)^2) memory and O(B * (HW)^2 * h) time,
    so a 56x56 map needs ~39 MB per sample in float32; place the block on late, small maps (the
    paper's subsampling of phi and g by max pooling is not implemented). timm's ``NonLocalAttn``
    multiplies the affinities by ``C ** -0.5`` unless ``use_scale=False``; the paper does not.
    phi has no bias (it adds the same amount to every logit of a row, which softmax cancels) and
    the output conv has none (BatchNorm follows). Batch 1 trains; only a 1x1 map at batch 1 makes
    the BatchNorm raise ``ValueError`` in train mode. Parameters: ``4*C*h + 2*h + 2*C``.
    """

    def __init__(self, channels: int, reduction: int = 2) -> None:
        super().__init__()
        hidden = reduced_channels(channels, reduction)
        self.theta = nn.Conv2d(channels, hidden, 1)
        self.phi = nn.Conv2d(channels, hidden, 1, bias=False)
        self.g = nn.Conv2d(channels, hidden, 1)
        self.out = nn.Conv2d(hidden, channels, 1, bias=False)
        self.norm = nn.BatchNorm2d(channels)
        nn.init.zeros_(self.norm.weight)

    def forward(self, x: Tensor) -> Tensor:
        batch, height, width = x.shape[0], x.shape[2], x.shape[3]
        theta = self.theta(x).flatten(2)  # (B, h, HW)
        phi = self.phi(x).flatten(2)
        g = self.g(x).flatten(2)
        affinity = torch.softmax(torch.bmm(theta.transpose(1, 2), phi), dim=-1)  # (B, HW, HW)
        response = torch.bmm(g, affinity.transpose(1, 2))  # (B, h, HW)
        response = response.reshape(batch, -1, height, width)
        return x + self.norm(self.out(response))
