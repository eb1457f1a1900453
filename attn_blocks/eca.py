"""Efficient Channel Attention (Wang et al., CVPR 2020)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from .params import CHANNELS, ParamSpec, check_odd_int, float_param, validate_params
from .registry import register

ADAPTIVE = "adaptive"

GAMMA_PARAM = float_param("gamma", 2.0, "gamma of the adaptive kernel-size rule")
BETA_PARAM = float_param("beta", 1.0, "beta (b) of the adaptive kernel-size rule")


def eca_kernel_size(channels: int, gamma: float = 2.0, beta: float = 1.0) -> int:
    """The paper's adaptive kernel size: ``t = int(|(log2(C) + beta) / gamma|)``, ``k = t`` if
    ``t`` is odd else ``t + 1``.

    With the defaults this gives 3, 5, 5, 5, 5, 7 for C = 64 ... 2048. Channels below 8 give
    ``k = 1`` (t is 0 or 1); the result is never below 1. timm clamps ``k`` to at least 3,
    which only differs for C < 8.
    """
    validate_params(
        "eca_kernel_size",
        (CHANNELS, GAMMA_PARAM, BETA_PARAM),
        {"channels": channels, "gamma": gamma, "beta": beta},
        kind="argument",
    )
    t = int(abs((math.log2(channels) + beta) / gamma))
    return t if t % 2 == 1 else t + 1


def _check_kernel_size(value: Any) -> str | None:
    return None if isinstance(value, str) and value == ADAPTIVE else check_odd_int(value)


KERNEL_SIZE_PARAM = ParamSpec(
    name="kernel_size",
    default=ADAPTIVE,
    allowed=(
        f'an odd int >= 1, so that the kernel is centred on each channel, or "{ADAPTIVE}" '
        "(k = eca_kernel_size(channels, gamma, beta))"
    ),
    check=_check_kernel_size,
    search=(3, 5, 7, ADAPTIVE),
    doc="size k of the 1D convolution across channels",
)


@register(
    "eca",
    family="channel",
    paper="Wang et al., ECA-Net: Efficient Channel Attention for Deep CNNs, CVPR 2020",
    params=(KERNEL_SIZE_PARAM, GAMMA_PARAM, BETA_PARAM),
    notes='kernel_size="adaptive" follows the paper rule (k=1 for C < 8; timm clamps to >= 3)',
)
class EfficientChannelAttention(nn.Module):
    """ECA: a channel gate from a 1D convolution over the pooled channel descriptor.

    Algorithm: ``s = mean_hw(x)`` (B, C), viewed as a length-C sequence; ``g = sigmoid(conv1d(s))``
    with one k-tap kernel shared by all channels (zero padding ``(k - 1) // 2``, no bias);
    ``out = x * g``. Each channel's gate sees its k nearest channels, with no dimension reduction.
    Paper: Wang et al., "ECA-Net: Efficient Channel Attention for Deep CNNs", CVPR 2020.

    Args:
        channels: number of input channels C.
        kernel_size: an odd int >= 1, or ``"adaptive"`` for the paper's rule
            :func:`eca_kernel_size` (3, 5, 5, 5, 5, 7 for C = 64 ... 2048).
        gamma, beta: constants of the adaptive rule (paper: 2 and 1); unused for an int kernel.

    Small C: the adaptive rule gives ``k = 1`` for C < 8 (one weight scaling every channel's
    descriptor; timm would use 3). A kernel wider than C is valid: zero padding keeps the output
    length C, and the taps that fall outside the channel axis only see zeros.
    No hidden width (no reduction). Batch size 1 works in training mode.
    Parameters: ``k``. The conv is named ``conv`` as in ``timm.layers.EcaModule``.
    """

    def __init__(
        self,
        channels: int,
        kernel_size: int | str = ADAPTIVE,
        gamma: float = 2.0,
        beta: float = 1.0,
    ) -> None:
        super().__init__()
        if kernel_size == ADAPTIVE:
            kernel_size = eca_kernel_size(channels, gamma, beta)
        self.channels = channels
        self.kernel_size = int(kernel_size)
        self.conv = nn.Conv1d(
            1, 1, kernel_size=self.kernel_size, padding=(self.kernel_size - 1) // 2, bias=False
        )

    def forward(self, x: Tensor) -> Tensor:
        descriptor = x.mean(dim=(2, 3)).unsqueeze(1)  # (B, 1, C): channels as a sequence
        gate = torch.sigmoid(self.conv(descriptor))
        return x * gate.transpose(1, 2).unsqueeze(-1)  # (B, C, 1, 1)
