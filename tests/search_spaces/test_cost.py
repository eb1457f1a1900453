"""The cost model: FLOPs against hand counts, parameters against closed forms, latency and
activation memory on small models whose answer is known."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import attn_blocks
from search_spaces.cost import (
    LatencyResult,
    activation_memory,
    count_flops,
    count_params,
    cuda_activation_memory,
    latency_profile,
    measure_latency,
    model_cost,
    uncounted_ops,
)

ATTENTIVE = [name for name in attn_blocks.available() if name != "none"]


class Op(nn.Module):
    """A module around one function, to count the FLOPs of a single operator."""

    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


class CallCounter(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 4)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.linear(x)


# --- FLOPs -----------------------------------------------------------------------------------


def test_flops_of_small_cnn_match_hand_count():
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 10),
    )
    batch, c_in, c_out, h, w, classes = 2, 3, 8, 8, 8, 10
    feature_map = batch * c_out * h * w
    expected = (
        2 * c_in * 3 * 3 * c_out * h * w * batch  # conv: a multiply-add per weight and position
        + 2 * feature_map  # eval BatchNorm: one per-channel multiply-add per element
        + feature_map  # ReLU
        + feature_map  # global average pool: one per input element
        + 2 * batch * c_out * classes  # linear (bias additions not counted, as in torch)
    )
    assert count_flops(model, (batch, c_in, h, w)) == expected


def test_se_extra_flops_match_formula():
    batch, channels, h, w, reduction = 2, 32, 8, 8, 4
    hidden = channels // reduction
    block = attn_blocks.create("se", channels, reduction=reduction)
    expected = (
        batch * channels * h * w  # squeeze: global average pool
        + 2 * batch * channels * hidden  # fc1
        + batch * hidden  # ReLU
        + 2 * batch * hidden * channels  # fc2
        + 4 * batch * channels  # sigmoid
        + batch * channels * h * w  # scale
    )
    assert count_flops(block, (batch, channels, h, w)) == expected


@pytest.mark.parametrize(
    ("fn", "shape", "expected"),
    [
        (lambda x: x * 2.0 + 1.0, (2, 3, 4), 2 * 24),
        (torch.sigmoid, (2, 3, 4), 4 * 24),
        (F.hardswish, (2, 3, 4), 4 * 24),
        (lambda x: x.exp().sqrt(), (2, 3, 4), 2 * 24),
        (lambda x: x.sum(dim=2), (2, 3, 4), 24),
        (lambda x: x.amax(dim=(1, 2)), (2, 3, 4), 24),
        (lambda x: x.max(dim=1).values, (2, 3, 4), 24),
        (lambda x: torch.maximum(x, x.flip(0)), (2, 3, 4), 24),
        (lambda x: x.var(dim=2), (2, 3, 4), 4 * 24),
        (lambda x: x.std(dim=2), (2, 3, 4), 4 * 24 + 6),
        (lambda x: x.softmax(dim=-1), (2, 3, 4), 5 * 24),
        (lambda x: F.avg_pool2d(x, 3, stride=2), (1, 2, 7, 7), 2 * 3 * 3 * 9),
        (lambda x: F.max_pool2d(x, 2), (1, 2, 6, 6), 2 * 3 * 3 * 4),
        # 5 -> 2 adaptive regions are [0, 3) and [2, 5): 6 inputs read per axis.
        (lambda x: F.adaptive_avg_pool2d(x, 2), (1, 2, 5, 5), 2 * 6 * 6),
        (lambda x: F.adaptive_max_pool2d(x, (1, 5)), (1, 2, 5, 5), 2 * 5 * 5),
        (lambda x: F.layer_norm(x, (4,)), (2, 3, 4), 5 * 24),
        (nn.LayerNorm(4), (2, 3, 4), 7 * 24),
        (lambda x: F.group_norm(x, 2), (2, 4, 3, 3), 5 * 72),
        (lambda x: F.instance_norm(x), (2, 4, 3, 3), 5 * 72),
        (lambda x: torch.cat([x, x]).reshape(-1).clone(), (2, 3, 4), 0),
    ],
)
def test_operator_flop_conventions(fn, shape, expected):
    assert count_flops(Op(fn), shape) == expected


@pytest.mark.parametrize("name", ATTENTIVE)
def test_every_block_costs_flops_and_no_operator_is_ignored(name):
    block = attn_blocks.create(name, 16)
    assert count_flops(block, (1, 16, 8, 8)) > 0
    assert uncounted_ops(block, (1, 16, 8, 8)) == []


def test_uncounted_ops_reports_an_operator_without_formula():
    assert uncounted_ops(Op(torch.i0), (2, 3)) == ["aten.i0"]


def test_torch_flop_counter_is_left_unchanged():
    count_flops(Op(torch.sigmoid), (2, 3))
    with FlopCounterMode(display=False) as counter:
        torch.sigmoid(torch.randn(2, 3) * 2.0)
    assert counter.get_total_flops() == 0


def test_flops_run_in_eval_mode_and_restore_each_flag():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)).train()
    model[1].eval()
    running_mean = model[1].running_mean.clone()
    # Eval BatchNorm is 2 FLOPs per element; training BatchNorm would be 7.
    assert count_flops(model, (1, 3, 2, 2)) == 2 * 3 * 4 * 4 + 2 * 16
    assert model.training and model[0].training and not model[1].training
    assert torch.equal(model[1].running_mean, running_mean)


def test_flops_on_another_device_use_a_copy():
    # The meta device computes shapes only; the caller's model stays where it is.
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    assert count_flops(model, (2, 3, 6, 6), device="meta") == count_flops(model, (2, 3, 6, 6))
    assert all(p.device.type == "cpu" for p in model.parameters())


@pytest.mark.parametrize("shape", [(), (2, 0, 3), (2, 3.0), "2x3", None])
def test_bad_input_shape_is_rejected(shape):
    with pytest.raises(ValueError, match="input_shape"):
        count_flops(nn.Identity(), shape)


# --- parameters ------------------------------------------------------------------------------


def test_params_match_closed_forms():
    assert count_params(nn.Conv2d(3, 8, 3)) == 3 * 8 * 3 * 3 + 8
    assert count_params(nn.Linear(8, 10, bias=False)) == 80
    assert count_params(nn.BatchNorm2d(8)) == 2 * 8  # running statistics are buffers
    shared = nn.Linear(4, 4)
    assert count_params(nn.Sequential(shared, nn.ReLU(), shared)) == 4 * 4 + 4
    frozen = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    frozen[0].requires_grad_(False)
    assert count_params(frozen) == (4 * 3 + 3) + (3 * 2 + 2)
    assert count_params(frozen, trainable_only=True) == 3 * 2 + 2


def test_lazy_params_are_rejected():
    with pytest.raises(ValueError, match="forward pass"):
        count_params(nn.LazyLinear(3))


# --- latency ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["forward", "train_step"])
def test_latency_respects_warmup_and_repeats(mode):
    model = CallCounter()
    result = measure_latency(model, (2, 4), warmup=2, repeats=5, mode=mode)
    assert isinstance(result, LatencyResult)
    assert model.calls == 2 + 5
    assert len(result.samples_ms) == 5
    assert all(math.isfinite(t) and t > 0 for t in result.samples_ms)
    assert result.median_ms > 0 and result.iqr_ms >= 0
    assert min(result.samples_ms) <= result.median_ms <= max(result.samples_ms)
    assert (result.batch_size, result.mode, result.device) == (2, mode, "cpu")


def test_latency_restores_flags_buffers_and_grads():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.Dropout()).train()
    model[2].eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for mode in ("forward", "train_step"):
        measure_latency(model, (2, 3, 4, 4), warmup=1, repeats=2, mode=mode)
        assert model.training and model[1].training and not model[2].training
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in model.parameters())


def test_latency_profile_times_each_batch_size():
    profile = latency_profile(nn.Conv2d(3, 4, 3), (3, 8, 8), (1, 3), warmup=0, repeats=2)
    assert sorted(profile) == [1, 3]
    assert [profile[b].batch_size for b in (1, 3)] == [1, 3]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"mode": "backward"}, "mode"), ({"repeats": 0}, "repeats"), ({"warmup": -1}, "warmup")],
)
def test_latency_rejects_bad_arguments(kwargs, field):
    with pytest.raises(ValueError, match=field):
        measure_latency(nn.Identity(), (1, 2), **kwargs)


# --- activation memory -----------------------------------------------------------------------


def test_activation_memory_of_relu_chain():
    # Each ReLU saves its output for backward: two (3, 5) float32 tensors.
    model = nn.Sequential(nn.ReLU(), nn.ReLU())
    assert activation_memory(model, (3, 5)) == 2 * 3 * 5 * 4


def test_activation_memory_counts_distinct_activations_not_parameters():
    # Linear 1 saves its input (weight gradient), ReLU its output, which Linear 2 saves again
    # (counted once). Both linears also save their weight (input gradient): not counted.
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 300))
    batch = 5
    assert activation_memory(model, (batch, 4)) == (batch * 4 + batch * 8) * 4


def test_activation_memory_counts_a_storage_once_through_views():
    # The linear layer saves a flattened view of the ReLU output: the same storage.
    model = nn.Sequential(nn.ReLU(), nn.Flatten(), nn.Linear(8, 3))
    assert activation_memory(model, (5, 2, 4)) == 5 * 8 * 4


def test_activation_memory_restores_the_model():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert activation_memory(model, (2, 3, 4, 4)) > 0
    assert not model.training and not model[1].training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_activation_memory_covers_saved_tensors():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
    saved = activation_memory(model, (4, 3, 16, 16), device="cuda")
    peak = cuda_activation_memory(model, (4, 3, 16, 16), device="cuda")
    assert peak >= saved > 0


def test_cuda_activation_memory_needs_cuda():
    with pytest.raises(ValueError, match="CUDA"):
        cuda_activation_memory(nn.Conv2d(3, 4, 1), (1, 3, 4, 4), device="cpu")


# --- model_cost ------------------------------------------------------------------------------


def test_model_cost_without_latency():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
    cost = model_cost(model, (3, 8, 8), batch_size=2)
    assert cost.to_dict() == {
        "params": count_params(model),
        "flops": count_flops(model, (1, 3, 8, 8)),
        "latency_ms_b1": None,
        "latency_ms_bN": None,
        "ort_latency_ms_b1": None,
        "ort_latency_ms_bN": None,
        "activation_bytes": activation_memory(model, (2, 3, 8, 8)),
        "cuda_activation_bytes": None,
        "batch_size": 2,
    }


def test_model_cost_with_latency():
    cost = model_cost(nn.Conv2d(3, 4, 3), (3, 8, 8), batch_size=3, latency=True, repeats=2)
    assert (cost.latency_b1.batch_size, cost.latency_bN.batch_size) == (1, 3)
    values = cost.to_dict()
    assert values["latency_ms_b1"] > 0 and values["latency_ms_bN"] > 0


def test_model_cost_rejects_a_batched_shape():
    with pytest.raises(ValueError, match="sample_shape"):
        model_cost(nn.Identity(), (1, 3, 8, 8))
    with pytest.raises(ValueError, match="batch_size"):
        model_cost(nn.Identity(), (3, 8, 8), batch_size=0)
