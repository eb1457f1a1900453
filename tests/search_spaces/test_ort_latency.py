"""search_spaces.ort_latency: a model's latency on ONNX Runtime's CPU provider, from the graph
``nas export`` writes."""

import io
import math
import re
import sys

import numpy as np
import onnxruntime
import pytest
import torch

from search_spaces import ort_latency
from search_spaces.build import build_model
from search_spaces.cost import model_cost
from search_spaces.ort_latency import (
    ORT_DEVICE,
    ORT_THREADS,
    export_onnx,
    measure_session,
    missing_requirements,
    ort_latency_profile,
    ort_session,
)
from search_spaces.spec import ArchSpec, BlockChoice


def _small_model() -> torch.nn.Module:
    """A ResNet-8 of width 8 with SE at every site: convolutions, pooling and a gate."""
    spec = ArchSpec(
        "resnet8",
        backbone_args={"width": 8},
        in_channels=3,
        num_classes=10,
        sites={"stage1.0": BlockChoice("se", {"reduction": 4})},
    )
    return build_model(spec, seed=0)


class _FakeSession:
    """Counts ``run`` calls; what a session needs for measure_session."""

    def __init__(self) -> None:
        self.runs = 0

    def run(self, outputs, feed):
        assert feed["input"].dtype == np.float32
        self.runs += 1


def test_batch_n_is_slower_than_batch_1_and_each_is_a_finite_median():
    profile = ort_latency_profile(_small_model(), (3, 16, 16), (1, 32), warmup=2, repeats=7)
    assert set(profile) == {1, 32}
    for batch, result in profile.items():
        assert result.batch_size == batch and result.device == ORT_DEVICE
        assert len(result.samples_ms) == 7
        assert math.isfinite(result.median_ms) and result.median_ms > 0
        assert result.median_ms == pytest.approx(float(np.median(result.samples_ms)))
    # 32 images against one: far more than the noise of a median of 7.
    assert profile[32].median_ms > 2 * profile[1].median_ms


def test_median_and_spread_of_the_timed_runs_only(monkeypatch):
    # perf_counter is read twice per timed run (start, end): runs of 3, 1, 4 and 1.5 ms.
    ticks = iter([0.0, 0.003, 1.0, 1.001, 2.0, 2.004, 3.0, 3.0015])
    monkeypatch.setattr(ort_latency, "perf_counter", lambda: next(ticks))
    session = _FakeSession()
    result = measure_session(session, (1, 3, 4, 4), warmup=2, repeats=4)
    assert session.runs == 2 + 4  # the warm-up runs are run, not timed
    assert result.samples_ms == pytest.approx((3.0, 1.0, 4.0, 1.5))
    # Sorted 1, 1.5, 3, 4: median (1.5 + 3) / 2; inclusive quartiles 1.375 and 3.25.
    assert result.median_ms == pytest.approx(2.25)
    assert result.iqr_ms == pytest.approx(3.25 - 1.375)
    assert (result.batch_size, result.mode) == (1, "forward")


def test_the_timed_graph_computes_the_models_logits_with_pinned_threads(monkeypatch):
    options = []
    real = onnxruntime.InferenceSession

    def spy(model, sess_options=None, **kwargs):
        options.append((sess_options, kwargs))
        return real(model, sess_options, **kwargs)

    monkeypatch.setattr(onnxruntime, "InferenceSession", spy)
    model = _small_model().eval()
    session = ort_session(model, (3, 16, 16))
    x = torch.randn(5, 3, 16, 16)  # not the export's batch of 2: the batch axis is dynamic
    (logits,) = session.run(None, {"input": x.numpy()})
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(logits), model(x), atol=1e-4, rtol=1e-4)
    ((sess_options, kwargs),) = options
    assert sess_options.intra_op_num_threads == sess_options.inter_op_num_threads == ORT_THREADS
    assert kwargs["providers"] == ["CPUExecutionProvider"]


def test_export_to_a_buffer_and_to_a_file_write_the_same_graph(tmp_path):
    model = _small_model().eval()
    buffer = io.BytesIO()
    export_onnx(model, (3, 16, 16), buffer)
    export_onnx(model, (3, 16, 16), tmp_path / "model.onnx")
    assert buffer.getvalue() == (tmp_path / "model.onnx").read_bytes()


def test_model_cost_measures_ort_latency_only_when_asked():
    model = _small_model()
    without = model_cost(model, (3, 16, 16), batch_size=4).to_dict()
    assert without["ort_latency_ms_b1"] is None and without["ort_latency_ms_bN"] is None
    cost = model_cost(model, (3, 16, 16), batch_size=4, ort_latency=True, repeats=3)
    assert (cost.ort_latency_b1.batch_size, cost.ort_latency_bN.batch_size) == (1, 4)
    assert cost.to_dict()["ort_latency_ms_bN"] == cost.ort_latency_bN.median_ms > 0
    assert cost.latency_b1 is None  # eager latency stays off


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"warmup": -1}, "warmup must be an int >= 0, got -1"),
        ({"repeats": 0}, "repeats must be an int >= 1, got 0"),
        ({"repeats": True}, "repeats must be an int >= 1, got True"),
        (
            {"input_shape": (0, 3, 4, 4)},
            "input_shape must be a tuple of positive ints, got (0, 3, 4, 4)",
        ),
    ],
)
def test_bad_measurement_settings_are_refused(kwargs, message):
    arguments = {"input_shape": (1, 3, 4, 4), **kwargs}
    with pytest.raises(ValueError, match=re.escape(message)):
        measure_session(_FakeSession(), **arguments)


def test_a_batched_sample_shape_is_refused():
    with pytest.raises(ValueError, match="sample_shape must be 3 positive ints"):
        ort_latency_profile(_small_model(), (1, 3, 16, 16))


def test_missing_requirements_names_what_cannot_be_imported(monkeypatch):
    assert missing_requirements() == []
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    assert missing_requirements() == ["onnxruntime"]
    monkeypatch.setitem(sys.modules, "onnx", None)
    assert missing_requirements() == ["onnx", "onnxruntime"]
