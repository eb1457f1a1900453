"""Export trained trials of a study as self-contained model folders, and load them back.

:func:`export_trials` writes ``<out_dir>/trial_<N>/`` for each chosen trial (given numbers, or
the Pareto front) and lists them in ``<out_dir>/index.csv``:

* ``arch.json``: the :class:`~search_spaces.spec.ArchSpec` (rebuild with ``build_model``);
* ``weights.pt``: the trial's checkpoint (state dict, arch, input shape, class names,
  normalisation), loadable with ``torch.load(..., weights_only=True)`` and :func:`load`. It is
  downloaded from the study's artifact store (:mod:`nas.artifacts`), so any machine that reaches
  the storage and the store exports; studies of 0.1.0 read it from the training host's disk;
* ``model.onnx``: ONNX (opset :data:`ONNX_OPSET`, dynamic batch axis, input ``input``, output
  ``logits``);
* ``model.ts``: TorchScript (scripted, or traced where scripting fails; the card says which);
* ``config.json``: the study's ``data`` and ``training`` sections, to retrain the architecture
  (``nas.retrain``);
* ``model_card.md``: what the model is, its search-time metrics and costs, how to feed and load it.

Every export is verified before it is put in place: ONNX (onnxruntime, CPU), TorchScript and
:func:`load` must reproduce the eager model's logits on a random batch, or nothing is written.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import socket
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
import torch
from optuna.trial import FrozenTrial, TrialState
from torch import nn

from search_spaces.build import build_model
from search_spaces.cost import measure_latency
from search_spaces.spec import ArchSpec

from . import trial_schema as schema
from .artifacts import ArtifactNotFound, describe_store, download_weights, study_artifact_store
from .checkpoints import checkpoint_location, load_checkpoint
from .data import default_cache_dir
from .pareto import front_trials

if TYPE_CHECKING:
    from optuna.artifacts._protocol import ArtifactStore

#: ONNX opset of ``model.onnx``: supported by every onnxruntime release since 1.14.
ONNX_OPSET = 17
#: Exported formats must match eager logits within these tolerances.
VERIFY_ATOL = 1e-4
VERIFY_RTOL = 1e-4
#: Batch size of the verification input; differs from the export example's to test the batch axis.
VERIFY_BATCH = 3
EXPORT_BATCH = 2
_TORCHSCRIPT_NOTES = {
    "script": "compiled with torch.jit.script",
    "trace": "recorded with torch.jit.trace (scripting failed), so Python control flow is fixed "
    "to the path taken by a batch of the input shape",
}
INDEX_COSTS = ("params", "flops", "latency_ms_b1", "latency_ms_bN")
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


# -- loading ----------------------------------------------------------------------------------


def load(path: str | Path) -> nn.Module:
    """The trained model in eval mode, from an export folder, its ``weights.pt``, a retrained
    ``weights.pt`` or a search checkpoint (``trial_<N>.pt``).

    The model is rebuilt from the stored ArchSpec and its weights are loaded strictly. It takes
    normalised input (``model.checkpoint_info`` holds the input shape, mean, std and class names,
    plus the study and trial it came from); ``model.arch_spec`` is its ArchSpec.
    """
    path = Path(path)
    if path.is_dir():
        if not (path / "weights.pt").is_file() and (path / "arch.json").is_file():
            raise FileNotFoundError(
                f"{path} holds an architecture without weights (arch.json only); train it with "
                "`nas train` first, then load its retrained/ folder"
            )
        path = path / "weights.pt"
    return _model_from_payload(load_checkpoint(path))


def _model_from_payload(payload: Mapping[str, Any]) -> nn.Module:
    # A fixed seed: the weights are overwritten, and the caller's RNG must not move.
    model = build_model(ArchSpec.from_dict(payload["arch"]), seed=0)
    model.load_state_dict(payload["state_dict"])
    model.checkpoint_info = {
        key: payload[key] for key in ("study", "trial", "input_shape", "class_names", "mean", "std")
    }
    return model.eval()


# -- choosing trials --------------------------------------------------------------------------


def _choose(study: optuna.Study, trials: Sequence[int] | None, pareto: bool) -> list[FrozenTrial]:
    if (trials is None) == (not pareto) or (trials is not None and not trials):
        raise ValueError("choose the trials to export: give trial numbers or pareto=True, not both")
    if pareto:
        front = front_trials(study)
        if not front:
            raise ValueError(
                f"study {study.study_name!r} has no completed (feasible) trial, so no Pareto "
                "front to export; run the search further (nas search)"
            )
        return sorted(front, key=lambda t: t.number)
    everything = study.get_trials(deepcopy=False)
    chosen = []
    for number in dict.fromkeys(trials):
        if (
            isinstance(number, bool)
            or not isinstance(number, int)
            or not (0 <= number < len(everything))
        ):
            raise ValueError(
                f"study {study.study_name!r} has no trial {number!r}; its trials are numbered "
                f"0 to {len(everything) - 1} (see nas status)"
            )
        chosen.append(everything[number])
    return chosen


def _label(study: optuna.Study, trial: FrozenTrial) -> str:
    return f"trial {trial.number} of study {study.study_name!r}"


def _weights_source(study: optuna.Study, trial: FrozenTrial) -> str | Path:
    """Where an exportable trial's weights are: its artifact id, or the checkpoint file of a
    0.1.0 study; a ValueError naming the trial and the fix for any trial whose weights cannot
    be exported from here."""
    label = _label(study, trial)
    if trial.state == TrialState.PRUNED:
        raise ValueError(
            f"{label} was pruned (at epoch {schema.PRUNED_AT_EPOCH.get(trial, '?')}): "
            "pruned trials are never on the front and keep no weights; export a COMPLETE "
            "trial, or retrain its architecture with `nas train` (`nas export --arch-only "
            f"--trial {trial.number}` writes its arch.json)"
        )
    if trial.state != TrialState.COMPLETE:
        reason = schema.FAIL_REASON.get(trial)
        raise ValueError(
            f"{label} is {trial.state.name}, not COMPLETE"
            + (f" ({reason})" if reason else "")
            + ": only completed trials have trained weights; export a COMPLETE trial"
        )
    artifact = schema.WEIGHTS_ARTIFACT.get(trial)
    if artifact:
        return artifact
    if schema.by_supernet(trial):
        raise ValueError(
            f"{label} was evaluated on the study's supernet (shared weights), not trained on its "
            "own, so it has no weights to export; run `nas confirm` to train the front "
            "stand-alone, then `nas export --pareto` exports the confirmed front (`nas export "
            f"--arch-only --trial {trial.number}` writes its arch.json for `nas train`)"
        )
    location = checkpoint_location(trial)
    if location is None:
        raise ValueError(
            f"{label} has no recorded checkpoint (the study predates saved weights); retrain "
            "its architecture with `nas train` (`nas export --arch-only --trial "
            f"{trial.number}` writes its arch.json)"
        )
    host, path = location
    if host != socket.gethostname():
        raise ValueError(
            f"the weights of {label} are on host {host!r} at {path}; run the export there "
            f"(this is {socket.gethostname()!r})"
        )
    if not path.is_file():
        # Off the front: nas.checkpoints deleted its weights.
        if trial.number not in {t.number for t in front_trials(study)}:
            raise ValueError(
                f"the checkpoint of {label} ({path}) was deleted because " + _off_the_front(trial)
            )
        raise ValueError(
            f"the checkpoint of {label} is missing from {path} (moved or deleted by hand); "
            "restore the file, or retrain the architecture with `nas train`"
        )
    return path


def _download(
    study: optuna.Study, trial: FrozenTrial, store: ArtifactStore, artifact: str, folder: Path
) -> Path:
    """The trial's weights, downloaded from the store to ``folder``; a ValueError naming the
    trial, the store and the fix where the store no longer holds them."""
    label = _label(study, trial)
    try:
        return download_weights(store, artifact, folder / f"trial_{trial.number}.pt")
    except ArtifactNotFound:
        pass
    where = describe_store(store)
    if trial.number not in {t.number for t in front_trials(study)}:
        raise ValueError(
            f"the weights of {label} (artifact {artifact}) were removed from {where} because "
            + _off_the_front(trial)
        ) from None
    raise ValueError(
        f"the weights of {label} (artifact {artifact}) are missing from {where}: removed by "
        "hand, or the study's workers wrote to another store (a relative study.artifacts folder "
        "is read from the current folder); export where the workers' store is reachable, or "
        "retrain the architecture with `nas train`"
    ) from None


def _off_the_front(trial: FrozenTrial) -> str:
    """Why a trial's weights are gone, and what to do instead (the end of both messages)."""
    return (
        "the trial is dominated (or violates a cost constraint): only trials on the Pareto front "
        "keep their weights. Export the front (pareto=True), or retrain this architecture from "
        f"scratch with `nas train` (`nas export --arch-only --trial {trial.number}` writes its "
        "arch.json)"
    )


def _stored_config(study: optuna.Study) -> dict[str, Any]:
    config = schema.stored_config(study)
    if config is None:
        raise ValueError(
            f"study {study.study_name!r} was not created by `nas search` (no stored config), so "
            "its trials cannot be exported"
        )
    return config


def _retrain_config(study: optuna.Study, trial: FrozenTrial) -> dict[str, Any]:
    """``config.json``: the data and training sections (and ``backbone.pretrained`` of a study
    that started from pretrained weights), and where the architecture came from."""
    config = _stored_config(study)
    data = dict(config["data"])
    if data.get("cache_dir") == str(default_cache_dir()):
        data["cache_dir"] = None  # the default: let the retraining machine use its own
    settings = {
        "source": {"study": study.study_name, "trial": trial.number},
        "data": data,
        "training": dict(config["training"]),
    }
    if config.get("backbone", {}).get("pretrained"):  # retrained from the same start
        settings["backbone"] = dict(config["backbone"])
    return settings


# -- exporting --------------------------------------------------------------------------------


def export_arch(study: optuna.Study, trial: int, out_dir: str | Path) -> Path:
    """Write only ``arch.json`` and ``config.json`` of any trial that has an architecture (also
    pruned, failed or dominated ones) to ``<out_dir>/trial_<N>/``, for ``nas train``."""
    (frozen,) = _choose(study, [trial], pareto=False)
    if not schema.ARCH.has(frozen):
        raise ValueError(
            f"trial {trial} of study {study.study_name!r} has no architecture (it failed "
            "before one was sampled)"
        )
    folder = Path(out_dir) / f"trial_{trial}"
    folder.mkdir(parents=True, exist_ok=True)
    spec = ArchSpec.from_dict(schema.ARCH.get(frozen))
    (folder / "arch.json").write_text(spec.to_json(indent=2) + "\n")
    _write_json(folder / "config.json", _retrain_config(study, frozen))
    return folder


def export_trials(
    study: optuna.Study,
    out_dir: str | Path,
    *,
    trials: Sequence[int] | None = None,
    pareto: bool = False,
    store: ArtifactStore | None = None,
) -> list[Path]:
    """Export the given trials, or the Pareto front, to ``<out_dir>/trial_<N>/``.

    The weights come from ``store`` (default: the artifact store named in the study's stored
    config; a 0.1.0 study's from this host's disk). Every chosen trial is checked and its
    weights downloaded before anything is written (unknown, not COMPLETE, weights on another
    host or removed as dominated: a ValueError naming the trial and the fix). Each folder is
    built and verified in a temporary folder, then its files replace those in place (a
    ``retrained/`` subfolder from ``nas train`` is kept). A duplicate architecture is exported
    with the weights of the trial it duplicates. Returns the folders, and updates
    ``<out_dir>/index.csv``.
    """
    _require_onnxruntime()
    chosen = _choose(study, trials, pareto)
    _stored_config(study)  # every check fails before anything is written
    sources = [(trial, _weights_source(study, trial)) for trial in chosen]
    with tempfile.TemporaryDirectory(prefix="nas-export-") as downloads:
        if store is None and any(isinstance(source, str) for _, source in sources):
            store = study_artifact_store(study)
        weights = [
            (t, s if isinstance(s, Path) else _download(study, t, store, s, Path(downloads)))
            for t, s in sources
        ]
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        rows, folders = [], []
        for trial, path in weights:
            folder = out_dir / f"trial_{trial.number}"
            # Latency timing draws random inputs from the global generator: give it back.
            with torch.random.fork_rng(devices=[]):
                rows.append(_export_one(study, trial, path, folder))
            folders.append(folder)
    _update_index(out_dir, rows)
    return folders


def export_confirmed_front(
    study: optuna.Study, out_dir: str | Path, *, store: ArtifactStore | None = None
) -> tuple[list[Path], str] | None:
    """Export the confirmed front of ``study`` (its newest ``nas confirm`` study) to
    ``<out_dir>/confirmed/trial_<N>/`` (N: the confirm study's trial), each architecture with the
    weights of its median repeat (:func:`nas.confirm.median_repeat`); returns the folders and a
    sentence saying what was exported, or None where the study has no confirmed front yet."""
    from .confirm import confirm_frame, find_confirm_study, median_repeat

    confirm = find_confirm_study(study)
    if confirm is None:
        return None
    frame = confirm_frame(confirm, study)
    if frame.empty or not frame["on_confirmed_front"].any():
        return None
    members = frame[frame["on_confirmed_front"]]
    chosen = [median_repeat(confirm, key).number for key in members["architecture"]]
    folders = export_trials(confirm, Path(out_dir) / "confirmed", trials=chosen, store=store)
    seeds = int(members["seeds"].min())
    what = (
        f"the confirmed front of {confirm.study_name!r} ({len(chosen)} architectures: "
        f"{', '.join(members['architecture'])}), each with the weights of its median repeat of "
        f"{seeds} or more seeds"
    )
    return folders, what


def _export_one(
    study: optuna.Study, trial: FrozenTrial, weights: Path, folder: Path
) -> dict[str, Any]:
    payload = load_checkpoint(weights)
    spec = ArchSpec.from_dict(schema.ARCH.get(trial))
    if ArchSpec.from_dict(payload["arch"]) != spec:
        raise ValueError(
            f"{weights} holds a different architecture than trial {trial.number} of study "
            f"{study.study_name!r} (another study wrote to the same runs_dir?); re-run the "
            "search under a new study name"
        )
    model = _model_from_payload(payload)
    shape = tuple(payload["input_shape"])
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        (staging / "arch.json").write_text(spec.to_json(indent=2) + "\n")
        torch.save(payload, staging / "weights.pt")
        _write_json(staging / "config.json", _retrain_config(study, trial))
        _export_onnx(model, shape, staging / "model.onnx")
        method = _export_torchscript(model, shape, staging / "model.ts")
        _verify(model, shape, staging, f"trial {trial.number}")
        costs = _costs(trial, model, shape)
        card = _model_card(study, trial, spec, payload, costs, method)
        (staging / "model_card.md").write_text(card)
        folder.mkdir(exist_ok=True)
        for file in staging.iterdir():
            os.replace(file, folder / file.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {
        "dir": folder.name,
        "study": study.study_name,
        "trial": trial.number,
        "duplicate_of": schema.DUPLICATE_OF.get(trial, ""),
        "summary": spec.summary(),
        "digest": spec.digest(),
        "val_acc": trial.values[0],
        **{key: _value(costs, key) for key in INDEX_COSTS},
        "torchscript": method,
    }


def _require_onnxruntime() -> None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise RuntimeError(
            f"export writes and verifies ONNX, which needs onnx and onnxruntime ({exc}); "
            "install them: pip install 'attention-nas[export]' (onnx, onnxruntime, onnxscript)"
        ) from None


def _example(shape: tuple[int, ...], batch: int) -> torch.Tensor:
    return torch.randn((batch, *shape), generator=torch.Generator().manual_seed(batch))


def _export_onnx(model: nn.Module, shape: tuple[int, ...], path: Path) -> None:
    with warnings.catch_warnings():
        # The TorchScript-based exporter warns that it is deprecated, and about constant folding;
        # correctness is checked by _verify instead.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (_example(shape, EXPORT_BATCH),),
            str(path),
            dynamo=False,
            opset_version=ONNX_OPSET,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        )


def _export_torchscript(model: nn.Module, shape: tuple[int, ...], path: Path) -> str:
    """Save ``torch.jit.script(model)``, or a trace where scripting fails; returns which."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated upstream
        try:
            module, method = torch.jit.script(model), "script"
        except Exception:  # a Python construct TorchScript does not support
            with torch.no_grad():
                module = torch.jit.trace(model, _example(shape, EXPORT_BATCH))
            method = "trace"
        torch.jit.save(module, str(path))
    return method


def _verify(model: nn.Module, shape: tuple[int, ...], folder: Path, label: str) -> None:
    """Raise unless the written ONNX, TorchScript and weights files reproduce eager logits."""
    import onnxruntime

    x = _example(shape, VERIFY_BATCH)
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


def _costs(
    trial: FrozenTrial, model: nn.Module, shape: tuple[int, ...]
) -> dict[str, tuple[Any, str]]:
    """Each cost with where it comes from; latencies the search did not take are measured now
    on this machine's CPU."""
    cost = schema.cost(trial)
    batch = int(cost.get("batch_size") or 32)
    host = schema.worker_host_pid(trial)[0] or "?"
    costs = {key: (value, f"measured during the search on {host}") for key, value in cost.items()}
    for key, size in (("latency_ms_b1", 1), ("latency_ms_bN", batch)):
        if cost.get(key) is None:
            result = measure_latency(model, (size, *shape), device="cpu")
            where = f"{socket.gethostname()}'s CPU, {torch.get_num_threads()} threads"
            costs[key] = (result.median_ms, f"measured at export on {where}")
    costs["batch_size"] = (batch, "")
    return costs


# -- the model card and the index -------------------------------------------------------------


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
    config = _stored_config(study)
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
