"""ECA block: the paper's kernel-size table, a hand-written reference, timm agreement, errors."""

import math

import pytest
import torch
from timm.layers import EcaModule

import attn_blocks
from attn_blocks.eca import EfficientChannelAttention, eca_kernel_size

# Table of adaptive kernel sizes published in the ECA-Net paper (gamma=2, b=1).
PUBLISHED_KERNEL_SIZES = {64: 3, 128: 5, 256: 5, 512: 5, 1024: 5, 2048: 7}
KERNEL_SEARCH = attn_blocks.info("eca").param("kernel_size").search


@pytest.mark.parametrize(("channels", "k"), sorted(PUBLISHED_KERNEL_SIZES.items()))
def test_adaptive_kernel_size_matches_paper_table(channels, k):
    assert eca_kernel_size(channels) == k
    assert attn_blocks.create("eca", channels).conv.kernel_size == (k,)


def test_adaptive_kernel_size_for_tiny_channels_is_one():
    assert [eca_kernel_size(c) for c in range(1, 9)] == [1, 1, 1, 1, 1, 1, 1, 3]


def test_adaptive_kernel_size_agrees_with_timm_except_its_clamp_to_three():
    for channels in [*range(1, 300), 512, 1000, 2048, 4096]:
        ours = eca_kernel_size(channels)
        timm_k = EcaModule(channels=channels).conv.kernel_size[0]
        assert timm_k == max(ours, 3), channels


def test_gamma_and_beta_change_the_adaptive_rule():
    # t = int((log2(64) + 1) / 1) = 7; t = int((log2(64) + 3) / 2) = 4 -> 5.
    assert attn_blocks.create("eca", 64, gamma=1.0).kernel_size == 7
    assert attn_blocks.create("eca", 64, beta=3.0).kernel_size == 5


@pytest.mark.parametrize("channels", [3, 16, 100])
@pytest.mark.parametrize("kernel_size", KERNEL_SEARCH)
def test_parameter_count(channels, kernel_size):
    if kernel_size == "adaptive":
        t = int((math.log2(channels) + 1) / 2)
        k = t if t % 2 else t + 1
    else:
        k = kernel_size
    block = attn_blocks.create("eca", channels, kernel_size=kernel_size)
    assert sum(p.numel() for p in block.parameters()) == k


def _hand_reference(block: EfficientChannelAttention, x: torch.Tensor) -> torch.Tensor:
    """gate_c = sigmoid(sum_j w_j * s_{c + j - pad}) with s = 0 outside [0, C)."""
    weights = block.conv.weight.flatten().tolist()
    k = len(weights)
    pad = (k - 1) // 2
    batch, channels = x.shape[:2]
    descriptor = x.mean(dim=(2, 3))
    logits = torch.zeros(batch, channels, dtype=x.dtype)
    for c in range(channels):
        for j, w in enumerate(weights):
            source = c + j - pad
            if 0 <= source < channels:
                logits[:, c] += w * descriptor[:, source]
    return x * torch.sigmoid(logits)[:, :, None, None]


@pytest.mark.parametrize(("channels", "kernel_size"), [(10, 3), (10, 5), (3, 7), (2, 1), (1, 5)])
def test_matches_hand_written_conv_float64(channels, kernel_size):
    """Includes kernels wider than C: zero padding keeps the output length C."""
    block = EfficientChannelAttention(channels, kernel_size=kernel_size).double()
    x = torch.randn(2, channels, 4, 3, dtype=torch.float64)
    torch.testing.assert_close(block(x), _hand_reference(block, x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("channels", "kernel_size"), [(16, 3), (100, 5), (16, 7), (64, 1)])
def test_agrees_with_timm_ecamodule(channels, kernel_size):
    ours = attn_blocks.create("eca", channels, kernel_size=kernel_size).double()
    theirs = EcaModule(channels=None, kernel_size=kernel_size).double()
    theirs.load_state_dict(ours.state_dict())  # both hold one bias-free Conv1d named conv
    x = torch.randn(2, channels, 5, 6, dtype=torch.float64)
    torch.testing.assert_close(ours(x), theirs(x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kernel_size", [2, 4])
def test_even_kernel_size_rejected(kernel_size):
    with pytest.raises(ValueError, match=r"parameter kernel_size=\d .*odd"):
        attn_blocks.create("eca", 16, kernel_size=kernel_size)
    with pytest.raises(ValueError, match=r"kernel_size=\d .*odd"):
        EfficientChannelAttention(16, kernel_size=kernel_size)


@pytest.mark.parametrize("kernel_size", [0, -3, 3.0, True, "auto", None])
def test_other_invalid_kernel_sizes_rejected(kernel_size):
    with pytest.raises(ValueError, match=r"kernel_size.*adaptive"):
        attn_blocks.create("eca", 16, kernel_size=kernel_size)


@pytest.mark.parametrize(("field", "value"), [("gamma", 0.0), ("beta", -1.0), ("gamma", "2")])
def test_invalid_gamma_beta_rejected(field, value):
    with pytest.raises(ValueError, match=f"block 'eca': parameter {field}="):
        attn_blocks.create("eca", 16, **{field: value})


@pytest.mark.parametrize("channels", [0, -1, 2.5])
def test_kernel_size_rule_rejects_bad_channels(channels):
    with pytest.raises(ValueError, match="eca_kernel_size: argument channels="):
        eca_kernel_size(channels)
