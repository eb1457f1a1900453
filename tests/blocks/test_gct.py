"""GCT block: identity at init, parameter count, and a float64 reference of the paper's formulas."""

import numpy as np
import pytest
import torch

import attn_blocks

EPS = 1e-5


@pytest.mark.parametrize("channels", [3, 16, 100])
def test_parameter_count(channels):
    block = attn_blocks.create("gct", channels)
    assert sum(p.numel() for p in block.parameters()) == 3 * channels


@pytest.mark.parametrize("hw", [(1, 1), (6, 5)])
def test_identity_at_init(hw):
    block = attn_blocks.create("gct", 8).train()
    assert torch.equal(block.alpha, torch.ones_like(block.alpha))
    x = torch.randn(2, 8, *hw)
    assert torch.equal(block(x), x)


def _numpy_reference(x, alpha, gamma, beta):
    """The paper's l2 GCT written out per sample and channel in numpy."""
    out = np.empty_like(x)
    for b in range(x.shape[0]):
        s = np.array([a * np.sqrt(np.sum(x[b, c] ** 2) + EPS) for c, a in enumerate(alpha)])
        norm = gamma / np.sqrt(np.mean(s**2) + EPS)
        gate = 1.0 + np.tanh(s * norm + beta)
        out[b] = x[b] * gate[:, None, None]
    return out


@pytest.mark.parametrize("hw", [(1, 1), (4, 7)])
def test_matches_float64_reference_with_random_parameters(hw):
    channels = 6
    block = attn_blocks.create("gct", channels).double()
    with torch.no_grad():
        block.alpha.uniform_(0.5, 2.0)
        block.gamma.normal_(0.0, 1.0)
        block.beta.normal_(0.0, 1.0)
    x = torch.randn(3, channels, *hw, dtype=torch.float64)
    expected = _numpy_reference(
        x.numpy(),
        block.alpha.detach().flatten().numpy(),
        block.gamma.detach().flatten().numpy(),
        block.beta.detach().flatten().numpy(),
    )
    torch.testing.assert_close(block(x), torch.from_numpy(expected), rtol=1e-12, atol=1e-12)


def test_samples_are_gated_independently():
    block = attn_blocks.create("gct", 8).train()
    with torch.no_grad():
        block.gamma.normal_(0.0, 1.0)
        block.beta.normal_(0.0, 1.0)
    x = torch.randn(3, 8, 5, 5)
    torch.testing.assert_close(block(x)[1:2], block(x[1:2]))
