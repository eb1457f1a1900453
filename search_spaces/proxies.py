"""Zero-cost proxies: score an untrained network in one forward (and backward) pass.

Rankings of architectures that cost no training, the baselines weight sharing must beat
(Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS", ICLR 2021, who also report the
parameter count beside every proxy):

* :func:`synflow`: Tanaka et al., "Pruning neural networks without any data by iteratively
  conserving synaptic flow", NeurIPS 2020. With every weight replaced by its absolute value and
  an all-ones input, ``R = sum(f(1))``; the score is ``sum |w * dR/dw|`` over the weights of every
  convolution and linear layer. Computed in float64 (the product over layers overflows float32)
  with BatchNorm in eval mode (its running statistics at initialisation), as the proxy's authors
  remove BatchNorm for it.
* :func:`naswot`: Mellor et al., "Neural Architecture Search without Training", ICML 2021. The
  binary activation pattern ``c_i`` of each image of a batch at every ``nn.ReLU``; the kernel
  ``K[i, j] = sum over units of [c_i == c_j]`` (the count of units on which two images agree);
  the score is ``log |det K|``: networks that separate the images' patterns score high.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn


def synflow(model: nn.Module, input_shape: tuple[int, ...]) -> float:
    """SynFlow of ``model`` (left untouched) for inputs of ``input_shape`` (C, H, W)."""
    net = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.abs_()
    net.zero_grad()
    output = net(torch.ones(1, *input_shape, dtype=torch.float64))
    output.sum().backward()
    score = 0.0
    for module in net.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)) and module.weight.grad is not None:
            score += float((module.weight * module.weight.grad).abs().sum().detach())
    return score


def activation_kernel(codes: Tensor) -> Tensor:
    """``K[i, j]``: units on which binary rows ``i`` and ``j`` of ``codes`` (N, units) agree."""
    codes = codes.double()
    return codes @ codes.T + (1.0 - codes) @ (1.0 - codes).T


def naswot(model: nn.Module, images: Tensor) -> float:
    """NASWOT of ``model`` (left untouched; eval mode for the pass) on a batch ``images``."""
    net = copy.deepcopy(model).eval()
    kernel = torch.zeros(len(images), len(images), dtype=torch.float64)

    def record(_module: nn.Module, _inputs: object, output: Tensor) -> None:
        nonlocal kernel
        kernel = kernel + activation_kernel((output.detach().flatten(1) > 0).to(torch.uint8))

    hooks = [m.register_forward_hook(record) for m in net.modules() if isinstance(m, nn.ReLU)]
    try:
        with torch.no_grad():
            net(images)
    finally:
        for hook in hooks:
            hook.remove()
    if not hooks:
        raise ValueError("naswot needs nn.ReLU modules: the model has none to read patterns from")
    return float(torch.linalg.slogdet(kernel)[1])
