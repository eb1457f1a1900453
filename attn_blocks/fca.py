"""FcaNet multi-spectral channel attention (Qin et al., ICCV 2021)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .registry import reduced_channels, reduction_param, register

#: The paper's top-16 frequency pairs (u along H, v along W) on a 7x7 DCT grid, best first.
TOP16_U = (0, 0, 6, 0, 0, 1, 1, 4, 5, 1, 3, 0, 0, 0, 3, 2)
TOP16_V = (0, 1, 0, 5, 2, 0, 2, 0, 0, 6, 0, 4, 6, 3, 5, 2)


def spectral_groups(channels: int) -> Tensor:
    """Frequency slot of each channel: ``min(16, C)`` contiguous groups, sizes differing by <= 1.

    Group g gets ``C // G`` channels, plus one more for the first ``C % G`` groups (the split of
    ``torch.tensor_split``); for C % 16 == 0 this is the official equal split.
    """
    num_groups = min(len(TOP16_U), channels)
    base, extra = divmod(channels, num_groups)
    sizes = torch.tensor([base + 1] * extra + [base] * (num_groups - extra))
    return torch.repeat_interleave(torch.arange(num_groups), sizes)


def scaled_frequencies(
    u_ref: Tensor, v_ref: Tensor, height: int, width: int
) -> tuple[Tensor, Tensor]:
    """The frequency pair (u, v) each of the 16 slots uses on an ``height x width`` map.

    1. Each reference pair maps per axis to ``max(u * H // 7, min(u, H - 1))``: the official
       proportional scaling where the side is >= 7 (one-to-one there), and where it is < 7 the
       frequency itself when it exists, else the highest one (H - 1).
    2. Duplicates are dropped keeping the ranking; the list is completed with the unused
       frequencies of the H x W grid in order of increasing ``u + v``, then ``u``; when the grid
       has fewer than 16 frequencies the list repeats cyclically.
    Slot k takes entry k. For H, W >= 7 this is exactly the scaled top-16 list; smaller maps
    keep every frequency distinct whenever ``H * W >= 16``.

    Written with tensor ops on the actual size (no Python branch on it) so that TorchScript
    and ONNX exports with dynamic H and W follow the same rule.
    """
    slots = u_ref.shape[0]
    # 7: side of the reference DCT grid the top-16 pairs were ranked on.
    u_first = torch.maximum(u_ref * height // 7, torch.clamp(u_ref, max=height - 1))
    v_first = torch.maximum(v_ref * width // 7, torch.clamp(v_ref, max=width - 1))
    first_choice = u_first * width + v_first  # (S,) flat index into the H x W grid

    cells = torch.arange(height * width, device=u_ref.device)
    cell_u = cells // width
    cell_v = cells % width
    rank = torch.arange(slots, device=u_ref.device)
    hit = (first_choice.unsqueeze(1) == cells.unsqueeze(0)).long()  # (S, HW)
    # Best rank choosing each cell; `slots` where no slot chose it.
    best_rank = (hit * rank.unsqueeze(1) + (1 - hit) * slots).amin(dim=0)
    fill_order = slots + (cell_u + cell_v) * height + cell_u
    key = torch.where(best_rank < slots, best_rank, fill_order).float()
    # Pad so that top-k of 16 exists even when H * W < 16; padded entries are never selected.
    padding = torch.full((slots,), float("inf"), device=u_ref.device)
    order = torch.topk(torch.cat([key, padding]), slots, largest=False).indices
    chosen = order[rank % (height * width)]
    return chosen // width, chosen % width


def dct_basis(frequencies: Tensor, size: int, dtype: torch.dtype) -> Tensor:
    """Orthonormal DCT-II basis rows: ``(F,) -> (F, size)``.

    ``b_f(n) = sqrt((1 if f == 0 else 2) / N) * cos(pi * f * (n + 1/2) / N)``.
    """
    positions = torch.arange(size, device=frequencies.device).to(dtype)
    freq = frequencies.to(dtype).unsqueeze(1)
    norm = torch.sqrt((2.0 - (freq == 0).to(dtype)) / size)
    return norm * torch.cos(math.pi * freq * (positions + 0.5) / size)


@register(
    "fca",
    family="channel",
    paper="Qin et al., FcaNet: Frequency Channel Attention Networks, ICCV 2021",
    params=(reduction_param(16),),
    train_batch1=True,
    notes="top-16 DCT frequencies scaled to the actual map size; any C (groups of near-equal size)",
)
class MultiSpectralAttention(nn.Module):
    """FcaNet: SE whose squeeze is a multi-spectral 2D DCT instead of global average pooling.

    Algorithm: split the C channels into ``G = min(16, C)`` groups; group g is pooled with the
    2D DCT-II basis of its frequency pair, ``y_c = sum_hw x_c[h, w] B_u(h) B_v(w)``; then as SE,
    ``gate = sigmoid(FC_{h->C}(ReLU(FC_{C->h}(y))))`` (no biases) and ``out = x * gate``.
    Frequency (0, 0) is global average pooling times ``sqrt(H*W)``.
    Paper: Qin et al., "FcaNet: Frequency Channel Attention Networks", ICCV 2021 (the top-16
    frequency selection on a 7x7 grid).

    Choices: the DCT filters are built in ``forward`` for the actual H x W (the official code
    builds them for a fixed reference size per stage, taken from the channel count, and
    adaptive-average-pools other inputs to that size; only a reference size below 7 would
    collapse every frequency to DC there). Frequencies are scaled as ``u * H // 7`` (the official
    code uses ``u * (H // 7)``; equal when H is a multiple of 7); for sides below 7 and the
    handling of duplicates see :func:`scaled_frequencies`. Channel groups: see
    :func:`spectral_groups` (official code requires C % 16 == 0; C < 16 uses C groups of one
    channel with the C best frequencies).

    Args:
        channels: number of input channels C.
        reduction: r of the hidden width ``h = max(1, C // r)`` (official default 16).

    Batch size 1: no BatchNorm, works in training and eval mode.
    Parameters: ``2 * C * h`` (two bias-free FC layers); the DCT filters are not parameters.
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = reduced_channels(channels, reduction)
        self.channels = channels
        self.hidden = hidden
        self.register_buffer("u_ref", torch.tensor(TOP16_U), persistent=False)
        self.register_buffer("v_ref", torch.tensor(TOP16_V), persistent=False)
        self.register_buffer("channel_slot", spectral_groups(channels), persistent=False)
        self.fc = nn.Sequential(
            nn.Linear(channels, hidden, bias=False),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, channels, bias=False),
        )

    def forward(self, x: Tensor) -> Tensor:
        height, width = x.shape[2], x.shape[3]
        u, v = scaled_frequencies(self.u_ref, self.v_ref, height, width)
        basis_h = dct_basis(u, height, x.dtype)[self.channel_slot]  # (C, H)
        basis_w = dct_basis(v, width, x.dtype)[self.channel_slot]  # (C, W)
        pooled = ((x * basis_w.unsqueeze(1)).sum(dim=3) * basis_h).sum(dim=2)  # (B, C)
        gate = torch.sigmoid(self.fc(pooled))
        return x * gate.unsqueeze(-1).unsqueeze(-1)
