"""SimAM: a parameter-free 3D attention from an energy function (Yang et al., ICML 2021)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .params import float_param
from .registry import register

E_LAMBDA_PARAM = float_param(
    "e_lambda",
    1e-4,
    "regulariser lambda of the energy function; keeps the gate finite on constant maps",
    allowed="a finite number > 0 (the paper uses 1e-4)",
)


@register(
    "simam",
    family="hybrid",
    paper="Yang et al., SimAM: A Simple, Parameter-Free Attention Module for CNNs, ICML 2021",
    params=(E_LAMBDA_PARAM,),
    notes="parameter-free; variance divides by max(HW - 1, 1)",
)
class SimAM(nn.Module):
    """SimAM: weight every activation by the inverse of its minimal energy.

    Per channel, with mu and var the spatial mean and variance, each activation t gets the
    importance ``1 / e_t* = (t - mu)^2 / (4 (var + lambda)) + 1/2`` (paper Eq. 6 inverted) and the
    output is ``x * sigmoid(1 / e*)``: a full (C x H x W) gate with no learned parameter.
    Yang et al., SimAM: A Simple, Parameter-Free Attention Module for CNNs, ICML 2021.

    Args:
        channels: input channels (only recorded; the block has no weights).
        e_lambda: the energy regulariser lambda > 0 (paper: 1e-4; not searched).

    Variance rule: ``var = sum (x - mu)^2 / n`` with ``n = HW - 1`` as in the official code; on a
    1x1 map ``HW - 1 = 0`` would give 0/0, so ``n = max(HW - 1, 1)``: the deviation is then 0 and
    every gate is ``sigmoid(0.5)``. Works at any batch size in train mode. Parameters: 0.
    """

    def __init__(self, channels: int, e_lambda: float = 1e-4) -> None:
        super().__init__()
        self.channels = channels
        self.e_lambda = float(e_lambda)

    def forward(self, x: Tensor) -> Tensor:
        squared_deviation = (x - x.mean(dim=(2, 3), keepdim=True)).pow(2)
        # The number of positions as a tensor, so that exported graphs keep it dynamic.
        positions = torch.ones_like(x[:1, :1]).sum()
        denominator = torch.clamp(positions - 1.0, min=1.0)
        variance = squared_deviation.sum(dim=(2, 3), keepdim=True) / denominator
        inverse_energy = squared_deviation / (4.0 * (variance + self.e_lambda)) + 0.5
        return x * torch.sigmoid(inverse_energy)

    def extra_repr(self) -> str:
        return f"e_lambda={self.e_lambda}"
