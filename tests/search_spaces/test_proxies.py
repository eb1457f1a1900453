"""Zero-cost proxies against their formulas written out in NumPy (float64)."""

import numpy as np
import pytest
import torch
from torch import nn

from search_spaces.proxies import activation_kernel, naswot, synflow


def _tiny(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))


def test_synflow_is_the_sum_of_weight_times_gradient_of_the_abs_network():
    model = _tiny()
    w1, b1 = (np.abs(p.detach().double().numpy()) for p in (model[1].weight, model[1].bias))
    w2 = np.abs(model[3].weight.detach().double().numpy())
    hidden = w1 @ np.ones(3) + b1  # all >= 0: the ReLU passes it
    # R = sum(w2 @ hidden + b2): dR/dw2[k, j] = hidden[j], dR/dw1[j, i] = sum_k w2[k, j] * 1.
    expected = np.sum(w2 * hidden[None, :]) + np.sum(w1 * w2.sum(axis=0)[:, None])
    assert synflow(model, (3,)) == pytest.approx(expected, rel=1e-12)


def test_synflow_leaves_the_model_as_it_was():
    model = _tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    synflow(model, (3,))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    assert next(model.parameters()).dtype == torch.float32


def test_naswot_is_the_log_determinant_of_the_agreement_kernel():
    model = _tiny(1)
    images = torch.randn(6, 3, generator=torch.Generator().manual_seed(2))
    x = images.double().numpy()
    w1, b1 = (p.detach().double().numpy() for p in (model[1].weight, model[1].bias))
    codes = (x @ w1.T + b1 > 0).astype(np.float64)
    kernel = codes @ codes.T + (1 - codes) @ (1 - codes).T
    _, logdet = np.linalg.slogdet(kernel)
    assert naswot(model, images) == pytest.approx(logdet, abs=1e-9)


def test_activation_kernel_counts_agreements():
    codes = torch.tensor([[1, 0, 1], [1, 1, 1], [0, 1, 0]], dtype=torch.uint8)
    kernel = activation_kernel(codes)
    assert kernel.tolist() == [[3.0, 2.0, 0.0], [2.0, 3.0, 1.0], [0.0, 1.0, 3.0]]


def test_naswot_needs_relu_modules():
    with pytest.raises(ValueError, match=r"nn\.ReLU"):
        naswot(nn.Sequential(nn.Flatten(), nn.Linear(3, 2)), torch.randn(4, 3))


def test_proxies_run_on_an_attention_model():
    from search_spaces.build import build_model
    from search_spaces.spec import ArchSpec, BlockChoice

    spec = ArchSpec(
        backbone="resnet8",
        backbone_args={"width": 4},
        in_channels=1,
        num_classes=10,
        sites={"stage2.0": BlockChoice("se", {"reduction": 2}), "stage3.0": BlockChoice("cbam")},
    )
    model = build_model(spec, seed=0)
    assert synflow(model, (1, 8, 8)) > 0
    assert np.isfinite(naswot(model, torch.rand(8, 1, 8, 8)))
