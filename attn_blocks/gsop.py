"""GSoP channel attention: global second-order pooling (Gao et al., CVPR 2019, GSoP-Net1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .registry import reduction_param, register

#: Covariance width used by the paper at every stage (ResNet-50, C = 256 ... 2048).
PAPER_COVARIANCE_DIM = 128


def gsop_covariance_dim(channels: int, reduction: int) -> int:
    """Covariance width ``d = min(128, max(2, channels // reduction))``.

    128 is the paper's width; below it d follows C / r like any bottleneck. The floor is 2, not
    1: a 1x1 "covariance" carries no cross-channel correlation, and its row-wise BatchNorm would
    have a single value per row at batch 1.
    """
    return min(PAPER_COVARIANCE_DIM, max(2, channels // reduction))


def covariance_pool(features: Tensor) -> Tensor:
    """``(B, d, H, W) -> (B, d, d)`` covariance of the d channels over the H*W positions.

    Normalised by H*W (the biased estimate of the authors' MPN-COV code). The mean is subtracted
    directly, so no (HW x HW) centring matrix is built.
    """
    flat = features.flatten(2)
    centred = flat - flat.mean(dim=2, keepdim=True)
    return torch.bmm(centred, centred.transpose(1, 2)) / flat.shape[2]


@register(
    "gsop",
    family="channel",
    paper="Gao et al., Global Second-order Pooling Convolutional Networks, CVPR 2019",
    params=(reduction_param(4),),
    train_batch1=True,
    notes="covariance width d = min(128, max(2, C // reduction)); training needs B*H*W > 1",
)
class GSoPChannelAttention(nn.Module):
    """GSoP-Net1 channel attention: a channel gate from the covariance of the channels.

    Algorithm (the authors' ``chan_att``): ``z = ReLU(BN(conv1x1_{C->d}(ReLU(x))))``;
    ``S = cov(z)``, the d x d covariance over the H*W positions (normalised by H*W);
    row-wise normalisation by BatchNorm over the d rows of S (each row is one BN channel);
    row-wise convolution ``Conv2d(d, 4d, kernel (d, 1), groups=d)`` turns each row into 4 values;
    ``gate = sigmoid(conv1x1_{4d->C}(.))``; ``out = x * gate``.
    Paper: Gao et al., "Global Second-order Pooling Convolutional Networks", CVPR 2019.

    Choices: as in the authors' code there is no activation between the row-wise conv and the
    final 1x1 conv, and the input is ReLU-ed before the reduction (the block sits after the
    last BN of a residual branch, before the ReLU). The reduction conv has no bias (its BN
    cancels it; the authors' conv has a redundant one) and always stride 1 (the authors use
    stride 2 in the first stage to save compute). The row BatchNorm is the covariance
    normalisation; with its epsilon (1e-5) all-zero features give a finite gate. No division by
    a trace or norm takes place, so nothing else can produce NaN.

    Args:
        channels: number of input channels C.
        reduction: r in the covariance width ``d = min(128, max(2, C // r))``. The paper fixes
            d = 128 for C = 256 ... 2048; the default r = 4 reproduces it for C >= 512 and gives
            d = 64 at C = 256 (r = 2 would reproduce the paper exactly for every C >= 256).

    Batch size 1: both BatchNorms normalise over more than one value (B*H*W positions; the d
    entries of each row), so training at batch 1 works unless the map is 1x1, where a
    ``ValueError`` is raised. Eval mode works everywhere.
    Parameters: ``C*d`` (reduction) + ``2d`` + ``2d`` (two BNs) + ``4d^2 + 4d`` (row-wise conv)
    + ``4d*C + C`` (expansion) = ``5Cd + 4d^2 + 8d + C``. Extra compute: ``O(d^2 HW)``.
    """

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        dim = gsop_covariance_dim(channels, reduction)
        self.channels = channels
        self.dim = dim
        self.reduce = nn.Conv2d(channels, dim, kernel_size=1, bias=False)
        self.reduce_bn = nn.BatchNorm2d(dim)
        self.row_bn = nn.BatchNorm2d(dim)
        self.row_conv = nn.Conv2d(dim, 4 * dim, kernel_size=(dim, 1), groups=dim)
        self.expand = nn.Conv2d(4 * dim, channels, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        if self.training and x.shape[0] * x.shape[2] * x.shape[3] == 1:
            raise ValueError(
                "gsop: training on a single 1x1 map is not possible: its BatchNorm after the "
                "reduction needs more than one position; use batch size >= 2 or eval mode"
            )
        reduced = F.relu(self.reduce_bn(self.reduce(F.relu(x))))
        covariance = covariance_pool(reduced).unsqueeze(-1)  # (B, d, d, 1): row i = channel i
        gate = torch.sigmoid(self.expand(self.row_conv(self.row_bn(covariance))))
        return x * gate
