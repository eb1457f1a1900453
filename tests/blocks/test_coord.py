"""Coordinate attention: parameter count, agreement with timm's CoordAttn, hidden-width rule."""

import pytest
import torch
from timm.layers.coord_attn import CoordAttn  # not re-exported by timm.layers in timm 1.0.31

import attn_blocks
from attn_blocks.coord import CoordAttention, coord_hidden_channels

REDUCTIONS = attn_blocks.info("coord").param("reduction").search


@pytest.mark.parametrize("channels", [3, 16, 100])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_parameter_count(channels, reduction):
    mip = max(8, channels // reduction)
    # shared 1x1 conv (no bias) + BN(mip) + two 1x1 convs mip -> C with biases
    expected = channels * mip + 2 * mip + 2 * (mip * channels + channels)
    block = attn_blocks.create("coord", channels, reduction=reduction)
    assert sum(p.numel() for p in block.parameters()) == expected


@pytest.mark.parametrize(
    ("channels", "reduction", "mip"), [(3, 32, 8), (256, 32, 8), (512, 32, 16), (100, 4, 25)]
)
def test_hidden_width_is_the_papers(channels, reduction, mip):
    assert coord_hidden_channels(channels, reduction) == mip
    assert CoordAttention(channels, reduction).conv_shared.out_channels == mip


def _timm_copy(block: CoordAttention, channels: int, mip: int) -> CoordAttn:
    ref = CoordAttn(channels, rd_channels=mip, bias=True)
    with torch.no_grad():
        ref.conv1.weight.copy_(block.conv_shared.weight)
        ref.conv1.bias.zero_()
        for ours, theirs in ((block.conv_h, ref.conv_h), (block.conv_w, ref.conv_w)):
            theirs.weight.copy_(ours.weight)
            theirs.bias.copy_(ours.bias)
        ref.bn1.load_state_dict(block.norm.state_dict())
    return ref


@pytest.mark.parametrize("train", [True, False])
def test_matches_timm_coord_attn(train):
    torch.manual_seed(4)
    channels, reduction = 40, 4
    block = CoordAttention(channels, reduction)
    with torch.no_grad():
        for p in block.parameters():
            p.normal_(0.0, 0.3)
        block.norm.running_mean.uniform_(-0.3, 0.3)
        block.norm.running_var.uniform_(0.5, 1.5)
    ref = _timm_copy(block, channels, coord_hidden_channels(channels, reduction))
    block.train(train)
    ref.train(train)
    x = torch.randn(2, channels, 5, 8)  # H != W catches a swapped gate
    torch.testing.assert_close(block(x), ref(x))


def test_gates_depend_on_row_and_column_only():
    """Each output is x * a_h[row] * a_w[col]: a rank-one gate per channel."""
    block = CoordAttention(8).eval()
    x = torch.rand(1, 8, 6, 4) + 0.5
    gate = block(x) / x
    row_col = gate[:, :, :, :1] * gate[:, :, :1, :] / gate[:, :, :1, :1]
    torch.testing.assert_close(gate, row_col)
