"""What an export states, checks and refuses, on hand-made studies and models (no search): its
costs and model card, index.csv, the verification of its formats, the trials it takes."""

import copy
import json
import socket
from types import SimpleNamespace

import optuna
import pytest
import torch
from optuna.trial import FrozenTrial, create_trial

from nas import trial_schema as schema
from nas.config import StudyConfig
from nas.export import card
from nas.export import load as nas_load
from nas.export.card import INDEX_FIELDS, _costs, _fmt, _mib, _model_card, _update_index
from search_spaces.spec import ArchSpec, BlockChoice


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


@pytest.fixture
def ort_timed(monkeypatch):
    """ort_latency_profile replaced by a record of its calls: 0.25 ms at batch 1, 2 ms else."""
    calls = []

    def profile(model, shape, batches):
        calls.append((tuple(shape), tuple(batches)))
        return {b: SimpleNamespace(median_ms=0.25 if b == 1 else 2.0) for b in batches}

    monkeypatch.setattr(card, "ort_latency_profile", profile)
    return calls


@pytest.mark.parametrize(
    "stored",
    [{}, {"ort_latency_ms_b1": 0.1}, {"ort_latency_ms_bN": 0.9}],
    ids=["neither", "only b1", "only bN"],
)
def test_onnx_runtime_latency_missing_either_batch_is_measured_at_export(timed, ort_timed, stored):
    costs = _costs(_trial({**stored, "batch_size": 16}), torch.nn.Identity(), (1, 8, 8))
    assert ort_timed == [((1, 8, 8), (1, 16))]
    where = f"measured at export on {socket.gethostname()}'s CPU"
    assert (costs["ort_latency_ms_b1"], costs["ort_latency_ms_bN"]) == ((0.25, where), (2.0, where))


def test_onnx_runtime_latency_of_the_search_is_kept(timed, ort_timed):
    stored = {"ort_latency_ms_b1": 0.1, "ort_latency_ms_bN": 0.9, "batch_size": 16}
    costs = _costs(_trial(stored), torch.nn.Identity(), (1, 8, 8))
    assert ort_timed == []
    assert costs["ort_latency_ms_bN"] == (0.9, "measured during the search on search-host")


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


def _card_study(names: list[str] | None, **data) -> optuna.Study:
    """A study as ``nas search`` stores it (the tiny config), without any trial."""
    from conftest import TINY

    config = copy.deepcopy(TINY)
    config["study"]["runs_dir"] = "/runs"
    config["data"].update(data)
    study = optuna.create_study(study_name="tiny", directions=["maximize", "minimize"])
    if names:
        study.set_metric_names(names)
    study.set_user_attr(schema.STUDY_CONFIG, StudyConfig.from_dict(config).to_dict())
    return study


def _card_trial(number: int, attrs: dict) -> FrozenTrial:
    trial = create_trial(values=[0.8125, 56789.0], user_attrs=attrs)
    trial.number = number
    return trial


CARD_COSTS = {
    "params": (1234, "measured during the search on hostA"),
    "flops": (56789.0, "measured during the search on hostA"),
    "latency_ms_b1": (0.123456, "measured during the search on hostA"),
    "latency_ms_bN": (2.5, "measured at export on hostB's CPU, 1 threads"),
    "ort_latency_ms_b1": (0.05, "measured at export on hostB's CPU"),
    "ort_latency_ms_bN": (0.75, "measured during the search on hostA"),
    "activation_bytes": (3 * 2**20, "measured during the search on hostA"),
    "cuda_activation_bytes": (None, "measured during the search on hostA"),
    "batch_size": (16, ""),
}
#: The whole card of trial 7 (a duplicate of trial 3, SE and ECA blocks, normalised digits).
CARD = """\
# resnet8 | stage1: se(r=2)@post | stage2: eca(k=3)@standard

Trial 7 of the attention-nas study `tiny` (objectives: val_acc (maximize), flops (minimize)). Architecture digest `{digest}`.

This trial repeated the architecture of trial 3; the weights are those of trial 3, which trained it.

## Architecture

Backbone `resnet8` {{"width": 4}}, input channels: 1, classes: 3. Attention blocks:

| site | block | params | position |
|---|---|---|---|
| stage1.0 | se | {{"reduction": 2}} | post |
| stage2.0 | eca | {{"beta": 1, "gamma": 2, "kernel_size": 3}} | standard |

`arch.json` is the full ArchSpec: `search_spaces.build.build_model(ArchSpec.from_json(text))` rebuilds the untrained network.

## Metrics

| metric | value | note |
|---|---|---|
| val_acc | 0.8125 | search-time validation accuracy after 1 epochs, on the search's validation split of `digits` (val_fraction=0.1, per_class=6, val_per_class=4). The search selected on it, so it is optimistic. **It is not a test accuracy**: retrain with `nas train` for one. |
| params | 1,234 | every parameter, buffers excluded |
| flops | 56,789 | one forward pass of one sample, a multiply-add counts 2 |
| latency_ms_b1 | 0.1235 ms | median forward at batch 1, measured during the search on hostA |
| latency_ms_bN | 2.5 ms | median forward at batch 16, measured at export on hostB's CPU, 1 threads |
| ort_latency_ms_b1 | 0.05 ms | median ONNX Runtime run of this model.onnx at batch 1 (CPUExecutionProvider, 1 intra-op and inter-op thread), measured at export on hostB's CPU |
| ort_latency_ms_bN | 0.75 ms | the same at batch 16, measured during the search on hostA |
| activation_bytes | 3.00 MiB | saved for backward, training batch of 16 |
| cuda_activation_bytes | not measured | CUDA allocator peak, training batch of 16 |

## Input and output

Input: float32 `(batch, 1, 8, 8)`. Scale pixel values to [0, 1], then normalise per channel: `(x - mean) / std` with mean = [0.25] and std = [0.125] (statistics of the search's training split).

Output: logits `(batch, 3)`; class i is ["a", "b", "c"][i].

## Files and loading

- `weights.pt`: state dict and the metadata above (`torch.load(path, weights_only=True)`).
- `model.onnx`: ONNX opset 17, input `input`, output `logits`, dynamic batch.
- `model.ts`: TorchScript, compiled with torch.jit.script.
- `config.json`: the study's data and training settings, for retraining.

All three formats were checked against the eager model on a random batch (atol 0.0001, rtol 0.0001) when exported.

```python
import nas  # attention-nas
model = nas.load("trial_7")  # eval mode; model.checkpoint_info: mean, std, classes
logits = model(x)

import onnxruntime
session = onnxruntime.InferenceSession("trial_7/model.onnx")
logits = session.run(None, {{"input": x.numpy()}})[0]

import torch
logits = torch.jit.load("trial_7/model.ts")(x)
```

## Retraining

`nas train trial_7/arch.json` retrains the architecture from scratch on the full training pool (the search's train and validation images, without per-class cuts) with the settings of `config.json` (2 epochs, sgd, lr 0.05, cosine schedule) and reports the accuracy on the held-out test split, which the search never saw. Results go to `trial_7/retrained/`.
"""


def test_the_model_card_states_architecture_metrics_inputs_and_how_to_load_and_retrain():
    spec = ArchSpec(
        "resnet8",
        {"width": 4},
        in_channels=1,
        num_classes=3,
        sites={
            "stage1.0": BlockChoice("se", {"reduction": 2}, "post"),
            "stage2.0": BlockChoice("eca", {"kernel_size": 3}, "standard"),
        },
    )
    payload = {"input_shape": [1, 8, 8], "mean": [0.25], "std": [0.125], "class_names": list("abc")}
    study = _card_study(["val_acc", "flops"])
    trial = _card_trial(7, {schema.EPOCHS_RUN.key: 1, schema.DUPLICATE_OF.key: 3})
    card = _model_card(study, trial, spec, payload, CARD_COSTS, "script")
    assert card == CARD.format(digest=spec.digest())


def test_a_card_without_attention_names_or_normalisation_says_so():
    spec = ArchSpec("resnet8", {"width": 4}, in_channels=1, num_classes=10, sites={})
    payload = {
        "input_shape": [1, 8, 8],
        "mean": None,
        "std": None,
        "class_names": list("0123456789"),
    }
    study = _card_study(None, per_class=None, val_per_class=None)  # metric names unset
    costs = {**CARD_COSTS, "cuda_activation_bytes": (2 * 2**20, "measured on a GPU")}
    card = _model_card(study, _card_trial(2, {}), spec, payload, costs, "trace")
    assert (
        "| cuda_activation_bytes | 2.00 MiB | CUDA allocator peak, training batch of 16 |" in card
    )
    assert "(objectives: val_acc (maximize)). Architecture digest" in card
    assert "\n| (none) | | | |\n" in card
    assert "This trial repeated" not in card
    assert (
        "| val_acc | 0.8125 | search-time validation accuracy after 2 epochs, on the search's "
        in card
    )
    assert "validation split of `digits` (val_fraction=0.1). The search selected on it" in card
    assert "`(x - mean) / std` with nothing (the study trained without normalisation)." in card
    assert "- `model.ts`: TorchScript, recorded with torch.jit.trace (scripting failed)" in card
    rgb = {**payload, "mean": [0.49139968, 0.48215841, 0.44653091], "std": [0.25, 0.5, 1.0]}
    card = _model_card(study, _card_trial(2, {}), spec, rgb, costs, "script")
    assert "mean = [0.4914, 0.482158, 0.446531] and std = [0.25, 0.5, 1]" in card


def _index_rows(path) -> list[dict[str, str]]:
    import csv

    with (path / "index.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_the_index_keeps_rows_of_folders_still_there_sorted_by_trial_number(tmp_path):
    def row(name: str, trial: int) -> dict:
        return {"dir": name, "study": "s", "trial": trial, "val_acc": 0.5, "extra": "ignored"}

    for name in ("trial_1", "trial_2", "trial_10", "trial_9", "zoo", "old_trial_5"):
        (tmp_path / name).mkdir()
    (tmp_path / "index.csv").write_text("trial,val_acc\n3,0.5\n")  # not ours: no dir column
    _update_index(tmp_path, [row("trial_10", 10), row("trial_2", 2), row("trial_1", 1)])
    _update_index(tmp_path, [row("trial_9", 9), row("zoo", -1), row("trial_2", 22)])
    _update_index(tmp_path, [row("old_trial_5", 5)])
    rows = _index_rows(tmp_path)
    # Folders without a number after their last "_" first, then by that number.
    order = ["zoo", "trial_1", "trial_2", "old_trial_5", "trial_9", "trial_10"]
    assert [r["dir"] for r in rows] == order
    assert rows[2]["trial"] == "22"  # the newer row of a folder replaces the older
    assert list(rows[0]) == list(INDEX_FIELDS)  # the documented columns, nothing else
    (tmp_path / "trial_9").rmdir()  # a folder removed by hand loses its row at the next export
    _update_index(tmp_path, [])
    assert [r["dir"] for r in _index_rows(tmp_path)] == [n for n in order if n != "trial_9"]


def _exported(folder, model, spec, onnx_model=None, ts_model=None):
    """``folder`` as export writes it: weights.pt of ``model``, ONNX and TorchScript of the
    models given (``model`` where None)."""
    from nas.checkpoints import save_checkpoint
    from nas.export.formats import _export_torchscript
    from search_spaces.ort_latency import export_onnx

    save_checkpoint(
        folder / "weights.pt", model=model, spec=spec, trial_number=0, study_name="s",
        input_shape=(1, 8, 8), class_names=tuple("0123456789"), mean=None, std=None,
    )  # fmt: skip
    export_onnx(onnx_model or model, (1, 8, 8), folder / "model.onnx")
    _export_torchscript(ts_model or model, (1, 8, 8), folder / "model.ts")
    return folder


def _digits_model(seed: int = 0, num_classes: int = 10):
    from search_spaces.build import build_model

    spec = ArchSpec("resnet8", {"width": 4}, in_channels=1, num_classes=num_classes, sites={})
    return build_model(spec, seed=seed).eval(), spec


def test_verification_passes_formats_that_reproduce_the_eager_logits(tmp_path):
    from nas.export.formats import _verify

    model, spec = _digits_model()
    _verify(model, (1, 8, 8), _exported(tmp_path, model, spec), "trial 0")  # raises otherwise


def test_a_format_off_by_more_than_its_tolerance_fails_with_its_largest_error(tmp_path):
    from nas.export.formats import VERIFY_BATCH, _verify
    from search_spaces.ort_latency import example_input

    model, spec = _digits_model()
    drifted = copy.deepcopy(model)
    with torch.no_grad():
        drifted.fc.bias.add_(torch.linspace(0.0, 0.01, 10))  # up to 100x the tolerance
    folder = _exported(tmp_path, model, spec, ts_model=drifted)
    x = example_input((1, 8, 8), VERIFY_BATCH)
    with torch.no_grad():
        error = (drifted(x) - model(x)).abs().max().item()
    with pytest.raises(RuntimeError) as caught:
        _verify(model, (1, 8, 8), folder, "trial 4")
    assert str(caught.value) == (
        f"export of trial 4 failed verification: TorchScript output differs from the eager "
        f"model (max abs error {error}, tolerance atol=0.0001, rtol=0.0001) on a random batch "
        "of 3; nothing was written"
    )


def test_weights_that_do_not_reproduce_the_model_are_named(tmp_path):
    from nas.export.formats import _verify

    model, spec = _digits_model()
    other, _ = _digits_model(seed=1)
    folder = _exported(tmp_path, other, spec, onnx_model=model, ts_model=model)
    with pytest.raises(RuntimeError, match=r"verification: weights\.pt \(nas\.load\) output"):
        _verify(model, (1, 8, 8), folder, "trial 4")


def test_a_format_with_other_output_shape_fails_naming_the_shape(tmp_path):
    from nas.export.formats import _verify

    model, spec = _digits_model()
    other, _ = _digits_model(num_classes=5)
    folder = _exported(tmp_path, model, spec, onnx_model=other)
    with pytest.raises(RuntimeError, match=r"ONNX \(onnxruntime\) output differs .*shape \(3, 5\)"):
        _verify(model, (1, 8, 8), folder, "trial 4")


def test_a_difference_within_the_tolerance_is_accepted(tmp_path):
    from nas.export.formats import _verify

    model, spec = _digits_model()
    nudged = copy.deepcopy(model)
    with torch.no_grad():
        nudged.fc.bias.add_(5e-5)  # below atol 1e-4 (plus rtol of the logits)
    _verify(model, (1, 8, 8), _exported(tmp_path, model, spec, ts_model=nudged), "trial 0")


# -- which trials an export takes, and what it refuses, on hand-made studies -------------------


def _stored_study(tiny: dict | None = None) -> optuna.Study:
    from conftest import TINY

    data = copy.deepcopy(tiny or TINY)
    data["study"]["runs_dir"] = "/runs"
    study = optuna.create_study(study_name="tiny", directions=["maximize", "minimize"])
    study.set_user_attr(schema.STUDY_CONFIG, StudyConfig.from_dict(data).to_dict())
    spec = ArchSpec("resnet8", {"width": 4}, in_channels=1, num_classes=10, sites={})
    for values in ([0.5, 2.0], [0.9, 1.0], [0.7, 3.0]):
        study.add_trial(create_trial(values=values, user_attrs={schema.ARCH.key: spec.to_dict()}))
    return study


def test_trials_to_export_are_checked_by_number(tmp_path):
    from nas.export.trials import _choose

    study = _stored_study()
    assert [t.number for t in _choose(study, [2, 0, 2], pareto=False)] == [2, 0]  # once each
    assert [t.number for t in _choose(study, None, pareto=True)] == [1]
    for bad in (3, -1, True, 1.0, "1"):
        with pytest.raises(ValueError) as caught:
            _choose(study, [bad], pareto=False)
        assert str(caught.value) == (
            f"study 'tiny' has no trial {bad!r}; its trials are numbered 0 to 2 (see nas status)"
        )
    for trials, pareto in (([1], True), (None, False), ([], False)):
        with pytest.raises(ValueError) as caught:
            _choose(study, trials, pareto)
        assert str(caught.value) == (
            "choose the trials to export: give trial numbers or pareto=True, not both"
        )
    empty = optuna.create_study(study_name="empty", directions=["maximize", "minimize"])
    with pytest.raises(ValueError) as caught:
        _choose(empty, None, pareto=True)
    assert str(caught.value) == (
        "study 'empty' has no completed (feasible) trial, so no Pareto front to export; run the "
        "search further (nas search)"
    )


def test_a_study_not_made_by_nas_search_is_refused(tmp_path):
    from nas.export import export_arch

    study = optuna.create_study(study_name="elsewhere")
    spec = ArchSpec("resnet8", {"width": 4}, in_channels=1, num_classes=10, sites={})
    study.add_trial(create_trial(value=0.5, user_attrs={schema.ARCH.key: spec.to_dict()}))
    with pytest.raises(ValueError) as caught:
        export_arch(study, 0, tmp_path)
    assert str(caught.value) == (
        "study 'elsewhere' was not created by `nas search` (no stored config), so its trials "
        "cannot be exported"
    )


def test_retraining_settings_keep_the_pretrained_start_of_the_search(tmp_path):
    from conftest import TINY

    from nas.export import export_arch

    folder = export_arch(_stored_study(), 1, tmp_path / "a")
    text = (folder / "config.json").read_text()
    plain = json.loads(text)
    assert text == json.dumps(plain, indent=2, sort_keys=True) + "\n"  # stable, readable diffs
    assert set(plain) == {"source", "data", "training"}
    with pytest.raises(FileNotFoundError) as caught:
        nas_load(folder)
    assert str(caught.value) == (
        f"{folder} holds an architecture without weights (arch.json only); train it with "
        "`nas train` first, then load its retrained/ folder"
    )
    old = _stored_study()  # a 0.1.0 study stored no backbone section
    old.set_user_attr(
        schema.STUDY_CONFIG,
        {k: v for k, v in schema.stored_config(old).items() if k != "backbone"},
    )
    config = json.loads((export_arch(old, 1, tmp_path / "c") / "config.json").read_text())
    assert "backbone" not in config
    pretrained = copy.deepcopy(TINY)
    pretrained["backbone"]["pretrained"] = "/weights/resnet8.pt"
    folder = export_arch(_stored_study(pretrained), 1, tmp_path / "b")
    config = json.loads((folder / "config.json").read_text())
    assert config["backbone"] == {"pretrained": "/weights/resnet8.pt"}
    assert config["source"] == {"study": "tiny", "trial": 1}


def test_export_without_onnxruntime_says_what_to_install(monkeypatch):
    import sys

    from nas.export.formats import _require_onnxruntime

    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(RuntimeError) as caught:
        _require_onnxruntime()
    assert str(caught.value).startswith("export writes and verifies ONNX, which needs onnx and ")
    assert str(caught.value).endswith(
        "; install them: pip install 'attention-nas[export]' (onnx, onnxruntime, onnxscript)"
    )


def test_trials_without_weights_to_export_say_what_to_do_instead(tmp_path):
    from nas.export import export_trials

    study = _stored_study()
    spec = schema.ARCH.get(study.trials[0])
    here = socket.gethostname()
    cases = {
        "supernet": {schema.EVALUATED_BY.key: "supernet"},
        "no checkpoint": {},
        "moved": {schema.CHECKPOINT.key: f"{here}:{tmp_path}/moved.pt"},
    }
    numbers, messages = {}, {}
    for name, attrs in cases.items():
        user_attrs = {schema.ARCH.key: spec, **attrs}
        study.add_trial(create_trial(values=[0.99, 0.5], user_attrs=user_attrs))
        numbers[name] = len(study.trials) - 1
    for name, number in numbers.items():
        with pytest.raises(ValueError) as caught:
            export_trials(study, tmp_path / "out", trials=[number])
        messages[name] = str(caught.value)
    n = numbers["supernet"]
    assert messages["supernet"] == (
        f"trial {n} of study 'tiny' was evaluated on the study's supernet (shared weights), not "
        "trained on its own, so it has no weights to export; run `nas confirm` to train the "
        "front stand-alone, then `nas export --pareto` exports the confirmed front (`nas export "
        f"--arch-only --trial {n}` writes its arch.json for `nas train`)"
    )
    n = numbers["no checkpoint"]
    assert messages["no checkpoint"] == (
        f"trial {n} of study 'tiny' has no recorded checkpoint (the study predates saved "
        f"weights); retrain its architecture with `nas train` (`nas export --arch-only --trial "
        f"{n}` writes its arch.json)"
    )
    assert messages["moved"] == (
        f"the checkpoint of trial {numbers['moved']} of study 'tiny' is missing from "
        f"{tmp_path}/moved.pt (moved or deleted by hand); restore the file, or retrain the "
        "architecture with `nas train`"
    )
    assert not (tmp_path / "out").exists()
