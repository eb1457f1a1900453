"""The deployable formats of an exported model: ONNX (written by
:func:`search_spaces.ort_latency.export_onnx`) and TorchScript, each verified against the eager
model's logits before anything is written."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

# The ONNX export is search_spaces.ort_latency's: the search's ONNX Runtime latency times the
# graph written here (same exporter, opset ONNX_OPSET, names and dynamic batch axis).
from search_spaces.ort_latency import EXPORT_BATCH, INSTALL_LINE, example_input

from .loading import load

#: Exported formats must match eager logits within these tolerances.
VERIFY_ATOL = 1e-4
VERIFY_RTOL = 1e-4
#: Batch size of the verification input; differs from the export example's to test the batch axis.
VERIFY_BATCH = 3
_TORCHSCRIPT_NOTES = {
    "script": "compiled with torch.jit.script",
    "trace": "recorded with torch.jit.trace (scripting failed), so Python control flow is fixed "
    "to the path taken by a batch of the input shape",
}


def _require_onnxruntime() -> None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise RuntimeError(
            f"export writes and verifies ONNX, which needs onnx and onnxruntime ({exc}); "
            f"install them: {INSTALL_LINE} (onnx, onnxruntime, onnxscript)"
        ) from None


def _export_torchscript(model: nn.Module, shape: tuple[int, ...], path: Path) -> str:
    """Save ``torch.jit.script(model)``, or a trace where scripting fails; returns which."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated upstream
        try:
            module, method = torch.jit.script(model), "script"
        except Exception:  # a Python construct TorchScript does not support
            with torch.no_grad():
                module = torch.jit.trace(model, example_input(shape, EXPORT_BATCH))
            method = "trace"
        torch.jit.save(module, str(path))
    return method


def _verify(model: nn.Module, shape: tuple[int, ...], folder: Path, label: str) -> None:
    """Raise unless the written ONNX, TorchScript and weights files reproduce eager logits."""
    import onnxruntime

    x = example_input(shape, VERIFY_BATCH)
    with torch.no_grad():
        expected = model(x)
        session = onnxruntime.InferenceSession(
            str(folder / "model.onnx"), providers=["CPUExecutionProvider"]
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            scripted = torch.jit.load(str(folder / "model.ts"))
        outputs = {
            "ONNX (onnxruntime)": torch.from_numpy(session.run(None, {"input": x.numpy()})[0]),
            "TorchScript": scripted(x),
            "weights.pt (nas.load)": load(folder / "weights.pt")(x),
        }
    for name, output in outputs.items():
        if output.shape != expected.shape or not torch.allclose(
            output, expected, atol=VERIFY_ATOL, rtol=VERIFY_RTOL
        ):
            error = (
                (output - expected).abs().max().item()
                if output.shape == expected.shape
                else f"shape {tuple(output.shape)}"
            )
            raise RuntimeError(
                f"export of {label} failed verification: {name} output differs from the eager "
                f"model (max abs error {error}, tolerance atol={VERIFY_ATOL}, "
                f"rtol={VERIFY_RTOL}) on a random batch of {VERIFY_BATCH}; nothing was written"
            )
