"""SRM block: parameter count, initial gate, float64 references, the 1x1 and batch-1 cases."""

import io
import warnings

import numpy as np
import pytest
import torch

import attn_blocks

STYLE_EPS = 1e-5
BN_EPS = 1e-5


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _style_logits(x, cfc):
    """z[b, c] = w_c0 * mean + w_c1 * sqrt(unbiased var + eps); var := 0 for a single value."""
    batch, channels = x.shape[:2]
    z = np.empty((batch, channels))
    for b in range(batch):
        for c in range(channels):
            values = x[b, c].ravel()
            var = np.var(values, ddof=1) if values.size > 1 else 0.0
            z[b, c] = cfc[c, 0] * values.mean() + cfc[c, 1] * np.sqrt(var + STYLE_EPS)
    return z


def _randomise(block):
    with torch.no_grad():
        block.cfc.normal_(0.0, 1.0)
        block.bn.weight.uniform_(0.5, 1.5)
        block.bn.bias.normal_(0.0, 0.5)
        block.bn.running_mean.normal_(0.0, 0.3)
        block.bn.running_var.uniform_(0.5, 1.5)


@pytest.mark.parametrize("channels", [3, 16, 100])
def test_parameter_count(channels):
    block = attn_blocks.create("srm", channels)
    assert sum(p.numel() for p in block.parameters()) == 2 * channels + 2 * channels


@pytest.mark.parametrize("train", [True, False])
def test_gate_starts_at_one_half(train):
    block = attn_blocks.create("srm", 8).train(train)
    assert torch.equal(block.cfc, torch.zeros(8, 2))
    x = torch.randn(2, 8, 5, 4)
    torch.testing.assert_close(block(x), 0.5 * x)


@pytest.mark.parametrize("hw", [(1, 1), (3, 5)])
def test_eval_matches_float64_reference(hw):
    block = attn_blocks.create("srm", 5).double().eval()
    _randomise(block)
    x = torch.randn(3, 5, *hw, dtype=torch.float64)
    z = _style_logits(x.numpy(), block.cfc.detach().numpy())
    bn = block.bn
    z_hat = (z - bn.running_mean.numpy()) / np.sqrt(bn.running_var.numpy() + BN_EPS)
    z_hat = z_hat * bn.weight.detach().numpy() + bn.bias.detach().numpy()
    expected = x.numpy() * _sigmoid(z_hat)[:, :, None, None]
    torch.testing.assert_close(block(x), torch.from_numpy(expected), rtol=1e-12, atol=1e-12)


def test_train_matches_float64_reference_with_batch_statistics():
    block = attn_blocks.create("srm", 5).double().train()
    _randomise(block)
    x = torch.randn(4, 5, 6, 3, dtype=torch.float64)
    z = _style_logits(x.numpy(), block.cfc.detach().numpy())
    z_hat = (z - z.mean(axis=0)) / np.sqrt(z.var(axis=0) + BN_EPS)
    z_hat = z_hat * block.bn.weight.detach().numpy() + block.bn.bias.detach().numpy()
    expected = x.numpy() * _sigmoid(z_hat)[:, :, None, None]
    torch.testing.assert_close(block(x), torch.from_numpy(expected), rtol=1e-12, atol=1e-12)


def test_one_by_one_maps_give_finite_outputs_and_gradients():
    block = attn_blocks.create("srm", 8).train()
    _randomise(block)
    x = torch.randn(2, 8, 1, 1, requires_grad=True)
    y = block(x)
    (y * torch.randn_like(y)).sum().backward()
    assert torch.isfinite(y).all() and torch.isfinite(x.grad).all()
    assert torch.isfinite(block.cfc.grad).all()


def test_training_at_batch_one_explains_why_and_the_fix():
    block = attn_blocks.create("srm", 8).train()
    x = torch.randn(1, 8, 4, 4)
    with pytest.raises(ValueError, match=r"more than one value per channel.*batch size >= 2"):
        block(x)
    block.eval()
    assert block(x).shape == x.shape


def test_onnx_export_keeps_the_one_by_one_guard():
    """Exported at 7x7, the graph must still guard the H*W - 1 divisor when run on a 1x1 map."""
    ort = pytest.importorskip("onnxruntime")
    block = attn_blocks.create("srm", 8).eval()
    _randomise(block)
    buffer = io.BytesIO()
    axes = {0: "batch", 2: "h", 3: "w"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            block,
            (torch.randn(2, 8, 7, 7),),
            buffer,
            dynamo=False,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": axes, "y": axes},
        )
    session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    x = torch.randn(2, 8, 1, 1)
    (y,) = session.run(None, {"x": x.numpy()})
    torch.testing.assert_close(torch.from_numpy(y), block(x), rtol=1e-4, atol=1e-5)
