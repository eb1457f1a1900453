"""Trained weights of search trials, kept while the trial can still be on the Pareto front.

A COMPLETE trial's weights (:func:`save_checkpoint`) are uploaded to the study's artifact store
when it finishes (:mod:`nas.artifacts`; the id is the trial's ``weights_artifact``), where export
reads them from any machine. Its objective values are final, so once another completed trial
dominates it, it can never be on the front again and its weights are removed, by whichever
worker notices first; pruned and failed trials keep none. A duplicate architecture points at the
weights of the trial whose results it reused.

Studies written by 0.1.0 kept the file on the disk of the machine that trained the trial
(:data:`nas.trial_schema.CHECKPOINT`, ``host:path``, read with :func:`checkpoint_location`);
such files are still deleted once dominated, by a worker on that host.
"""

from __future__ import annotations

import socket
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
import torch
from optuna.trial import TrialState

from search_spaces.spec import ArchSpec

from . import trial_schema as schema
from .artifacts import remove_weights, study_artifact_store
from .files import written_in_one_step
from .pareto import front_trials
from .trial_schema import checkpoint_location

if TYPE_CHECKING:
    from optuna.artifacts._protocol import ArtifactStore

__all__ = [
    "CHECKPOINT_FORMAT",
    "checkpoint_location",
    "delete_dominated_checkpoints",
    "load_checkpoint",
    "save_checkpoint",
]

#: Bumped when the layout of the saved dict changes; ``load_checkpoint`` refuses other versions.
CHECKPOINT_FORMAT = 1


def save_checkpoint(
    path: Path,
    *,
    model: torch.nn.Module,
    spec: ArchSpec,
    trial_number: int,
    study_name: str,
    input_shape: tuple[int, int, int],
    class_names: tuple[str, ...],
    mean: torch.Tensor | None,
    std: torch.Tensor | None,
) -> None:
    """Write a trial's trained weights with everything needed to rebuild and feed the model:
    the ArchSpec, the input shape, the class names and the input normalisation (images scaled
    to [0, 1], then ``(x - mean) / std`` per channel)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "arch": spec.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "trial": trial_number,
        "study": study_name,
        "input_shape": list(input_shape),
        "class_names": list(class_names),
        "mean": None if mean is None else mean.detach().cpu().flatten().tolist(),
        "std": None if std is None else std.detach().cpu().flatten().tolist(),
    }
    with written_in_one_step(path) as partial:  # a killed worker leaves no half checkpoint
        torch.save(payload, partial)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """The dict :func:`save_checkpoint` wrote (tensors on the CPU)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(
            f"{path} is not an attention-nas checkpoint of format {CHECKPOINT_FORMAT}; "
            "re-export it with this version of attention-nas"
        )
    return payload


def delete_dominated_checkpoints(
    study: optuna.Study, store: ArtifactStore | None = None
) -> list[int]:
    """Remove the weights of completed trials that are no longer on the front.

    A completed trial's values never change, so a dominated trial stays dominated, and one that
    violates a cost constraint never enters the front: their weights are no longer needed. Their
    artifacts go from ``store`` (default: the store the study's stored config names, opened only
    when there is something to remove); ``checkpoint`` files of 0.1.0 studies are deleted when
    they are on this host. Weights a duplicate shares with a front trial stay. A store that
    fails is reported with a warning, not raised: the next completed trial tries again, and the
    search goes on. Returns the numbers of the trials whose weights were removed now.
    """
    completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    on_front = {t.number for t in front_trials(study)}
    kept = {schema.WEIGHTS_ARTIFACT.get(t) for t in completed if t.number in on_front}
    host = socket.gethostname()
    deleted = []
    artifacts: dict[str, int] = {}  # artifact id -> the first dominated trial holding it
    for t in completed:
        if t.number in on_front:
            continue
        artifact = schema.WEIGHTS_ARTIFACT.get(t)
        if artifact and artifact not in kept:
            artifacts.setdefault(artifact, t.number)
        location = checkpoint_location(t)
        if location is None:
            continue
        w_host, path = location
        if w_host == host and path.exists():
            # Duplicates share their original's file: keep it while any of them is on the front.
            shared = any(
                checkpoint_location(o) == location and o.number in on_front for o in completed
            )
            if not shared:
                path.unlink()
                deleted.append(t.number)
    if artifacts:
        try:
            removed = remove_weights(
                study_artifact_store(study) if store is None else store, artifacts
            )
        except ValueError as exc:
            warnings.warn(
                f"the weights of dominated trials of study {study.study_name!r} were not "
                f"removed: {exc}; the next completed trial tries again",
                RuntimeWarning,
                stacklevel=2,
            )
            removed = set()
        deleted += [artifacts[artifact] for artifact in removed]
    return sorted(deleted)
