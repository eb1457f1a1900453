"""Cost model of a candidate network: parameters, FLOPs, latency and activation memory.

Every trial of a search measures its architecture with :func:`model_cost`; the keys of
:meth:`ModelCost.to_dict` are the names that Optuna objectives, constraints and user attributes
use. Each measure is a function of its own so that it can be used (and tested) alone:

* :func:`count_params` - number of parameters.
* :func:`count_flops` - FLOPs of one forward pass, counted by ``torch.utils.flop_counter`` with
  formulas added for the operations attention blocks are made of (pooling, reductions,
  element-wise ops, softmax, normalisation), which the stock counter treats as free.
* :func:`measure_latency` / :func:`latency_profile` - wall-clock time of a forward pass or a
  training step (median and inter-quartile range over repeats); the same on ONNX Runtime's CPU
  provider, the deployment runtime of ``nas export``, is :mod:`search_spaces.ort_latency`.
* :func:`activation_memory` - bytes autograd keeps for the backward pass of a training forward;
  :func:`cuda_activation_memory` - the CUDA allocator's peak over the same forward.

FLOP convention: a multiply-add is 2 FLOPs, as in
``torch.utils.flop_counter`` (so convolutions and matrix products come from torch unchanged, and
their bias additions are not counted, as there and in fvcore). Everything the stock counter
ignores costs, per element:

* element-wise arithmetic, comparisons and piecewise-linear activations (add, sub, mul, div,
  floor_divide, remainder, neg, abs, clamp, relu, hardtanh/relu6, leaky_relu, maximum/minimum,
  where): 1 per output element;
* elementary functions (exp, log, sqrt, rsqrt, reciprocal, pow, tanh, erf, sin, cos): 1 per
  output element, one operation each (ptflops likewise counts an activation once per element);
* composite activations, by the operations of their definition: sigmoid 1/(1+exp(-x)) = 4,
  hardsigmoid relu6(x+3)/6 = 3, hardswish x*hardsigmoid(x) = 4, silu x*sigmoid(x) = 5,
  gelu x/2*(1+erf(x/sqrt 2)) = 5, softplus log(1+exp x) = 3, mish x*tanh(softplus x) = 5,
  addcmul/addcdiv = 2;
* reductions (sum, mean, amax/amin, max/min over a dim, prod, logsumexp, argmax/argmin, topk):
  1 per input element (n-1 additions or comparisons plus the final division of a mean);
  var/std: 4 per input element (mean 1, subtraction 1, square-and-accumulate as a multiply-add
  2), std plus one sqrt per output element; vector norms: 2 per input element
  (square-and-accumulate) plus one root per output element;
* softmax and log_softmax: 5 per element (max, subtract, exp, sum, divide / subtract the log);
* pooling: every output element costs its window size (avg: additions and a division; max:
  comparisons); adaptive pooling uses the exact region of each output, so global average
  pooling costs one FLOP per input element;
* normalisation: with fixed statistics (BatchNorm in eval mode) 2 per element, a per-channel
  multiply-add; with statistics computed from the input (BatchNorm in training, LayerNorm,
  GroupNorm, InstanceNorm) 5 per element (mean 1; variance: subtract 1, square-and-accumulate 2;
  scale by 1/std 1), plus 2 for an affine scale and shift. Per-channel work (inverse square
  roots, running-stat updates) is O(C) and not counted;
* data movement (views, reshapes, cat, stack, slicing, indexing, copies, tensor creation): 0
  (``FREE_OPS``).

The formulas are passed to ``FlopCounterMode(custom_mapping=...)`` on each call, never
registered globally, so importing this module does not change torch's own FLOP counter.
:func:`uncounted_ops` lists the operations of a model that none of these formulas covers, so a
new block that would be counted as free is caught (``tests/search_spaces/test_cost.py`` runs it
over every registered block).
"""

from __future__ import annotations

import copy
import math
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode, flop_registry

aten = torch.ops.aten

LATENCY_MODES = ("forward", "train_step")

# --- FLOP formulas ------------------------------------------------------------------------------
# FlopCounterMode calls a formula with the shapes of the operator's tensor arguments (other
# arguments unchanged) and ``out_shape``, the shape(s) of its result.

Shape = Sequence[int]
FlopFormula = Callable[..., int]


def _first_shape(shape: Any) -> torch.Size:
    """The shape of an op's (first) result: tuples of results come as tuples of shapes."""
    return shape if isinstance(shape, torch.Size) else shape[0]


def _per_output_element(flops_per_element: int) -> FlopFormula:
    def formula(*args: Any, out_shape: Any = None, **kwargs: Any) -> int:
        return flops_per_element * math.prod(_first_shape(out_shape))

    return formula


def _per_input_element(flops_per_element: int, per_output: int = 0) -> FlopFormula:
    def formula(input_shape: Shape, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
        outputs = math.prod(_first_shape(out_shape)) if per_output else 0
        return flops_per_element * math.prod(input_shape) + per_output * outputs

    return formula


def _max_min_flop(input_shape: Shape, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    # ``max(a, b)`` is element-wise; ``max(a)`` and ``max(a, dim)`` are reductions.
    if args and isinstance(args[0], torch.Size):
        return math.prod(_first_shape(out_shape))
    return math.prod(input_shape)


def _window(kernel_size: int | Sequence[int], spatial_dims: int) -> int:
    if isinstance(kernel_size, int):
        return kernel_size**spatial_dims
    if len(kernel_size) == 1:
        return kernel_size[0] ** spatial_dims
    return math.prod(kernel_size)


def _pool_flop(spatial_dims: int) -> FlopFormula:
    def formula(
        input_shape: Shape,
        kernel_size: int | Sequence[int],
        *args: Any,
        out_shape: Any = None,
        **kwargs: Any,
    ) -> int:
        return math.prod(_first_shape(out_shape)) * _window(kernel_size, spatial_dims)

    return formula


def _adaptive_region_total(in_size: int, out_size: int) -> int:
    """Sum over the outputs of their region sizes (PyTorch's floor/ceil region boundaries)."""
    return sum(
        -((-(j + 1) * in_size) // out_size) - (j * in_size) // out_size for j in range(out_size)
    )


def _adaptive_pool_flop(
    input_shape: Shape,
    output_size: Sequence[int],
    *args: Any,
    out_shape: Any = None,
    **kwargs: Any,
) -> int:
    dims = len(output_size)
    leading = math.prod(input_shape[:-dims])
    regions = math.prod(
        _adaptive_region_total(i, o) for i, o in zip(input_shape[-dims:], output_size, strict=True)
    )
    return leading * regions


_NORM_WITH_STATISTICS = 5
_AFFINE = 2
_NORM_WITH_FIXED_STATISTICS = 2


def _batch_norm_flop(input_shape: Shape, weight_shape: Any, *args: Any, **kwargs: Any) -> int:
    # native_batch_norm, _native_batch_norm_legit (both overloads) and cudnn's variant all take
    # ``training`` as their first bool argument.
    training = next(a for a in args if isinstance(a, bool))
    elements = math.prod(input_shape)
    if not training:
        return _NORM_WITH_FIXED_STATISTICS * elements
    return (_NORM_WITH_STATISTICS + (_AFFINE if weight_shape is not None else 0)) * elements


def _batch_norm_eval_flop(input_shape: Shape, *args: Any, **kwargs: Any) -> int:
    return _NORM_WITH_FIXED_STATISTICS * math.prod(input_shape)


def _norm_with_statistics_flop(weight_index: int) -> FlopFormula:
    def formula(input_shape: Shape, *args: Any, **kwargs: Any) -> int:
        affine = args[weight_index - 1] is not None
        return (_NORM_WITH_STATISTICS + (_AFFINE if affine else 0)) * math.prod(input_shape)

    return formula


#: Element-wise operators by FLOPs per output element (in-place ``op_`` variants included).
_ELEMENTWISE = {
    1: "add sub rsub mul div neg abs clamp clamp_min clamp_max relu hardtanh leaky_relu threshold "
    "maximum minimum where eq ne lt le gt ge floor_divide remainder fmod exp log sqrt rsqrt "
    "reciprocal pow tanh erf sin cos",
    2: "addcmul addcdiv",
    3: "hardsigmoid softplus",
    4: "sigmoid hardswish",
    5: "silu gelu mish _softmax _log_softmax",
}

#: Operators that only move, view or create data: 0 FLOPs on purpose.
_DATA_MOVEMENT = (
    "view _unsafe_view reshape _reshape_alias expand permute transpose t unsqueeze squeeze "
    "flatten cat stack slice select split split_with_sizes unbind narrow clone contiguous copy_ "
    "_to_copy detach alias as_strided lift_fresh lift_fresh_copy empty empty_like empty_strided "
    "zeros zeros_like ones ones_like full full_like fill_ zero_ new_zeros new_ones new_empty "
    "new_full scalar_tensor arange index index_select gather repeat constant_pad_nd flip roll "
    "upsample_nearest2d"
)


def _ops(names: str, inplace: bool = False) -> list[Any]:
    packets = [getattr(aten, name) for name in names.split()]
    if inplace:
        packets += [getattr(aten, n + "_") for n in names.split() if hasattr(aten, n + "_")]
    return packets


def _formulas() -> dict[Any, FlopFormula]:
    table: dict[Any, FlopFormula] = {}
    for flops, names in _ELEMENTWISE.items():
        table.update(dict.fromkeys(_ops(names, inplace=True), _per_output_element(flops)))
    groups: list[tuple[str, FlopFormula]] = [
        ("sum mean amax amin prod logsumexp argmax argmin topk", _per_input_element(1)),
        ("max min", _max_min_flop),
        ("var var_mean", _per_input_element(4)),
        ("std std_mean", _per_input_element(4, per_output=1)),
        ("linalg_vector_norm norm", _per_input_element(2, per_output=1)),
        ("avg_pool2d max_pool2d_with_indices", _pool_flop(2)),
        ("avg_pool3d max_pool3d_with_indices", _pool_flop(3)),
        (
            "_adaptive_avg_pool2d _adaptive_avg_pool3d adaptive_max_pool2d adaptive_max_pool3d",
            _adaptive_pool_flop,
        ),
        ("native_batch_norm _native_batch_norm_legit cudnn_batch_norm", _batch_norm_flop),
        ("_native_batch_norm_legit_no_training", _batch_norm_eval_flop),
        ("native_layer_norm", _norm_with_statistics_flop(weight_index=2)),
        ("native_group_norm", _norm_with_statistics_flop(weight_index=1)),
    ]
    for names, formula in groups:
        table.update(dict.fromkeys(_ops(names), formula))
    return table


_FLOP_FORMULAS = _formulas()

#: Names of the operators counted as 0 FLOPs on purpose (see ``uncounted_ops``).
FREE_OPS = frozenset(str(op) for op in _ops(_DATA_MOVEMENT))


# --- helpers ---------------------------------------------------------------------------------


def _check_shape(shape: Sequence[int], name: str, ndim: int | None = None) -> tuple[int, ...]:
    values = tuple(shape) if isinstance(shape, Sequence) else ()
    valid = bool(values) and all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values
    )
    if not valid or (ndim is not None and len(values) != ndim):
        expected = f"{ndim} positive ints" if ndim is not None else "a tuple of positive ints"
        raise ValueError(f"{name} must be {expected}, got {shape!r}")
    return values


def _model_device(model: nn.Module) -> torch.device:
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def _placed(model: nn.Module, device: torch.device | str | None) -> nn.Module:
    """``model`` itself, or a copy of it on ``device`` (the caller's model is never moved)."""
    if device is None:
        return model
    target, current = torch.device(device), _model_device(model)
    # "cuda" names the current CUDA device: treat it as the same device as "cuda:0" etc.
    if target.type == current.type and target.index in (None, current.index):
        return model
    return copy.deepcopy(model).to(device)


def _example_input(model: nn.Module, shape: tuple[int, ...]) -> Tensor:
    dtype = next(
        (p.dtype for p in model.parameters() if p.is_floating_point()), torch.get_default_dtype()
    )
    return torch.randn(shape, device=_model_device(model), dtype=dtype)


@contextmanager
def _training_mode(model: nn.Module, training: bool) -> Iterator[None]:
    """Put every submodule in train/eval mode, then restore each module's own flag."""
    flags = [(module, module.training) for module in model.modules()]
    model.train(training)
    try:
        yield
    finally:
        for module, flag in flags:
            module.training = flag


@contextmanager
def _preserved_state(model: nn.Module) -> Iterator[None]:
    """Undo what a training forward/backward does to a model: buffer updates and ``.grad``."""
    buffers = [(buffer, buffer.detach().clone()) for buffer in model.buffers()]
    grads = [(param, param.grad) for param in model.parameters()]
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, saved in buffers:
                buffer.copy_(saved)
        for param, grad in grads:
            param.grad = grad


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _output_sum(output: Any) -> Tensor:
    """A scalar that depends on every floating tensor of a model's output."""
    if isinstance(output, Tensor):
        return output.float().sum()
    if isinstance(output, Mapping):
        output = list(output.values())
    if isinstance(output, (list, tuple)) and output:
        return sum(_output_sum(item) for item in output)
    raise ValueError(
        f"train_step latency needs a model returning tensors (or lists/dicts of them), "
        f"got {type(output).__name__}"
    )


# --- the measures ----------------------------------------------------------------------------


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (shared parameters once; buffers such as BN statistics excluded)."""
    total = 0
    for name, param in model.named_parameters():
        if isinstance(param, nn.parameter.UninitializedParameter):
            raise ValueError(
                f"parameter {name!r} is not initialised yet (a lazy module); run one forward "
                "pass before counting parameters"
            )
        if param.requires_grad or not trainable_only:
            total += param.numel()
    return total


def count_flops(
    model: nn.Module, input_shape: Sequence[int], *, device: torch.device | str | None = None
) -> int:
    """FLOPs of one inference forward pass at ``input_shape`` (batch included).

    A multiply-add counts as 2 FLOPs (``torch.utils.flop_counter``'s convention); the
    per-element costs of the other operations are listed in this module's docstring. The model
    runs once in eval mode without gradients (each module's train/eval flag is restored);
    ``device`` runs it on a copy placed there (FLOPs do not depend on it).
    """
    shape = _check_shape(input_shape, "input_shape")
    model = _placed(model, device)
    x = _example_input(model, shape)
    counter = FlopCounterMode(display=False, custom_mapping=_FLOP_FORMULAS)
    with _training_mode(model, False), torch.no_grad(), counter:
        model(x)
    return counter.get_total_flops()


class _OpRecorder(TorchDispatchMode):
    """Records the operators that actually run (below FlopCounterMode's decompositions)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.add(str(func._overloadpacket))
        return func(*args, **(kwargs or {}))


def uncounted_ops(
    model: nn.Module, input_shape: Sequence[int], *, device: torch.device | str | None = None
) -> list[str]:
    """Operators of an inference forward pass that :func:`count_flops` counts as 0 FLOPs by
    accident: no formula covers them and they are not in :data:`FREE_OPS`. Empty is good."""
    shape = _check_shape(input_shape, "input_shape")
    model = _placed(model, device)
    x = _example_input(model, shape)
    counted = {str(op) for op in (*flop_registry, *_FLOP_FORMULAS)}
    recorder = _OpRecorder()
    counter = FlopCounterMode(display=False, custom_mapping=_FLOP_FORMULAS)
    # The recorder is entered first so that it sits below the counter and sees what runs after
    # the counter's decompositions of composite operators.
    with _training_mode(model, False), torch.no_grad(), recorder, counter:
        model(x)
    return sorted(recorder.ops - counted - FREE_OPS)


@dataclass(frozen=True)
class LatencyResult:
    """Wall-clock time of ``repeats`` timed calls (after ``warmup`` untimed ones)."""

    median_ms: float
    iqr_ms: float
    samples_ms: tuple[float, ...]
    batch_size: int
    mode: str
    device: str


def measure_latency(
    model: nn.Module,
    input_shape: Sequence[int],
    *,
    device: torch.device | str | None = None,
    warmup: int = 3,
    repeats: int = 10,
    mode: Literal["forward", "train_step"] = "forward",
) -> LatencyResult:
    """Median and inter-quartile range, in milliseconds, of a forward pass or a training step.

    ``forward``: eval mode under ``torch.inference_mode``. ``train_step``: train mode, forward
    plus backward of the sum of the outputs; no optimiser step (it would change the weights, and
    an SGD update is O(params), small against the backward pass). Buffers (BN running
    statistics) and ``.grad`` are restored afterwards, as is every module's train/eval flag. On
    CUDA the device is synchronised around each timed call. ``device`` times a copy of the
    model placed there. Batch size 1 in ``train_step`` fails for blocks whose BatchNorm needs
    two samples (``attn_blocks.info(name).train_batch1``).
    """
    shape = _check_shape(input_shape, "input_shape")
    if mode not in LATENCY_MODES:
        raise ValueError(f"mode must be one of {LATENCY_MODES}, got {mode!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be an int >= 0, got {warmup!r}")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be an int >= 1, got {repeats!r}")
    model = _placed(model, device)
    run_device = _model_device(model)
    x = _example_input(model, shape)
    params = list(model.parameters())

    def forward() -> None:
        model(x)

    def train_step() -> None:
        for param in params:
            param.grad = None
        _output_sum(model(x)).backward()

    samples = []
    with ExitStack() as stack:
        if mode == "forward":
            step = forward
            stack.enter_context(_training_mode(model, False))
            stack.enter_context(torch.inference_mode())
        else:
            step = train_step
            stack.enter_context(_training_mode(model, True))
            stack.enter_context(_preserved_state(model))
            stack.enter_context(torch.enable_grad())
        for _ in range(warmup):
            step()
        _synchronize(run_device)
        for _ in range(repeats):
            start = time.perf_counter()
            step()
            _synchronize(run_device)
            samples.append((time.perf_counter() - start) * 1e3)
    return latency_result(samples, batch_size=shape[0], mode=mode, device=str(run_device))


def latency_result(
    samples_ms: Sequence[float], *, batch_size: int, mode: str, device: str
) -> LatencyResult:
    """The median and inter-quartile range (inclusive quartiles) of timed calls, in ms."""
    samples = list(samples_ms)
    if len(samples) > 1:
        q1, median, q3 = statistics.quantiles(samples, n=4, method="inclusive")
    else:
        q1 = median = q3 = samples[0]
    return LatencyResult(
        median_ms=median,
        iqr_ms=q3 - q1,
        samples_ms=tuple(samples),
        batch_size=batch_size,
        mode=mode,
        device=device,
    )


def latency_profile(
    model: nn.Module,
    sample_shape: Sequence[int],
    batch_sizes: Sequence[int] = (1, 32),
    *,
    device: torch.device | str | None = None,
    warmup: int = 3,
    repeats: int = 10,
    mode: Literal["forward", "train_step"] = "forward",
) -> dict[int, LatencyResult]:
    """:func:`measure_latency` at each batch size for one ``(C, H, W)`` sample shape."""
    sample = _check_shape(sample_shape, "sample_shape", ndim=3)
    model = _placed(model, device)
    return {
        batch: measure_latency(model, (batch, *sample), warmup=warmup, repeats=repeats, mode=mode)
        for batch in batch_sizes
    }


def activation_memory(
    model: nn.Module, input_shape: Sequence[int], *, device: torch.device | str | None = None
) -> int:
    """Bytes of the tensors a training forward pass saves for its backward pass.

    Measured the same way on every device: ``torch.autograd.graph.saved_tensors_hooks`` sees
    each tensor autograd saves; tensors sharing a storage count once (with the storage's full
    size, which is what stays allocated), and storages of the model's parameters and buffers
    are excluded (the model holds them anyway). The input requires grad, as a block's input does
    inside a network, so a parameter-free block measured alone (SimAM) counts what it saves
    there; a layer that saves the input (a convolution, for its weight gradient) counts it.
    This is the memory that grows with depth and batch size between forward and backward; the
    allocator's transient peak on CUDA is :func:`cuda_activation_memory`. The model runs in
    train mode; its flags, buffers and gradients are restored.
    """
    shape = _check_shape(input_shape, "input_shape")
    model = _placed(model, device)
    x = _example_input(model, shape).requires_grad_()
    state = {t.untyped_storage().data_ptr() for t in (*model.parameters(), *model.buffers())}
    # The saved tensors are kept referenced here, so no storage is freed and its address reused
    # by another tensor during the pass.
    saved: dict[int, Tensor] = {}

    def pack(tensor: Tensor) -> Tensor:
        pointer = tensor.untyped_storage().data_ptr()
        if pointer not in state:
            saved.setdefault(pointer, tensor)
        return tensor

    with (
        _training_mode(model, True),
        _preserved_state(model),
        torch.enable_grad(),
        torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor),
    ):
        model(x)
    return sum(tensor.untyped_storage().nbytes() for tensor in saved.values())


def cuda_activation_memory(
    model: nn.Module, input_shape: Sequence[int], *, device: torch.device | str | None = None
) -> int:
    """Peak bytes the CUDA allocator holds during a training forward pass, above what it held
    before it (the model and the input).

    Unlike :func:`activation_memory` this includes the output, temporaries freed before the
    forward ends and kernel workspaces, so it is larger and depends on the kernels chosen. It
    resets the device's peak-memory statistics. Raises ``ValueError`` off CUDA.
    """
    shape = _check_shape(input_shape, "input_shape")
    model = _placed(model, device)
    run_device = _model_device(model)
    if run_device.type != "cuda":
        raise ValueError(
            f"cuda_activation_memory needs a model on a CUDA device, got {run_device}; pass "
            "device='cuda' or use activation_memory"
        )
    x = _example_input(model, shape)
    with _training_mode(model, True), _preserved_state(model), torch.enable_grad():
        _synchronize(run_device)
        torch.cuda.reset_peak_memory_stats(run_device)
        baseline = torch.cuda.memory_allocated(run_device)
        output = model(x)
        _synchronize(run_device)
        peak = torch.cuda.max_memory_allocated(run_device) - baseline
        del output
    return peak


@dataclass(frozen=True)
class ModelCost:
    """All costs of one model; :meth:`to_dict` gives the names trials record them under."""

    params: int
    flops: int
    activation_bytes: int
    batch_size: int
    latency_b1: LatencyResult | None = None
    latency_bN: LatencyResult | None = None
    cuda_activation_bytes: int | None = None
    ort_latency_b1: LatencyResult | None = None
    ort_latency_bN: LatencyResult | None = None

    def to_dict(self) -> dict[str, int | float | None]:
        """Stable keys (``None`` where a measure was not taken).

        ``params``: count; ``flops``: FLOPs per sample (multiply-add = 2); ``latency_ms_b1`` /
        ``latency_ms_bN``: median milliseconds at batch 1 / ``batch_size`` in PyTorch eager;
        ``ort_latency_ms_b1`` / ``ort_latency_ms_bN``: the same on ONNX Runtime's CPU provider
        (:mod:`search_spaces.ort_latency`); ``activation_bytes`` and ``cuda_activation_bytes``:
        bytes at ``batch_size``.
        """
        return {
            "params": self.params,
            "flops": self.flops,
            "latency_ms_b1": self.latency_b1.median_ms if self.latency_b1 else None,
            "latency_ms_bN": self.latency_bN.median_ms if self.latency_bN else None,
            "ort_latency_ms_b1": self.ort_latency_b1.median_ms if self.ort_latency_b1 else None,
            "ort_latency_ms_bN": self.ort_latency_bN.median_ms if self.ort_latency_bN else None,
            "activation_bytes": self.activation_bytes,
            "cuda_activation_bytes": self.cuda_activation_bytes,
            "batch_size": self.batch_size,
        }


def model_cost(
    model: nn.Module,
    sample_shape: Sequence[int],
    *,
    batch_size: int = 32,
    latency: bool = False,
    ort_latency: bool = False,
    device: torch.device | str | None = None,
    warmup: int = 3,
    repeats: int = 10,
) -> ModelCost:
    """Every cost of ``model`` for ``(C, H, W)`` inputs in one call.

    FLOPs are per sample (batch 1, as papers report them); activation memory is that of a
    training batch of ``batch_size`` (training mode needs more than one sample for some blocks'
    BatchNorm); latency (forward, only when ``latency=True``, it is the expensive part) is taken
    at batch 1 and at ``batch_size``; so is ONNX Runtime CPU latency with ``ort_latency=True``
    (an ONNX export and a session, about a second more). On CUDA the allocator's peak is
    recorded too.
    """
    sample = _check_shape(sample_shape, "sample_shape", ndim=3)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    model = _placed(model, device)
    timings = (
        latency_profile(model, sample, (1, batch_size), warmup=warmup, repeats=repeats)
        if latency
        else {}
    )
    ort_timings = {}
    if ort_latency:
        # Imported here: search_spaces.ort_latency builds on this module.
        from .ort_latency import ort_latency_profile

        ort_timings = ort_latency_profile(
            model, sample, (1, batch_size), warmup=warmup, repeats=repeats
        )
    on_cuda = _model_device(model).type == "cuda"
    return ModelCost(
        params=count_params(model),
        flops=count_flops(model, (1, *sample)),
        activation_bytes=activation_memory(model, (batch_size, *sample)),
        batch_size=batch_size,
        latency_b1=timings.get(1),
        latency_bN=timings.get(batch_size),
        cuda_activation_bytes=(
            cuda_activation_memory(model, (batch_size, *sample)) if on_cuda else None
        ),
        ort_latency_b1=ort_timings.get(1),
        ort_latency_bN=ort_timings.get(batch_size),
    )
