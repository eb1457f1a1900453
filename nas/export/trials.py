"""Export trained trials as self-contained model folders (weights from the study's artifact store),
and load them back."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
import torch
from optuna.trial import FrozenTrial, TrialState

from search_spaces.ort_latency import export_onnx
from search_spaces.spec import ArchSpec

from .. import trial_schema as schema
from ..artifacts import ArtifactNotFound, describe_store, download_weights, study_artifact_store
from ..checkpoints import checkpoint_location, load_checkpoint
from ..data import default_cache_dir
from ..pareto import front_trials
from .card import INDEX_COSTS, _costs, _model_card, _update_index, _value, _write_json
from .formats import _export_torchscript, _require_onnxruntime, _verify
from .loading import _model_from_payload

if TYPE_CHECKING:
    from optuna.artifacts._protocol import ArtifactStore


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
    from ..confirm import confirm_frame, find_confirm_study, median_repeat

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
        export_onnx(model, shape, staging / "model.onnx")
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
