"""Per-trial weights: saved when a trial completes, deleted once it is dominated."""

import socket

import numpy as np
import optuna
import pytest
import torch
from optuna.trial import TrialState

from nas import trial_schema as schema
from nas.checkpoints import (
    checkpoint_location,
    delete_dominated_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from nas.config import StudyConfig
from nas.pareto import non_dominated_sort
from nas.worker import run_search
from search_spaces.build import build_model
from search_spaces.spec import ArchSpec


def test_a_search_keeps_weights_exactly_for_the_front(tiny_config):
    cfg = StudyConfig.from_dict(tiny_config(study={"n_trials": 6}))
    study = run_search(cfg, progress=False)
    completed = study.get_trials(states=(TrialState.COMPLETE,))
    points = np.array([t.values for t in completed])
    front = {completed[i].number for i in non_dominated_sort(points, ["maximize", "minimize"])[0]}
    for t in completed:
        host, path = checkpoint_location(t)
        assert host == socket.gethostname()
        assert path.exists() == (
            t.number in front
            or any(checkpoint_location(o) == (host, path) and o.number in front for o in completed)
        )
    for number in front:
        trial = study.trials[number]
        payload = load_checkpoint(checkpoint_location(trial)[1])
        spec = ArchSpec.from_dict(schema.ARCH.get(trial))
        assert payload["arch"] == spec.to_dict() and payload["input_shape"] == [1, 8, 8]
        model = build_model(spec, seed=0)
        model.load_state_dict(payload["state_dict"])  # strict: every key matches
        assert len(payload["mean"]) == 1 and len(payload["class_names"]) == 10


def test_dominated_checkpoints_are_deleted_and_front_ones_kept(tmp_path):
    study = optuna.create_study(directions=["maximize", "minimize"])
    spec = ArchSpec.from_dict(_tiny_spec())
    model = build_model(spec, seed=0)
    values = {0: (0.9, 10.0), 1: (0.8, 20.0), 2: (0.5, 5.0)}  # trial 1 is dominated by 0
    for number, vals in values.items():
        trial = study.ask()
        path = tmp_path / f"trial_{number}.pt"
        save_checkpoint(
            path,
            model=model,
            spec=spec,
            trial_number=number,
            study_name="s",
            input_shape=(1, 8, 8),
            class_names=tuple("0123456789"),
            mean=None,
            std=None,
        )
        schema.CHECKPOINT.set(trial, schema.checkpoint_value(path))
        study.tell(trial, vals)
    assert delete_dominated_checkpoints(study) == [1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trial_0.pt", "trial_2.pt"]


def test_load_checkpoint_refuses_foreign_files(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(ValueError, match="not an attention-nas checkpoint"):
        load_checkpoint(path)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


def _tiny_spec() -> dict:
    return {
        "backbone": "resnet8",
        "backbone_args": {"width": 4},
        "in_channels": 1,
        "num_classes": 10,
        "sites": {},
    }
