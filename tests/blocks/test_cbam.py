"""CBAM: parameter count, agreement with timm's CbamModule, a float64 reference, failure paths."""

import pytest
import torch
import torch.nn.functional as F
from timm.layers.cbam import CbamModule  # not re-exported by timm.layers in timm 1.0.31

import attn_blocks
from attn_blocks.cbam import CBAM

REDUCTIONS = attn_blocks.info("cbam").param("reduction").search


def _hidden(channels: int, reduction: int) -> int:
    return max(1, channels // reduction)


@pytest.mark.parametrize("channels", [3, 16, 100])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("kernel", [3, 7])
def test_parameter_count(channels, reduction, kernel):
    h = _hidden(channels, reduction)
    # shared MLP with biases + bias-free k x k conv on 2 maps + BatchNorm(1)
    expected = 2 * channels * h + h + channels + 2 * kernel * kernel + 2
    block = attn_blocks.create("cbam", channels, reduction=reduction, spatial_kernel=kernel)
    assert sum(p.numel() for p in block.parameters()) == expected


def _randomise(block: torch.nn.Module) -> None:
    with torch.no_grad():
        for p in block.parameters():
            p.normal_(0.0, 0.5)
        block.spatial_norm.running_mean.fill_(0.3)
        block.spatial_norm.running_var.fill_(1.7)


def _timm_copy(block: CBAM, channels: int, hidden: int, mlp_bias: bool) -> CbamModule:
    ref = CbamModule(channels, rd_channels=hidden, spatial_kernel_size=7, mlp_bias=mlp_bias)
    with torch.no_grad():
        ref.channel.fc1.weight.copy_(block.fc1.weight[:, :, None, None])
        ref.channel.fc2.weight.copy_(block.fc2.weight[:, :, None, None])
        if mlp_bias:
            ref.channel.fc1.bias.copy_(block.fc1.bias)
            ref.channel.fc2.bias.copy_(block.fc2.bias)
        ref.spatial.conv.conv.weight.copy_(block.spatial_conv.weight)
        ref.spatial.conv.bn.weight.copy_(block.spatial_norm.weight)
        ref.spatial.conv.bn.bias.copy_(block.spatial_norm.bias)
        ref.spatial.conv.bn.running_mean.copy_(block.spatial_norm.running_mean)
        ref.spatial.conv.bn.running_var.copy_(block.spatial_norm.running_var)
    return ref


@pytest.mark.parametrize("train", [True, False])
def test_matches_timm_with_mlp_bias(train):
    torch.manual_seed(0)
    channels, reduction = 24, 4
    block = CBAM(channels, reduction=reduction)
    _randomise(block)
    ref = _timm_copy(block, channels, _hidden(channels, reduction), mlp_bias=True)
    block.train(train)
    ref.train(train)
    x = torch.randn(3, channels, 6, 9)
    torch.testing.assert_close(block(x), ref(x))


def test_matches_timm_default_when_mlp_biases_are_zero():
    """timm defaults to a bias-free MLP; with our biases zeroed the rest is the same block."""
    torch.manual_seed(1)
    channels = 32
    block = CBAM(channels).eval()
    _randomise(block)
    with torch.no_grad():
        block.fc1.bias.zero_()
        block.fc2.bias.zero_()
    ref = _timm_copy(block, channels, _hidden(channels, 16), mlp_bias=False).eval()
    x = torch.randn(2, channels, 7, 7)
    torch.testing.assert_close(block(x), ref(x))


def test_matches_float64_paper_equations():
    """Eq. 2 (shared MLP on avg and max descriptors) then Eq. 3 (conv on [avg; max] maps + BN)."""
    torch.manual_seed(2)
    channels, kernel = 10, 5
    block = CBAM(channels, reduction=4, spatial_kernel=kernel).double().eval()
    _randomise(block)
    x = torch.randn(2, channels, 5, 6, dtype=torch.float64)

    def mlp(v):
        hidden = torch.relu(v @ block.fc1.weight.T + block.fc1.bias)
        return hidden @ block.fc2.weight.T + block.fc2.bias

    channel_gate = torch.sigmoid(mlp(x.mean(dim=(2, 3))) + mlp(x.amax(dim=(2, 3))))
    refined = x * channel_gate[:, :, None, None]
    maps = torch.stack([refined.mean(dim=1), refined.amax(dim=1)], dim=1)
    conv = F.conv2d(maps, block.spatial_conv.weight, padding=kernel // 2)
    bn = block.spatial_norm
    normed = (conv - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias
    expected = refined * torch.sigmoid(normed)
    torch.testing.assert_close(block(x), expected)


@pytest.mark.parametrize("kernel", [0, 4, -3, 2.0, True])
def test_invalid_spatial_kernel(kernel):
    with pytest.raises(ValueError, match=r"block 'cbam': parameter spatial_kernel=.*odd int") as c:
        attn_blocks.create("cbam", 16, spatial_kernel=kernel)
    with pytest.raises(ValueError) as direct:
        CBAM(16, spatial_kernel=kernel)
    assert str(direct.value) == str(c.value)


def test_training_on_one_pixel_at_batch_one_raises():
    """The documented limit of the spatial BatchNorm: one value per channel in train mode."""
    block = CBAM(16).train()
    x = torch.randn(1, 16, 1, 1)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        block(x)
    assert torch.isfinite(block.eval()(x)).all()
