"""The costs an export states and how the model card writes them, with known values."""

import socket
from types import SimpleNamespace

import pytest
import torch
from optuna.trial import create_trial

from nas import trial_schema as schema
from nas.export import card
from nas.export.card import _costs, _fmt, _mib


def _trial(cost: dict, worker: str = "search-host:4242"):
    attrs = {schema.COST.key: cost, schema.WORKER.key: worker}
    return create_trial(values=[0.9], user_attrs=attrs)


@pytest.fixture
def timed(monkeypatch):
    """measure_latency replaced by a record of its calls: 1.5 ms at batch 1, 7.25 ms else."""
    calls = []

    def measure(model, shape, *, device=None, **_):
        calls.append((tuple(shape), device))
        return SimpleNamespace(median_ms=1.5 if shape[0] == 1 else 7.25)

    monkeypatch.setattr(card, "measure_latency", measure)
    return calls


def test_search_costs_are_kept_with_the_searching_host(timed):
    stored = {"params": 1234, "flops": 5e6, "latency_ms_b1": 0.8, "latency_ms_bN": 3.0}
    costs = _costs(_trial({**stored, "batch_size": 16}), torch.nn.Identity(), (1, 8, 8))
    assert timed == []  # the search measured both latencies
    for key, value in stored.items():
        assert costs[key] == (value, "measured during the search on search-host")
    assert costs["batch_size"] == (16, "")


def test_missing_latencies_are_measured_at_export_on_this_cpu(timed):
    costs = _costs(_trial({"params": 10, "batch_size": 16}), torch.nn.Identity(), (3, 4, 4))
    assert timed == [((1, 3, 4, 4), "cpu"), ((16, 3, 4, 4), "cpu")]
    where = f"measured at export on {socket.gethostname()}'s CPU, {torch.get_num_threads()} threads"
    assert costs["latency_ms_b1"] == (1.5, where)
    assert costs["latency_ms_bN"] == (7.25, where)


def test_a_trial_without_batch_size_or_worker_measures_at_batch_32(timed):
    costs = _costs(_trial({}, worker=""), torch.nn.Identity(), (1, 8, 8))
    assert [shape for shape, _ in timed] == [(1, 1, 8, 8), (32, 1, 8, 8)]
    assert costs["batch_size"] == (32, "")
    stored = _costs(_trial({"params": 5}, worker=""), torch.nn.Identity(), (1, 8, 8))
    assert stored["params"] == (5, "measured during the search on ?")


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (None, " ms", "not measured"),
        (1234567, "", "1,234,567"),
        (2048.0, "", "2,048"),
        (0.123456, " ms", "0.1235 ms"),
        (12.5, " ms", "12.5 ms"),
    ],
)
def test_numbers_in_the_card(value, unit, text):
    assert _fmt(value, unit) == text


def test_memory_in_the_card_is_in_mib():
    assert _mib(3 * 2**20) == "3.00 MiB"
    assert _mib(None) == "not measured"
