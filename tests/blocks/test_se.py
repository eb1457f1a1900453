"""SE block: parameter count, a hand-written reference, and agreement with timm's SEModule."""

import pytest
import torch
from timm.layers import SEModule

import attn_blocks
from attn_blocks.se import SqueezeExcite

REDUCTIONS = attn_blocks.info("se").param("reduction").search


@pytest.mark.parametrize("channels", [3, 16, 100])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_parameter_count(channels, reduction):
    hidden = max(1, channels // reduction)
    block = attn_blocks.create("se", channels, reduction=reduction)
    assert block.hidden_channels == hidden
    expected = 2 * channels * hidden + hidden + channels
    assert sum(p.numel() for p in block.parameters()) == expected


def test_hidden_width_floors_and_never_reaches_zero():
    assert attn_blocks.create("se", 100, reduction=16).hidden_channels == 6
    assert attn_blocks.create("se", 3, reduction=32).hidden_channels == 1


@pytest.mark.parametrize("hw", [(1, 1), (5, 7)])
def test_matches_hand_written_gate_float64(hw):
    block = attn_blocks.create("se", 12, reduction=4).double()
    x = torch.randn(3, 12, *hw, dtype=torch.float64)
    w1 = block.fc1.weight.flatten(1)  # (h, C)
    w2 = block.fc2.weight.flatten(1)  # (C, h)
    squeezed = x.sum(dim=(2, 3)) / (hw[0] * hw[1])
    hidden = torch.clamp(squeezed @ w1.T + block.fc1.bias, min=0.0)
    gate = 1.0 / (1.0 + torch.exp(-(hidden @ w2.T + block.fc2.bias)))
    expected = x * gate[:, :, None, None]
    torch.testing.assert_close(block(x), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("channels", "reduction"), [(16, 4), (64, 16), (100, 8), (3, 16)])
def test_agrees_with_timm_semodule(channels, reduction):
    ours = attn_blocks.create("se", channels, reduction=reduction).double()
    theirs = SEModule(channels, rd_channels=ours.hidden_channels).double()
    theirs.load_state_dict(ours.state_dict())  # same names and shapes: fc1/fc2 1x1 convs
    x = torch.randn(2, channels, 6, 5, dtype=torch.float64)
    torch.testing.assert_close(ours(x), theirs(x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("reduction", [0, -2, 2.0, True])
def test_invalid_reduction_rejected_by_constructor(reduction):
    with pytest.raises(ValueError, match=r"block 'se': parameter reduction=.*an int >= 1"):
        SqueezeExcite(16, reduction=reduction)
