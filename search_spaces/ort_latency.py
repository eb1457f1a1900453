"""Latency on the deployment runtime: a model exported to ONNX and timed with ONNX Runtime's CPU
provider.

Eager latency (:func:`search_spaces.cost.measure_latency`) times PyTorch; a model deployed with
ONNX Runtime runs another graph (operators fused, constants folded) with other kernels, and the
operators attention blocks are made of (pooling, small matrix products, element-wise gates) are
those whose cost depends most on the runtime. Here the model is exported exactly as ``nas
export`` writes ``model.onnx`` (:func:`export_onnx`, which ``nas.export.formats`` calls: the same
exporter, opset, names and dynamic batch axis), in memory, and ``InferenceSession.run`` is timed
with ``CPUExecutionProvider``, :data:`ORT_THREADS` intra-op and inter-op threads, sequential
execution and ONNX Runtime's default (full) graph optimisation. The session and its
optimisation are made once per model, before the warm-up runs, and are not timed.

Needs the ``export`` extra (``onnx``, ``onnxruntime``): :func:`missing_requirements` says what is
absent, so a study asking for these costs is refused when configured, not in its first trial.
"""

from __future__ import annotations

import importlib.util
import io
import warnings
from collections.abc import Sequence
from pathlib import Path
from time import perf_counter
from typing import IO, Any

import numpy as np
import torch
from torch import nn

from .cost import LatencyResult, _check_shape, _placed, latency_result

#: ONNX opset of the exported graph: supported by every onnxruntime release since 1.14.
ONNX_OPSET = 17
#: Batch size of the export's example input (the batch axis is dynamic).
EXPORT_BATCH = 2
#: Intra-op and inter-op threads of the timed sessions: one, like the searches' one-thread
#: trials, so that a measurement does not depend on how many cores other jobs leave free.
ORT_THREADS = 1
#: The cost names (``ModelCost.to_dict``) of ONNX Runtime latency, at batch 1 and batch N.
ORT_LATENCY_COSTS = ("ort_latency_ms_b1", "ort_latency_ms_bN")
#: ``LatencyResult.device`` of ONNX Runtime measurements.
ORT_DEVICE = "onnxruntime CPUExecutionProvider"
#: Modules the measurement imports, and how to install them.
ORT_REQUIREMENTS = ("onnx", "onnxruntime")
INSTALL_LINE = "pip install 'attention-nas[export]'"


def missing_requirements() -> list[str]:
    """The modules of :data:`ORT_REQUIREMENTS` that cannot be imported here (empty: all can)."""
    return [name for name in ORT_REQUIREMENTS if importlib.util.find_spec(name) is None]


def example_input(sample_shape: Sequence[int], batch: int) -> torch.Tensor:
    """A batch of ``batch`` random inputs, the same for the same arguments (seeded by batch)."""
    return torch.randn((batch, *sample_shape), generator=torch.Generator().manual_seed(batch))


def export_onnx(
    model: nn.Module, sample_shape: Sequence[int], target: str | Path | IO[bytes]
) -> None:
    """Write ``model`` as ONNX (opset :data:`ONNX_OPSET`, input ``input``, output ``logits``,
    dynamic batch axis) to a path or a binary file object, tracing it in eval mode."""
    with warnings.catch_warnings():
        # The TorchScript-based exporter warns that it is deprecated, and about constant folding;
        # nas.export checks the written graph's logits against eager instead.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example_input(sample_shape, EXPORT_BATCH),),
            target if isinstance(target, io.IOBase) else str(target),
            dynamo=False,
            opset_version=ONNX_OPSET,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        )


def ort_session(
    model: nn.Module, sample_shape: Sequence[int], *, threads: int = ORT_THREADS
) -> Any:
    """An ``onnxruntime.InferenceSession`` of ``model`` (a CPU copy of it, exported in memory)
    on ``CPUExecutionProvider`` with ``threads`` intra-op and inter-op threads."""
    import onnxruntime

    sample = _check_shape(sample_shape, "sample_shape", ndim=3)
    buffer = io.BytesIO()
    export_onnx(_placed(model, "cpu"), sample, buffer)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = threads
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    return onnxruntime.InferenceSession(
        buffer.getvalue(), options, providers=["CPUExecutionProvider"]
    )


def measure_session(
    session: Any, input_shape: Sequence[int], *, warmup: int = 3, repeats: int = 10
) -> LatencyResult:
    """Median and inter-quartile range, in ms, of ``session.run`` on a random float32 batch of
    ``input_shape``: ``warmup`` untimed runs, then ``repeats`` timed ones."""
    shape = _check_shape(input_shape, "input_shape")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be an int >= 0, got {warmup!r}")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be an int >= 1, got {repeats!r}")
    feed = {"input": example_input(shape[1:], shape[0]).numpy().astype(np.float32)}
    for _ in range(warmup):
        session.run(None, feed)
    samples = []
    for _ in range(repeats):
        start = perf_counter()
        session.run(None, feed)
        samples.append((perf_counter() - start) * 1e3)
    return latency_result(samples, batch_size=shape[0], mode="forward", device=ORT_DEVICE)


def ort_latency_profile(
    model: nn.Module,
    sample_shape: Sequence[int],
    batch_sizes: Sequence[int] = (1, 32),
    *,
    warmup: int = 3,
    repeats: int = 10,
    threads: int = ORT_THREADS,
) -> dict[int, LatencyResult]:
    """ONNX Runtime latency of ``model`` at each batch size for ``(C, H, W)`` inputs: one
    export and one session, then :func:`measure_session` per batch size."""
    sample = _check_shape(sample_shape, "sample_shape", ndim=3)
    session = ort_session(model, sample, threads=threads)
    return {
        batch: measure_session(session, (batch, *sample), warmup=warmup, repeats=repeats)
        for batch in batch_sizes
    }
