"""What an export writes beside the model: its measured costs, the model card (``model_card.md``)
and the folder's ``index.csv``."""

from __future__ import annotations

import csv
import json
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.trial import FrozenTrial
from torch import nn

from search_spaces.cost import measure_latency
from search_spaces.ort_latency import ONNX_OPSET, ORT_THREADS, ort_latency_profile
from search_spaces.spec import ArchSpec

from .. import trial_schema as schema
from .formats import _TORCHSCRIPT_NOTES, VERIFY_ATOL, VERIFY_RTOL

INDEX_COSTS = (
    "params",
    "flops",
    "latency_ms_b1",
    "latency_ms_bN",
    "ort_latency_ms_b1",
    "ort_latency_ms_bN",
)
INDEX_FIELDS = (
    "dir",
    "study",
    "trial",
    "duplicate_of",
    "summary",
    "digest",
    "val_acc",
    *INDEX_COSTS,
    "torchscript",
)


def _costs(
    trial: FrozenTrial, model: nn.Module, shape: tuple[int, ...]
) -> dict[str, tuple[Any, str]]:
    """Each cost with where it comes from; latencies the search did not take (eager, and ONNX
    Runtime's with :data:`ORT_THREADS` threads) are measured now on this machine's CPU."""
    cost = schema.cost(trial)
    batch = int(cost.get("batch_size") or 32)
    host = schema.worker_host_pid(trial)[0] or "?"
    costs = {key: (value, f"measured during the search on {host}") for key, value in cost.items()}
    for key, size in (("latency_ms_b1", 1), ("latency_ms_bN", batch)):
        if cost.get(key) is None:
            result = measure_latency(model, (size, *shape), device="cpu")
            where = f"{socket.gethostname()}'s CPU, {torch.get_num_threads()} threads"
            costs[key] = (result.median_ms, f"measured at export on {where}")
    if cost.get("ort_latency_ms_b1") is None or cost.get("ort_latency_ms_bN") is None:
        timings = ort_latency_profile(model, shape, (1, batch))
        where = f"measured at export on {socket.gethostname()}'s CPU"
        costs["ort_latency_ms_b1"] = (timings[1].median_ms, where)
        costs["ort_latency_ms_bN"] = (timings[batch].median_ms, where)
    costs["batch_size"] = (batch, "")
    return costs


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "not measured"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.4g}{unit}"
    return f"{int(value):,}{unit}"


def _mib(value: Any) -> str:
    return "not measured" if value is None else f"{value / 2**20:.2f} MiB"


def _model_card(
    study: optuna.Study,
    trial: FrozenTrial,
    spec: ArchSpec,
    payload: Mapping[str, Any],
    costs: Mapping[str, tuple[Any, str]],
    torchscript: str,
) -> str:
    config = schema.stored_config(study)  # checked before anything is written
    data, training = config["data"], config["training"]
    folder = f"trial_{trial.number}"
    names = list(study.metric_names or ["val_acc"])
    values = dict(zip(names, trial.values, strict=False))
    shape = tuple(payload["input_shape"])
    duplicate = schema.DUPLICATE_OF.get(trial)
    batch = costs["batch_size"][0]
    cuts = ", ".join(
        f"{key}={data[key]}" for key in ("per_class", "val_per_class") if data.get(key)
    )
    sites = [
        f"| {site} | {choice.block} | {json.dumps(dict(choice.params))} | {choice.position} |"
        for site, choice in spec.attended_sites().items()
    ] or ["| (none) | | | |"]
    objectives = ", ".join(
        f"{name} ({d.name.lower()})" for name, d in zip(names, study.directions, strict=False)
    )
    lines = [
        f"# {spec.summary()}",
        "",
        f"Trial {trial.number} of the attention-nas study `{study.study_name}` "
        f"(objectives: {objectives}). Architecture digest `{spec.digest()}`.",
    ]
    if duplicate is not None:
        lines += [
            "",
            f"This trial repeated the architecture of trial {duplicate}; the weights are those "
            f"of trial {duplicate}, which trained it.",
        ]
    lines += [
        "",
        "## Architecture",
        "",
        f"Backbone `{spec.backbone}` {json.dumps(dict(spec.backbone_args))}, "
        f"input channels: {spec.in_channels}, classes: {spec.num_classes}. Attention blocks:",
        "",
        "| site | block | params | position |",
        "|---|---|---|---|",
        *sites,
        "",
        "`arch.json` is the full ArchSpec: `search_spaces.build.build_model("
        "ArchSpec.from_json(text))` rebuilds the untrained network.",
        "",
        "## Metrics",
        "",
        "| metric | value | note |",
        "|---|---|---|",
        f"| val_acc | {values.get('val_acc', float('nan')):.4f} | search-time validation "
        f"accuracy after {schema.EPOCHS_RUN.get(trial, training['epochs'])} epochs, on the "
        f"search's validation split of `{data['name']}` (val_fraction={data['val_fraction']}"
        f"{', ' + cuts if cuts else ''}). The search selected on it, so it is optimistic. "
        "**It is not a test accuracy**: retrain with `nas train` for one. |",
        f"| params | {_fmt(_value(costs, 'params'))} | every parameter, buffers excluded |",
        f"| flops | {_fmt(_value(costs, 'flops'))} | one forward pass of one sample, a "
        "multiply-add counts 2 |",
        f"| latency_ms_b1 | {_fmt(_value(costs, 'latency_ms_b1'), ' ms')} | median forward at "
        f"batch 1, {costs['latency_ms_b1'][1]} |",
        f"| latency_ms_bN | {_fmt(_value(costs, 'latency_ms_bN'), ' ms')} | median forward at "
        f"batch {batch}, {costs['latency_ms_bN'][1]} |",
        f"| ort_latency_ms_b1 | {_fmt(_value(costs, 'ort_latency_ms_b1'), ' ms')} | median "
        f"ONNX Runtime run of this model.onnx at batch 1 (CPUExecutionProvider, {ORT_THREADS} "
        f"intra-op and inter-op thread), {costs['ort_latency_ms_b1'][1]} |",
        f"| ort_latency_ms_bN | {_fmt(_value(costs, 'ort_latency_ms_bN'), ' ms')} | the same at "
        f"batch {batch}, {costs['ort_latency_ms_bN'][1]} |",
        f"| activation_bytes | {_mib(_value(costs, 'activation_bytes'))} | saved for "
        f"backward, training batch of {batch} |",
        f"| cuda_activation_bytes | {_mib(_value(costs, 'cuda_activation_bytes'))} | CUDA "
        f"allocator peak, training batch of {batch} |",
        "",
        "## Input and output",
        "",
        f"Input: float32 `(batch, {', '.join(map(str, shape))})`. Scale pixel values to [0, 1], "
        "then normalise per channel: `(x - mean) / std` with "
        + (
            f"mean = {_floats(payload['mean'])} and std = {_floats(payload['std'])} (statistics "
            "of the search's training split)."
            if payload["mean"] is not None
            else "nothing (the study trained without normalisation)."
        ),
        "",
        f"Output: logits `(batch, {spec.num_classes})`; class i is "
        f"{json.dumps(list(payload['class_names']))}[i].",
        "",
        "## Files and loading",
        "",
        "- `weights.pt`: state dict and the metadata above "
        "(`torch.load(path, weights_only=True)`).",
        f"- `model.onnx`: ONNX opset {ONNX_OPSET}, input `input`, output `logits`, dynamic batch.",
        f"- `model.ts`: TorchScript, {_TORCHSCRIPT_NOTES[torchscript]}.",
        "- `config.json`: the study's data and training settings, for retraining.",
        "",
        "All three formats were checked against the eager model on a random batch "
        f"(atol {VERIFY_ATOL}, rtol {VERIFY_RTOL}) when exported.",
        "",
        "```python",
        "import nas  # attention-nas",
        f'model = nas.load("{folder}")  # eval mode; model.checkpoint_info: mean, std, classes',
        "logits = model(x)",
        "",
        "import onnxruntime",
        f'session = onnxruntime.InferenceSession("{folder}/model.onnx")',
        'logits = session.run(None, {"input": x.numpy()})[0]',
        "",
        "import torch",
        f'logits = torch.jit.load("{folder}/model.ts")(x)',
        "```",
        "",
        "## Retraining",
        "",
        f"`nas train {folder}/arch.json` retrains the architecture from scratch on the full "
        "training pool (the search's train and validation images, without per-class cuts) with "
        f"the settings of `config.json` ({training['epochs']} epochs, {training['optimizer']}, "
        f"lr {training['lr']}, {training['schedule']} schedule) and reports the accuracy on the "
        "held-out test split, which the search never saw. Results go to "
        f"`{folder}/retrained/`.",
        "",
    ]
    return "\n".join(lines)


def _value(costs: Mapping[str, tuple[Any, str]], key: str) -> Any:
    return costs.get(key, (None, ""))[0]


def _floats(values: Sequence[float]) -> str:
    return "[" + ", ".join(f"{v:.6g}" for v in values) + "]"


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def _update_index(out_dir: Path, rows: list[dict[str, Any]]) -> None:
    """Rewrite ``index.csv`` with these rows and the earlier ones whose folders still exist."""
    index = out_dir / "index.csv"
    kept: dict[str, dict[str, Any]] = {}
    if index.is_file():
        with index.open(newline="") as handle:
            for row in csv.DictReader(handle):
                if (out_dir / row.get("dir", "")).is_dir() and row.get("dir"):
                    kept[row["dir"]] = row
    for row in rows:
        kept[row["dir"]] = row
    with index.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=INDEX_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for name in sorted(kept, key=_dir_key):
            writer.writerow(kept[name])


def _dir_key(name: str) -> tuple[int, str]:
    number = name.rpartition("_")[2]
    return (int(number), name) if number.isdigit() else (-1, name)
