"""Style-based Recalibration Module (Lee et al., ICCV 2019)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .registry import register


@register(
    "srm",
    family="channel",
    paper="Lee et al., SRM: A Style-based Recalibration Module for CNNs, ICCV 2019",
    train_batch1=False,
    notes="BatchNorm over (B, C, 1, 1): training needs batch >= 2; 1x1 maps use std = sqrt(eps)",
)
class StyleRecalibration(nn.Module):
    """SRM: channel gate from each channel's style (mean and standard deviation).

    Algorithm: style pooling ``t_c = [mean_hw(x_c), std_hw(x_c)]``; channel-wise fully connected
    ``z_c = w_c0 * mean_c + w_c1 * std_c`` (a (C, 2) weight, no bias); ``g = sigmoid(BN(z))``
    with BatchNorm over the C channels; ``out = x * g``.
    Paper: Lee et al., "SRM: A Style-based Recalibration Module for CNNs", ICCV 2019.

    ``std = sqrt(unbiased variance + 1e-5)``. The unbiased variance divides by ``H*W - 1``,
    which is undefined for a 1x1 map; there we divide by 1 instead, so the variance is 0 and
    ``std = sqrt(1e-5)`` (no NaN). The (C, 2) weight ``cfc`` is zero-initialised as in the
    authors' code, so the gate starts at 0.5 everywhere. The authors' code adds the same 1e-5
    under the square root; it keeps the gradient finite for constant channels.

    Args:
        channels: number of input channels C.

    No hidden width (no reduction). Batch size 1: BatchNorm in training mode needs more than one
    value per channel, so training at batch 1 raises ``ValueError`` (use batch >= 2 or eval mode);
    eval mode works at any batch size.
    Parameters: ``2*C`` (cfc) + ``2*C`` (BN affine); BN also keeps 2C running statistics.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.eps = 1e-5
        self.cfc = nn.Parameter(torch.zeros(channels, 2))
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x: Tensor) -> Tensor:
        if self.training and x.shape[0] == 1:
            raise ValueError(
                "srm: training at batch size 1 is not possible: its BatchNorm over (B, C, 1, 1) "
                "needs more than one value per channel; use batch size >= 2 or eval mode"
            )
        flat = x.flatten(2)  # (B, C, HW)
        mean = flat.mean(dim=2)
        squared_deviations = (flat - mean.unsqueeze(2)).pow(2).sum(dim=2)
        # Degrees of freedom H*W - 1, clamped to 1 for 1x1 maps. Computed as a tensor so that a
        # traced (ONNX) export does not freeze the branch taken at the export size.
        dof = (torch.ones_like(flat[0, 0]).sum() - 1.0).clamp(min=1.0)
        std = (squared_deviations / dof + self.eps).sqrt()
        style = torch.stack((mean, std), dim=2)  # (B, C, 2)
        z = (style * self.cfc).sum(dim=2)  # channel-wise FC: (B, C)
        gate = torch.sigmoid(self.bn(z.unsqueeze(-1).unsqueeze(-1)))
        return x * gate
