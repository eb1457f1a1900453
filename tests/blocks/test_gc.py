"""Global context block: parameter count, identity at init, float64 reference, timm agreement."""

import pytest
import torch
from timm.layers import GlobalContext as TimmGlobalContext

import attn_blocks
from attn_blocks.gc import GlobalContext, gc_hidden_channels

REDUCTIONS = attn_blocks.info("gc").param("reduction").search


@pytest.mark.parametrize("channels", [3, 16, 100])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_parameter_count(channels, reduction):
    h = max(2, channels // reduction)
    # bias-free scoring conv + fc1 (C -> h) + LayerNorm(h) + fc2 (h -> C)
    expected = channels + channels * h + h + 2 * h + h * channels + channels
    block = attn_blocks.create("gc", channels, reduction=reduction)
    assert sum(p.numel() for p in block.parameters()) == expected


@pytest.mark.parametrize(
    ("channels", "reduction", "hidden"), [(16, 16, 2), (3, 4, 2), (256, 16, 16)]
)
def test_hidden_width_never_below_two(channels, reduction, hidden):
    assert gc_hidden_channels(channels, reduction) == hidden


def test_identity_at_init():
    block = GlobalContext(32).train()
    x = torch.randn(2, 32, 6, 5)
    torch.testing.assert_close(block(x), x, rtol=0, atol=0)


def _randomise(block: GlobalContext) -> None:
    with torch.no_grad():
        for p in block.parameters():
            p.normal_(0.0, 0.5)


def test_matches_float64_paper_equations():
    """z_i = x_i + W_v2 ReLU(LN(W_v1 sum_j softmax_j(W_k x_j) x_j)), Eq. 3 of the paper."""
    torch.manual_seed(5)
    channels = 12
    block = GlobalContext(channels, reduction=4).double()
    _randomise(block)
    x = torch.randn(2, channels, 4, 3, dtype=torch.float64)
    positions = x.flatten(2).transpose(1, 2)  # (B, HW, C)
    scores = positions @ block.conv_attn.weight.view(channels)  # (B, HW)
    context = (torch.softmax(scores, dim=1).unsqueeze(-1) * positions).sum(dim=1)  # (B, C)
    hidden = context @ block.fc1.weight.flatten(1).T + block.fc1.bias
    mean = hidden.mean(dim=1, keepdim=True)
    var = hidden.var(dim=1, unbiased=False, keepdim=True)
    normed = (hidden - mean) / torch.sqrt(var + 1e-5)
    normed = normed * block.norm.weight.flatten() + block.norm.bias.flatten()
    transform = torch.relu(normed) @ block.fc2.weight.flatten(1).T + block.fc2.bias
    expected = x + transform[:, :, None, None]
    torch.testing.assert_close(block(x), expected)


def test_matches_timm_additive_global_context():
    torch.manual_seed(6)
    channels, reduction = 32, 4
    hidden = gc_hidden_channels(channels, reduction)
    block = GlobalContext(channels, reduction)
    _randomise(block)
    ref = TimmGlobalContext(channels, fuse_add=True, fuse_scale=False, rd_channels=hidden)
    with torch.no_grad():
        ref.conv_attn.weight.copy_(block.conv_attn.weight)
        # timm's scoring conv has a bias; leave it random: softmax over positions cancels it.
        ref.conv_attn.bias.normal_(0.0, 1.0)
        ref.mlp_add.fc1.load_state_dict(block.fc1.state_dict())
        ref.mlp_add.fc2.load_state_dict(block.fc2.state_dict())
        ref.mlp_add.norm.weight.copy_(block.norm.weight.flatten())
        ref.mlp_add.norm.bias.copy_(block.norm.bias.flatten())
    ref.mlp_add.norm.eps = block.norm.eps  # timm's LayerNorm2d defaults to 1e-6
    x = torch.randn(3, channels, 7, 5)
    torch.testing.assert_close(block(x), ref(x))
