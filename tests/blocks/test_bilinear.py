"""Bilinear attention: embedding width rule, parameter count, triangle order, float64 reference."""

import pytest
import torch

import attn_blocks
from attn_blocks.bilinear import bilinear_embed_channels, upper_triangle_products

BN_EPS = 1e-5


def _bn_eval(values, bn):
    shape = (1, -1, 1, 1)

    def view(t):
        return t.detach().to(values.dtype).view(shape)

    normalised = (values - view(bn.running_mean)) / torch.sqrt(view(bn.running_var) + BN_EPS)
    return normalised * view(bn.weight) + view(bn.bias)


def _conv_bn_relu(values, branch):
    conv, bn = branch[0], branch[1]
    out = torch.einsum("oc,bchw->bohw", conv.weight[:, :, 0, 0], values)
    return _bn_eval(out, bn).clamp(min=0)


def _randomise(block):
    with torch.no_grad():
        for module in block.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0.0, 0.3)
                module.running_mean.normal_(0.0, 0.3)
                module.running_var.uniform_(0.5, 1.5)


@pytest.mark.parametrize(
    ("channels", "reduction", "embed"),
    [(3, 16, 1), (16, 4, 4), (100, 8, 12), (1024, 16, 64), (2048, 16, 64), (256, 2, 64)],
)
def test_embedding_width_rule(channels, reduction, embed):
    assert bilinear_embed_channels(channels, reduction) == embed


@pytest.mark.parametrize("channels", [3, 16, 100])
@pytest.mark.parametrize("reduction", [4, 8, 16, 32])
def test_parameter_count(channels, reduction):
    block = attn_blocks.create("bilinear", channels, reduction=reduction)
    embed = max(1, channels // reduction)
    d = embed * (embed + 1) // 2
    expected = channels * embed + 2 * embed + 2 * (d * channels + 2 * channels)
    assert block.bilinear_channels == d
    assert sum(p.numel() for p in block.parameters()) == expected


def test_parameter_count_at_the_cap():
    block = attn_blocks.create("bilinear", 256, reduction=2)  # 128 -> capped at 64
    d = 64 * 65 // 2
    expected = 256 * 64 + 2 * 64 + 2 * (d * 256 + 2 * 256)
    assert sum(p.numel() for p in block.parameters()) == expected


def test_upper_triangle_matches_loop():
    embedded = torch.randn(2, 5, 3, 4, dtype=torch.float64)
    rows, cols = torch.triu_indices(5, 5)
    products = upper_triangle_products(embedded, rows, cols)
    expected = []
    for i in range(5):
        for j in range(i, 5):
            expected.append(embedded[:, i] * embedded[:, j])
    torch.testing.assert_close(products, torch.stack(expected, dim=1), rtol=0, atol=0)


def test_block_matches_float64_hand_computation():
    block = attn_blocks.create("bilinear", 12, reduction=3).double().eval()
    _randomise(block)
    x = torch.randn(2, 12, 5, 4, dtype=torch.float64)
    embedded = _conv_bn_relu(x, block.embed)
    c = block.embed_channels
    bilinear = torch.stack(
        [embedded[:, i] * embedded[:, j] for i in range(c) for j in range(i, c)], dim=1
    )
    local = _conv_bn_relu(bilinear, block.local_branch)
    pooled = _conv_bn_relu(bilinear.mean(dim=(2, 3), keepdim=True), block.global_branch)
    expected = x * torch.sigmoid(local * pooled)
    with torch.no_grad():
        torch.testing.assert_close(block(x), expected, rtol=1e-10, atol=1e-12)


def test_gate_lies_between_one_half_and_one():
    block = attn_blocks.create("bilinear", 16, reduction=4).train()
    x = torch.rand(4, 16, 6, 6) + 0.5  # positive, so out / x is the gate
    gate = block(x) / x
    assert (gate >= 0.5).all() and (gate <= 1.0).all()


def test_training_batch1_raises_and_eval_works():
    block = attn_blocks.create("bilinear", 16).train()
    with pytest.raises(ValueError, match="bilinear: training at batch size 1"):
        block(torch.randn(1, 16, 5, 5))
    block.eval()
    assert torch.isfinite(block(torch.randn(1, 16, 5, 5))).all()
