"""Non-local block: parameter count, identity at init, float64 reference, timm agreement."""

import pytest
import torch
from timm.layers import NonLocalAttn

import attn_blocks
from attn_blocks.non_local import NonLocal

REDUCTIONS = attn_blocks.info("non_local").param("reduction").search


@pytest.mark.parametrize("channels", [3, 16, 100])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_parameter_count(channels, reduction):
    h = max(1, channels // reduction)
    # theta (bias) + phi (no bias) + g (bias) + output conv (no bias) + BN(C)
    expected = (channels * h + h) + channels * h + (channels * h + h) + h * channels + 2 * channels
    block = attn_blocks.create("non_local", channels, reduction=reduction)
    assert sum(p.numel() for p in block.parameters()) == expected


def test_hidden_width_never_zero():
    assert NonLocal(3, reduction=8).theta.out_channels == 1


@pytest.mark.parametrize("train", [True, False])
def test_identity_at_init(train):
    block = NonLocal(16).train(train)
    x = torch.randn(2, 16, 5, 4)
    torch.testing.assert_close(block(x), x, rtol=0, atol=0)


def _randomise(block: NonLocal) -> None:
    with torch.no_grad():
        for p in block.parameters():
            p.normal_(0.0, 0.4)
        block.norm.running_mean.uniform_(-0.3, 0.3)
        block.norm.running_var.uniform_(0.5, 1.5)


def test_matches_float64_hand_computation():
    """y_i = sum_j softmax_j(theta_i . phi_j) g_j, z = x + BN(W_z y), position by position."""
    torch.manual_seed(7)
    channels, height, width = 6, 3, 4
    block = NonLocal(channels, reduction=2).double().eval()
    _randomise(block)
    x = torch.randn(2, channels, height, width, dtype=torch.float64)

    def embed(conv, v):
        out = conv.weight.flatten(1) @ v
        return out if conv.bias is None else out + conv.bias

    bn = block.norm
    expected = torch.empty_like(x)
    for b in range(x.shape[0]):
        positions = x[b].flatten(1)  # (C, HW)
        for i in range(height * width):
            theta_i = embed(block.theta, positions[:, i])
            logits = torch.stack(
                [theta_i @ embed(block.phi, positions[:, j]) for j in range(height * width)]
            )
            weights = torch.exp(logits - logits.max())
            weights = weights / weights.sum()
            y_i = sum(weights[j] * embed(block.g, positions[:, j]) for j in range(height * width))
            w_y = block.out.weight.flatten(1) @ y_i
            normed = (w_y - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps)
            z_i = positions[:, i] + normed * bn.weight + bn.bias
            expected[b, :, i // width, i % width] = z_i
    torch.testing.assert_close(block(x), expected)


def _timm_copy(block: NonLocal, channels: int, hidden: int, use_scale: bool) -> NonLocalAttn:
    ref = NonLocalAttn(channels, use_scale=use_scale, rd_channels=hidden)
    with torch.no_grad():
        ref.t.load_state_dict(block.theta.state_dict())
        ref.p.weight.copy_(block.phi.weight)
        ref.p.bias.normal_(0.0, 1.0)  # cancelled by the softmax over positions
        ref.g.load_state_dict(block.g.state_dict())
        ref.z.weight.copy_(block.out.weight)
        ref.z.bias.zero_()
        ref.norm.load_state_dict(block.norm.state_dict())
    return ref


@pytest.mark.parametrize("train", [True, False])
def test_matches_timm_without_scale(train):
    """timm's NonLocalAttn with use_scale=False is the paper's embedded Gaussian."""
    torch.manual_seed(8)
    channels = 16
    block = NonLocal(channels, reduction=4)
    _randomise(block)
    ref = _timm_copy(block, channels, 4, use_scale=False)
    block.train(train)
    ref.train(train)
    x = torch.randn(2, channels, 5, 6)
    torch.testing.assert_close(block(x), ref(x))


def test_timm_default_scale_equals_scaling_theta():
    """timm's default multiplies the affinities by C ** -0.5; folding it into theta matches."""
    torch.manual_seed(9)
    channels = 16
    block = NonLocal(channels, reduction=4).eval()
    _randomise(block)
    ref = _timm_copy(block, channels, 4, use_scale=True).eval()
    x = torch.randn(2, channels, 4, 4)
    assert not torch.allclose(block(x), ref(x))
    with torch.no_grad():
        block.theta.weight.mul_(channels**-0.5)
        block.theta.bias.mul_(channels**-0.5)
    torch.testing.assert_close(block(x), ref(x))
