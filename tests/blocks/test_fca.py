"""FcaNet block: DCT basis, frequency rule at every size, channel groups, float64 reference."""

import io
import math
import warnings

import numpy as np
import pytest
import torch

import attn_blocks
from attn_blocks.fca import TOP16_U, TOP16_V, dct_basis, scaled_frequencies, spectral_groups

SIZES = [(1, 1), (2, 2), (3, 3), (4, 2), (4, 4), (5, 5), (6, 6), (7, 7), (9, 5), (14, 14), (33, 17)]


def _frequencies(height, width):
    u, v = scaled_frequencies(torch.tensor(TOP16_U), torch.tensor(TOP16_V), height, width)
    return list(zip(u.tolist(), v.tolist(), strict=True))


def _expected_frequencies(height, width):
    """The documented rule, written independently with Python lists."""
    first = [
        (max(u * height // 7, min(u, height - 1)), max(v * width // 7, min(v, width - 1)))
        for u, v in zip(TOP16_U, TOP16_V, strict=True)
    ]
    distinct = list(dict.fromkeys(first))
    unused = [(u, v) for u in range(height) for v in range(width) if (u, v) not in distinct]
    ordered = distinct + sorted(unused, key=lambda p: (p[0] + p[1], p[0]))
    return [ordered[k % len(ordered)] for k in range(16)]


def _dct_numpy(freq, size):
    n = np.arange(size, dtype=np.float64)
    scale = math.sqrt((1.0 if freq == 0 else 2.0) / size)
    return scale * np.cos(np.pi * freq * (n + 0.5) / size)


def _pooled(block, x):
    """The DCT descriptor (input of the first FC layer)."""
    captured = []
    handle = block.fc[0].register_forward_hook(lambda m, inputs, out: captured.append(inputs[0]))
    block(x)
    handle.remove()
    return captured[0]


@pytest.mark.parametrize("channels", [3, 16, 100])
@pytest.mark.parametrize("reduction", [4, 8, 16, 32])
def test_parameter_count(channels, reduction):
    block = attn_blocks.create("fca", channels, reduction=reduction)
    hidden = max(1, channels // reduction)
    assert sum(p.numel() for p in block.parameters()) == 2 * channels * hidden


@pytest.mark.parametrize("size", [1, 2, 5, 7, 16])
def test_dct_basis_matches_formula(size):
    freqs = torch.arange(size)
    basis = dct_basis(freqs, size, torch.float64)
    for f in range(size):
        np.testing.assert_allclose(basis[f].numpy(), _dct_numpy(f, size), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("hw", SIZES)
def test_filters_orthonormal_across_distinct_frequencies(hw):
    height, width = hw
    pairs = _frequencies(height, width)
    u = torch.tensor([p[0] for p in pairs])
    v = torch.tensor([p[1] for p in pairs])
    filters = torch.einsum(
        "kh,kw->khw", dct_basis(u, height, torch.float64), dct_basis(v, width, torch.float64)
    ).flatten(1)
    gram = filters @ filters.t()
    same = torch.tensor([[float(a == b) for b in pairs] for a in pairs], dtype=torch.float64)
    torch.testing.assert_close(gram, same, rtol=0, atol=1e-12)


@pytest.mark.parametrize("hw", [*SIZES, (8, 3), (10, 10), (56, 56), (13, 28)])
def test_frequency_rule(hw):
    assert _frequencies(*hw) == _expected_frequencies(*hw)


@pytest.mark.parametrize("side", [7, 14, 28, 56])
def test_frequencies_match_official_scaling_for_multiples_of_seven(side):
    scale = side // 7
    expected = [(u * scale, v * scale) for u, v in zip(TOP16_U, TOP16_V, strict=True)]
    assert _frequencies(side, side) == expected


@pytest.mark.parametrize("height", range(1, 11))
@pytest.mark.parametrize("width", range(1, 11))
def test_frequencies_distinct_where_possible(height, width):
    pairs = _frequencies(height, width)
    assert all(0 <= u < height and 0 <= v < width for u, v in pairs)
    assert len(set(pairs)) == min(16, height * width)
    assert pairs[0] == (0, 0)


@pytest.mark.parametrize(
    ("channels", "sizes"),
    [(3, [1, 1, 1]), (16, [1] * 16), (32, [2] * 16), (100, [7] * 4 + [6] * 12)],
)
def test_channel_groups(channels, sizes):
    slots = spectral_groups(channels)
    assert slots.tolist() == sorted(slots.tolist())  # contiguous groups
    assert torch.bincount(slots).tolist() == sizes


@pytest.mark.parametrize("hw", [(7, 7), (5, 9), (1, 1), (2, 3)])
def test_dc_group_pools_the_scaled_mean(hw):
    block = attn_blocks.create("fca", 32).double()
    x = torch.randn(2, 32, *hw, dtype=torch.float64)
    pooled = _pooled(block, x)
    dc_channels = block.channel_slot == 0  # slot 0 is always (0, 0)
    expected = x.mean(dim=(2, 3)) * math.sqrt(hw[0] * hw[1])
    torch.testing.assert_close(pooled[:, dc_channels], expected[:, dc_channels])


def test_1x1_map_is_se_on_the_raw_values():
    block = attn_blocks.create("fca", 16).double()
    x = torch.randn(3, 16, 1, 1, dtype=torch.float64)
    torch.testing.assert_close(_pooled(block, x), x.flatten(1))


@pytest.mark.parametrize("hw", [(9, 5), (3, 3)])
def test_block_matches_float64_hand_computation(hw):
    channels, height, width = 20, *hw
    block = attn_blocks.create("fca", channels, reduction=4).double()
    x = torch.randn(2, channels, height, width, dtype=torch.float64)
    slots = spectral_groups(channels).tolist()
    pairs = _expected_frequencies(height, width)
    pooled = np.empty((2, channels))
    for c in range(channels):
        u, v = pairs[slots[c]]
        dct_filter = np.outer(_dct_numpy(u, height), _dct_numpy(v, width))
        pooled[:, c] = (x[:, c].numpy() * dct_filter).sum(axis=(1, 2))
    hidden = np.maximum(pooled @ block.fc[0].weight.detach().numpy().T, 0.0)
    gate = 1.0 / (1.0 + np.exp(-(hidden @ block.fc[2].weight.detach().numpy().T)))
    expected = x.numpy() * gate[:, :, None, None]
    with torch.no_grad():
        np.testing.assert_allclose(block(x).numpy(), expected, rtol=1e-10, atol=1e-12)


def test_small_sizes_survive_scripting_and_onnx():
    """The frequency rule is computed from the input size in both exports (export at 7x7)."""
    ort = pytest.importorskip("onnxruntime")
    block = attn_blocks.create("fca", 16).eval()
    scripted = torch.jit.script(block)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            block,
            (torch.randn(1, 16, 7, 7),),
            buffer,
            dynamo=False,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "b", 2: "h", 3: "w"}, "y": {0: "b", 2: "h", 3: "w"}},
        )
    session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    for hw in [(1, 1), (3, 3), (4, 2), (5, 6), (14, 9)]:
        x = torch.randn(2, 16, *hw)
        expected = block(x)
        torch.testing.assert_close(scripted(x), expected)
        (y,) = session.run(None, {"x": x.numpy()})
        torch.testing.assert_close(torch.from_numpy(y), expected, rtol=1e-4, atol=1e-5)
