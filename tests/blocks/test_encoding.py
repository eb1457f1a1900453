"""EncNet context encoding: parameter count, expanded distances, float64 reference, SE-loss."""

import math

import pytest
import torch
import torch.nn.functional as F

import attn_blocks
from attn_blocks.encoding import (
    SELossHead,
    aggregate_residuals,
    class_presence,
    se_loss,
    squared_distances,
)

BN_EPS = 1e-5


def _bn_eval(values, bn):
    shape = [1] * values.dim()
    shape[1] = -1

    def view(t):
        return t.detach().to(values.dtype).view(shape)

    normalised = (values - view(bn.running_mean)) / torch.sqrt(view(bn.running_var) + BN_EPS)
    return normalised * view(bn.weight) + view(bn.bias)


def _randomise(block):
    with torch.no_grad():
        for bn in (block.project_bn, block.encoding_bn):
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.normal_(0.0, 0.3)
            bn.running_mean.normal_(0.0, 0.3)
            bn.running_var.uniform_(0.5, 1.5)


@pytest.mark.parametrize("channels", [3, 16, 100])
@pytest.mark.parametrize("codewords", [8, 16, 32])
def test_parameter_count(channels, codewords):
    block = attn_blocks.create("encoding", channels, codewords=codewords)
    c, k = channels, codewords
    expected = (c * c + 2 * c) + (k * c + k) + 2 * k + (c * c + c)
    assert sum(p.numel() for p in block.parameters()) == expected


def test_initialisation_ranges():
    block = attn_blocks.create("encoding", 16, codewords=8)
    bound = 1.0 / math.sqrt(8 * 16)
    assert block.codewords.shape == (8, 16) and block.smoothing.shape == (8,)
    assert block.codewords.abs().max() <= bound
    assert block.codewords.abs().max() > bound / 2  # uniform over the range, not a tiny init
    assert ((block.smoothing >= -1.0) & (block.smoothing <= 0.0)).all()


def test_expanded_distances_match_naive_difference():
    features = torch.randn(2, 7, 5, dtype=torch.float64)
    codewords = torch.randn(4, 5, dtype=torch.float64)
    naive = (features[:, :, None, :] - codewords[None, None]).pow(2).sum(dim=3)
    torch.testing.assert_close(squared_distances(features, codewords), naive)


def test_aggregation_matches_loop():
    features = torch.randn(2, 6, 3, dtype=torch.float64)
    codewords = torch.randn(4, 3, dtype=torch.float64)
    assignments = torch.softmax(torch.randn(2, 6, 4, dtype=torch.float64), dim=2)
    expected = torch.zeros(2, 4, 3, dtype=torch.float64)
    for b in range(2):
        for k in range(4):
            for i in range(6):
                expected[b, k] += assignments[b, i, k] * (features[b, i] - codewords[k])
    torch.testing.assert_close(aggregate_residuals(assignments, features, codewords), expected)


def test_block_matches_float64_hand_computation():
    channels, k, batch = 6, 5, 2
    block = attn_blocks.create("encoding", channels, codewords=k).double().eval()
    _randomise(block)
    x = torch.randn(batch, channels, 4, 3, dtype=torch.float64)

    projected = torch.einsum("oc,bchw->bohw", block.project.weight[:, :, 0, 0], x)
    projected = _bn_eval(projected, block.project_bn).clamp(min=0)
    features = projected.flatten(2).transpose(1, 2)  # (B, N, C)
    residuals = features[:, :, None, :] - block.codewords[None, None]  # (B, N, K, C)
    assignments = torch.softmax(block.smoothing * residuals.pow(2).sum(dim=3), dim=2)
    encoded_k = (assignments[..., None] * residuals).sum(dim=1)  # (B, K, C)
    encoded = _bn_eval(encoded_k, block.encoding_bn).clamp(min=0).mean(dim=1)
    gate = torch.sigmoid(encoded @ block.fc.weight.t() + block.fc.bias)
    expected = x * gate[:, :, None, None]

    with torch.no_grad():
        out, enc = block.forward_with_encoding(x)
        torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(enc, encoded, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(block(x), out)


def test_class_presence_from_label_maps():
    labels = torch.tensor([[[0, 2], [2, -1]], [[-1, -1], [1, 1]]])
    presence = class_presence(labels, num_classes=4)
    assert presence.tolist() == [[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 0.0]]
    assert class_presence(torch.tensor([3, 0]), 4).tolist() == [[0, 0, 0, 1], [1, 0, 0, 0]]


def test_se_loss_is_bce_against_presence_and_trains_the_block():
    block = attn_blocks.create("encoding", 8, codewords=4).train()
    head = SELossHead(8, num_classes=5)
    x = torch.randn(2, 8, 4, 4)
    labels = torch.tensor([[[0, 4], [4, 4]], [[2, 2], [2, -1]]])
    out, encoded = block.forward_with_encoding(x)
    assert out.shape == x.shape
    logits = head(encoded)
    assert logits.shape == (2, 5)
    loss = se_loss(logits, labels)
    target = torch.tensor([[1.0, 0, 0, 0, 1], [0, 0, 1, 0, 0]])
    expected = -(target * F.logsigmoid(logits) + (1 - target) * F.logsigmoid(-logits)).mean()
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert block.codewords.grad is not None and block.codewords.grad.abs().sum() > 0
    assert head.fc.weight.grad is not None


def test_se_loss_rejects_bad_labels_and_shapes():
    logits = torch.zeros(2, 3)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        se_loss(logits, torch.tensor([[0, 3], [1, 1]]))
    with pytest.raises(ValueError, match="logits must be"):
        se_loss(logits, torch.zeros(3, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="SELossHead: parameter num_classes=0 is invalid"):
        SELossHead(8, 0)


def test_training_batch1_works_except_on_1x1_maps():
    block = attn_blocks.create("encoding", 16).train()
    assert block(torch.randn(1, 16, 3, 2)).shape == (1, 16, 3, 2)
    assert block(torch.randn(2, 16, 1, 1)).shape == (2, 16, 1, 1)
    with pytest.raises(ValueError, match="encoding: training on a single 1x1 map"):
        block(torch.randn(1, 16, 1, 1))
    block.eval()
    assert torch.isfinite(block(torch.randn(1, 16, 1, 1))).all()


@pytest.mark.parametrize("bad", [0, -2, 2.5, True])
def test_invalid_codewords_are_rejected(bad):
    with pytest.raises(ValueError, match=r"block 'encoding': parameter codewords="):
        attn_blocks.create("encoding", 16, codewords=bad)
