"""BAM: parameter count, float64 reference of the paper's equations, batch-1 failure path."""

import pytest
import torch
import torch.nn.functional as F

import attn_blocks
from attn_blocks.bam import BAM

REDUCTIONS = attn_blocks.info("bam").param("reduction").search


@pytest.mark.parametrize("channels", [3, 16, 100])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_parameter_count(channels, reduction):
    h = max(1, channels // reduction)
    channel_branch = channels * h + h + h * channels + 2 * channels  # fc1, fc2 (no bias), BN(C)
    spatial_branch = channels * h + h + 2 * (9 * h * h + h) + h + 2  # 1x1, 2 dilated 3x3, 1x1, BN
    block = attn_blocks.create("bam", channels, reduction=reduction)
    assert sum(p.numel() for p in block.parameters()) == channel_branch + spatial_branch


def _randomise(block: BAM) -> None:
    with torch.no_grad():
        for p in block.parameters():
            p.normal_(0.0, 0.4)
        for bn in (block.channel_norm, block.spatial_norm):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 1.5)


def _paper_reference(block: BAM, x: torch.Tensor, train: bool) -> torch.Tensor:
    """Eq. 1-4: F + F * sigmoid(BN(MLP(AvgPool F)) + BN(f3 f2 f1 f0 F)), written out in float64."""

    def batch_norm(v, bn, dims):
        if train:
            mean = v.mean(dim=dims, keepdim=True)
            var = v.var(dim=dims, unbiased=False, keepdim=True)
        else:
            shape = [1, -1] + [1] * (v.dim() - 2)
            mean, var = bn.running_mean.view(shape), bn.running_var.view(shape)
        shape = [1, -1] + [1] * (v.dim() - 2)
        return (v - mean) / torch.sqrt(var + bn.eps) * bn.weight.view(shape) + bn.bias.view(shape)

    pooled = x.mean(dim=(2, 3))
    hidden = torch.relu(pooled @ block.channel_fc1.weight.T + block.channel_fc1.bias)
    channel = batch_norm(hidden @ block.channel_fc2.weight.T, block.channel_norm, (0,))

    s = torch.relu(F.conv2d(x, block.spatial_reduce.weight, block.spatial_reduce.bias))
    for conv in (block.spatial_dilated1, block.spatial_dilated2):
        s = torch.relu(F.conv2d(s, conv.weight, conv.bias, padding=4, dilation=4))
    spatial = batch_norm(F.conv2d(s, block.spatial_out.weight), block.spatial_norm, (0, 2, 3))

    attention = torch.sigmoid(channel[:, :, None, None] + spatial)  # broadcast addition
    return x + x * attention


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("hw", [(9, 11), (2, 3)])
def test_matches_float64_paper_equations(train, hw):
    torch.manual_seed(3)
    block = BAM(24, reduction=4).double().train(train)
    _randomise(block)
    x = torch.randn(3, 24, *hw, dtype=torch.float64)
    torch.testing.assert_close(block(x), _paper_reference(block, x, train))


def test_output_stays_between_one_and_two_times_the_input():
    block = BAM(16).train()
    x = torch.rand(4, 16, 6, 6) + 0.1
    ratio = block(x) / x
    assert (ratio > 1).all() and (ratio < 2).all()


def test_training_at_batch_one_raises_with_the_fix():
    block = BAM(16).train()
    x = torch.randn(1, 16, 5, 5)
    with pytest.raises(ValueError, match=r"BatchNorm.*batch size >= 2.*eval"):
        block(x)
    assert block.eval()(x).shape == x.shape
