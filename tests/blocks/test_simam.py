"""SimAM: no parameters, the paper's closed-form minimal energy, the 1x1 guard, bad lambdas."""

import math

import pytest
import torch

import attn_blocks
from attn_blocks.simam import SimAM


@pytest.mark.parametrize("channels", [3, 16, 100])
def test_has_no_parameters(channels):
    block = attn_blocks.create("simam", channels)
    assert sum(p.numel() for p in block.parameters()) == 0
    assert list(block.buffers()) == []


def _closed_form_output(x: torch.Tensor, lam: float) -> torch.Tensor:
    """Eq. 6 of the paper: e_t* = 4 (var + lambda) / ((t - mu)^2 + 2 var + 2 lambda); the
    refined feature is sigmoid(1 / E) * X. var divides by M - 1, as the authors' code."""
    out = torch.empty_like(x)
    for b in range(x.shape[0]):
        for c in range(x.shape[1]):
            values = x[b, c].flatten().tolist()
            m = len(values)
            mu = sum(values) / m
            var = sum((v - mu) ** 2 for v in values) / max(m - 1, 1)
            for k, t in enumerate(values):
                energy = 4 * (var + lam) / ((t - mu) ** 2 + 2 * var + 2 * lam)
                importance = 1 / energy
                out[b, c].view(-1)[k] = t / (1 + math.exp(-importance))
    return out


@pytest.mark.parametrize("lam", [1e-4, 0.5])
@pytest.mark.parametrize("hw", [(4, 5), (1, 3)])
def test_matches_closed_form_minimal_energy(lam, hw):
    x = torch.randn(2, 3, *hw, dtype=torch.float64) * 2.0
    block = SimAM(3, e_lambda=lam)
    torch.testing.assert_close(block(x), _closed_form_output(x, lam))


def test_single_pixel_map_gets_the_constant_gate():
    """HW = 1: the deviation is 0 and n = max(HW - 1, 1) = 1, so every gate is sigmoid(0.5)."""
    x = torch.randn(4, 7, 1, 1)
    torch.testing.assert_close(SimAM(7)(x), x * torch.sigmoid(torch.tensor(0.5)))


def test_constant_map_is_finite():
    x = torch.full((1, 2, 6, 6), 3.0)
    torch.testing.assert_close(SimAM(2)(x), x * torch.sigmoid(torch.tensor(0.5)))


def test_outlier_gets_the_largest_gate():
    x = torch.zeros(1, 1, 5, 5)
    x[0, 0, 2, 3] = 4.0
    gate = SimAM(1)(x + 1.0) / (x + 1.0)
    assert gate.flatten().argmax().item() == 2 * 5 + 3


@pytest.mark.parametrize("lam", [0, -1e-4, float("inf"), float("nan"), True, "1e-4"])
def test_invalid_lambda(lam):
    with pytest.raises(ValueError, match="block 'simam': parameter e_lambda=") as created:
        attn_blocks.create("simam", 8, e_lambda=lam)
    with pytest.raises(ValueError) as direct:
        SimAM(8, e_lambda=lam)
    assert str(direct.value) == str(created.value)
