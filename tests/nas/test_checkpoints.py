"""Per-trial weights: uploaded to the artifact store when a trial completes, removed once it is
dominated (and 0.1.0 studies' local files deleted)."""

import optuna
import pytest
import torch
from optuna.trial import TrialState

from nas import trial_schema as schema
from nas.artifacts import download_weights, open_artifact_store, upload_weights
from nas.checkpoints import delete_dominated_checkpoints, load_checkpoint, save_checkpoint
from nas.config import StudyConfig
from nas.pareto import front_trials
from nas.worker import run_search
from search_spaces.build import build_model
from search_spaces.spec import ArchSpec


def test_a_search_keeps_weights_exactly_for_the_front(tiny_config, tmp_path):
    cfg = StudyConfig.from_dict(tiny_config(study={"n_trials": 6}))
    study = run_search(cfg, progress=False)
    completed = study.get_trials(states=(TrialState.COMPLETE,))
    front = front_trials(study)
    assert len(front) < len(completed)
    store_folder = tmp_path / "runs" / "tiny" / "artifacts"  # the default store
    kept = {p.name for p in store_folder.iterdir()}
    assert kept == {schema.WEIGHTS_ARTIFACT.get(t) for t in front}
    assert {schema.WEIGHTS_ARTIFACT.get(t) for t in completed} > kept  # dominated ones removed
    assert all(schema.WEIGHTS_ARTIFACT.has(t) for t in completed)
    store = open_artifact_store(str(store_folder))
    for trial in front:
        path = download_weights(store, schema.WEIGHTS_ARTIFACT.get(trial), tmp_path / "w.pt")
        payload = load_checkpoint(path)
        path.unlink()
        spec = ArchSpec.from_dict(schema.ARCH.get(trial))
        assert payload["arch"] == spec.to_dict() and payload["input_shape"] == [1, 8, 8]
        assert payload["trial"] == trial.number and payload["study"] == "tiny"
        model = build_model(spec, seed=0)
        model.load_state_dict(payload["state_dict"])  # strict: every key matches
        assert len(payload["mean"]) == 1 and len(payload["class_names"]) == 10


def _save(path, number: int) -> None:
    spec = ArchSpec.from_dict(_tiny_spec())
    save_checkpoint(
        path,
        model=build_model(spec, seed=0),
        spec=spec,
        trial_number=number,
        study_name="s",
        input_shape=(1, 8, 8),
        class_names=tuple("0123456789"),
        mean=None,
        std=None,
    )


def test_dominated_artifacts_are_removed_and_shared_ones_kept(tmp_path):
    store = open_artifact_store(str(tmp_path / "store"))
    study = optuna.create_study(directions=["maximize", "minimize"])

    def add(values, duplicate_of=None):
        trial = study.ask()
        if duplicate_of is None:
            _save(tmp_path / "w.pt", trial.number)
            upload_weights(store, trial, tmp_path / "w.pt")
        else:  # a duplicate shares its original's artifact
            schema.DUPLICATE_OF.set(trial, duplicate_of)
            original = study.trials[duplicate_of]
            schema.WEIGHTS_ARTIFACT.set(trial, schema.WEIGHTS_ARTIFACT.get(original))
        study.tell(trial, values)
        return schema.WEIGHTS_ARTIFACT.get(study.trials[trial.number])

    ids = [add((0.9, 10.0)), add((0.8, 20.0)), add((0.5, 5.0))]  # trial 1 is dominated by 0
    add((0.9, 10.0), duplicate_of=0)
    add((0.8, 20.0), duplicate_of=1)

    def stored() -> set[str]:
        return {p.name for p in (tmp_path / "store").iterdir()}

    assert delete_dominated_checkpoints(study, store) == [1]
    assert stored() == {ids[0], ids[2]}  # trial 3 shares trial 0's artifact: it stays
    assert delete_dominated_checkpoints(study, store) == []  # already removed: not an error

    best = add((0.95, 1.0))  # dominates every other trial
    assert delete_dominated_checkpoints(study, store) == [0, 2]
    assert stored() == {best}


def test_dominated_local_checkpoints_of_old_studies_are_deleted(tmp_path):
    """Studies of 0.1.0 kept each trial's weights on its host (``checkpoint`` = host:path)."""
    study = optuna.create_study(directions=["maximize", "minimize"])
    values = {0: (0.9, 10.0), 1: (0.8, 20.0), 2: (0.5, 5.0)}  # trial 1 is dominated by 0
    for number, vals in values.items():
        trial = study.ask()
        path = tmp_path / f"trial_{number}.pt"
        _save(path, number)
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
