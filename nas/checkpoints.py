"""Trained weights of search trials, kept while the trial can still be on the Pareto front.

A COMPLETE trial's weights are saved to ``<runs_dir>/<study>/checkpoints/trial_<N>.pt`` when it
finishes. Its objective values are final, so once another completed trial dominates it, it can
never be on the front again and its file is deleted; pruned and failed trials keep none. A
duplicate architecture points at the checkpoint of the trial whose results it reused.

Where the file lives is stored on the trial (:data:`nas.trial_schema.CHECKPOINT`, ``host:path``,
read with :func:`checkpoint_location`), so that a study run on several machines says on which
machine an architecture's weights are.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.trial import TrialState

from search_spaces.spec import ArchSpec

from .pareto import front_trials
from .trial_schema import checkpoint_location

__all__ = [
    "CHECKPOINT_FORMAT",
    "checkpoint_dir",
    "checkpoint_location",
    "delete_dominated_checkpoints",
    "load_checkpoint",
    "save_checkpoint",
]

#: Bumped when the layout of the saved dict changes; ``load_checkpoint`` refuses other versions.
CHECKPOINT_FORMAT = 1


def checkpoint_dir(runs_dir: str | Path, study_name: str) -> Path:
    return Path(runs_dir) / study_name / "checkpoints"


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
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)  # atomic: a killed worker never leaves a half-written checkpoint


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


def delete_dominated_checkpoints(study: optuna.Study) -> list[int]:
    """Delete this host's checkpoint files of completed trials that are no longer on the front.

    A completed trial's values never change, so a dominated trial stays dominated, and one that
    violates a cost constraint never enters the front: their weights are no longer needed.
    Returns the numbers of the trials whose files were deleted.
    """
    completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    on_front = {t.number for t in front_trials(study)}
    host = socket.gethostname()
    deleted = []
    for t in completed:
        location = checkpoint_location(t)
        if t.number in on_front or location is None:
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
    return deleted
