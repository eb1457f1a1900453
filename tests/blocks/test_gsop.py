"""GSoP block: covariance width rule, parameter count, float64 references, zero and 1x1 inputs."""

import pytest
import torch

import attn_blocks
from attn_blocks.gsop import covariance_pool, gsop_covariance_dim

BN_EPS = 1e-5
REDUCTIONS = (4, 8, 16, 32)


def _bn_eval(values, bn, channel_dim=1):
    shape = [1] * values.dim()
    shape[channel_dim] = -1

    def view(t):
        return t.detach().to(values.dtype).view(shape)

    normalised = (values - view(bn.running_mean)) / torch.sqrt(view(bn.running_var) + BN_EPS)
    return normalised * view(bn.weight) + view(bn.bias)


def _randomise(block):
    with torch.no_grad():
        for module in block.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0.0, 0.3)
                module.running_mean.normal_(0.0, 0.3)
                module.running_var.uniform_(0.5, 1.5)


@pytest.mark.parametrize(
    ("channels", "reduction", "dim"),
    [
        (3, 4, 2),
        (16, 4, 4),
        (16, 32, 2),
        (100, 8, 12),
        (256, 2, 128),
        (512, 4, 128),
        (2048, 4, 128),
    ],
)
def test_covariance_width_rule(channels, reduction, dim):
    assert gsop_covariance_dim(channels, reduction) == dim


@pytest.mark.parametrize("channels", [3, 16, 100])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_parameter_count(channels, reduction):
    block = attn_blocks.create("gsop", channels, reduction=reduction)
    d = min(128, max(2, channels // reduction))
    expected = 5 * channels * d + 4 * d * d + 8 * d + channels
    assert block.dim == d
    assert sum(p.numel() for p in block.parameters()) == expected


def test_default_reduction_is_four():
    assert attn_blocks.info("gsop").defaults == {"reduction": 4}
    assert attn_blocks.create("gsop", 16).dim == 4


@pytest.mark.parametrize("hw", [(1, 1), (3, 5), (8, 8)])
def test_covariance_pool_matches_torch_cov(hw):
    features = torch.randn(3, 5, *hw, dtype=torch.float64)
    pooled = covariance_pool(features)
    for b in range(3):
        expected = torch.cov(features[b].flatten(1), correction=0)
        torch.testing.assert_close(pooled[b], expected, rtol=1e-12, atol=1e-12)


def test_block_matches_float64_hand_computation():
    channels, batch = 12, 2
    block = attn_blocks.create("gsop", channels, reduction=3).double().eval()
    _randomise(block)
    x = torch.randn(batch, channels, 5, 6, dtype=torch.float64)
    d = block.dim

    reduced = torch.einsum("oc,bchw->bohw", block.reduce.weight[:, :, 0, 0], x.clamp(min=0))
    reduced = _bn_eval(reduced, block.reduce_bn).clamp(min=0)
    cov = torch.stack([torch.cov(reduced[b].flatten(1), correction=0) for b in range(batch)])
    cov = _bn_eval(cov, block.row_bn)  # BatchNorm channel i = row i
    row_out = torch.empty(batch, 4 * d, dtype=torch.float64)
    for i in range(d):
        for k in range(4):
            o = 4 * i + k  # grouped conv: outputs 4i..4i+3 read only row i
            weights = block.row_conv.weight[o, 0, :, 0]
            row_out[:, o] = (cov[:, i, :] * weights).sum(dim=1) + block.row_conv.bias[o]
    logits = row_out @ block.expand.weight[:, :, 0, 0].t() + block.expand.bias
    expected = x * torch.sigmoid(logits)[:, :, None, None]

    with torch.no_grad():
        torch.testing.assert_close(block(x), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("train", [True, False])
def test_all_zero_features_give_finite_output_and_gradients(train):
    block = attn_blocks.create("gsop", 8, reduction=2).train(train)
    x = torch.zeros(2, 8, 4, 4, requires_grad=True)
    y = block(x)
    assert torch.isfinite(y).all()
    (y * torch.randn_like(y)).sum().backward()
    assert torch.isfinite(x.grad).all()
    for name, p in block.named_parameters():
        assert p.grad is None or torch.isfinite(p.grad).all(), name


def test_constant_map_has_zero_covariance():
    features = torch.full((2, 3, 4, 4), 2.5)
    assert torch.equal(covariance_pool(features), torch.zeros(2, 3, 3))


def test_training_batch1_works_except_on_1x1_maps():
    block = attn_blocks.create("gsop", 16).train()
    assert block(torch.randn(1, 16, 2, 1)).shape == (1, 16, 2, 1)
    assert block(torch.randn(2, 16, 1, 1)).shape == (2, 16, 1, 1)
    with pytest.raises(ValueError, match="gsop: training on a single 1x1 map"):
        block(torch.randn(1, 16, 1, 1))
    block.eval()
    assert torch.isfinite(block(torch.randn(1, 16, 1, 1))).all()


def test_smallest_width_trains_at_batch1():
    block = attn_blocks.create("gsop", 3, reduction=32).train()
    assert block.dim == 2
    assert block(torch.randn(1, 3, 4, 4)).shape == (1, 3, 4, 4)


def test_invalid_reduction_is_rejected():
    with pytest.raises(ValueError, match=r"block 'gsop': parameter reduction=0"):
        attn_blocks.create("gsop", 16, reduction=0)
