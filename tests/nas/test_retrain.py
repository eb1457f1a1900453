"""Retraining an exported architecture on the full training pool, evaluated on the test split."""

import json

import pytest
import torch

import nas
from nas.config import StudyConfig
from nas.data import DataConfig, build_datamodule
from nas.export import export_arch, export_trials
from nas.retrain import retrain
from nas.worker import run_search
from search_spaces.spec import ArchSpec, BlockChoice


def test_retrain_an_export_on_the_full_pool_reproducibly(tiny_config, tmp_path):
    cfg = StudyConfig.from_dict(tiny_config(study={"n_trials": 2}))
    study = run_search(cfg, progress=False)
    trial = study.best_trials[0]
    (folder,) = export_trials(study, tmp_path / "out", trials=[trial.number])

    first = retrain(folder, seed=3)
    searched = build_datamodule(cfg.data).split_sizes  # per_class=6, val_per_class=4
    uncut = build_datamodule(DataConfig()).split_sizes
    assert 0.0 <= first["test_acc"] <= 1.0 and first["test_loss"] > 0
    assert first["train_size"] == uncut["train"] + uncut["val"] > searched["train"]
    assert first["test_size"] == searched["test"] == uncut["test"]
    assert first["epochs"] == cfg.training.epochs and first["seed"] == 3
    assert first["source"] == {"study": "tiny", "trial": trial.number}
    assert json.loads((folder / "retrained" / "metrics.json").read_text()) == first

    again = retrain(folder / "arch.json", seed=3, out_dir=tmp_path / "again")
    assert (again["test_acc"], again["test_loss"]) == (first["test_acc"], first["test_loss"])

    model = nas.load(folder / "retrained")
    assert not model.training and model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    weights = torch.load(folder / "retrained" / "weights.pt", weights_only=True)
    exported = torch.load(folder / "weights.pt", weights_only=True)
    assert weights["arch"] == exported["arch"] and weights["trial"] == trial.number
    assert weights["mean"] != exported["mean"]  # normalised with the full pool's statistics


def _arch(tmp_path, num_classes: int = 10):
    spec = ArchSpec(
        "resnet8",
        {"width": 4},
        in_channels=1,
        num_classes=num_classes,
        sites={"stage2.0": BlockChoice("se", {"reduction": 2})},
    )
    path = tmp_path / "arch.json"
    path.write_text(spec.to_json())
    return path


def test_epochs_and_config_overrides(tiny_config, tmp_path):
    arch = _arch(tmp_path)
    cfg = StudyConfig.from_dict(tiny_config())
    result = retrain(arch, epochs=1, config=cfg)
    assert result["epochs"] == 1 and result["source"] is None
    assert json.loads((tmp_path / "retrained" / "metrics.json").read_text()) == result
    assert nas.load(tmp_path / "retrained" / "weights.pt").checkpoint_info["trial"] == -1
    sections = {"data": tiny_config()["data"], "training": {"epochs": 1, "lr": 0.05}}
    same = retrain(arch, config=sections, out_dir=tmp_path / "dict")
    assert same["test_acc"] == result["test_acc"]


def test_an_arch_only_export_can_be_retrained(tiny_config, tmp_path):
    study = run_search(StudyConfig.from_dict(tiny_config(study={"n_trials": 1})), progress=False)
    folder = export_arch(study, 0, tmp_path)
    result = retrain(folder, epochs=1)
    assert result["source"] == {"study": "tiny", "trial": 0}
    assert result["arch_digest"] == study.trials[0].user_attrs["digest"]


def test_retrain_errors(tiny_config, tmp_path):
    with pytest.raises(FileNotFoundError, match="no architecture at"):
        retrain(tmp_path / "nothing")
    arch = _arch(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"no config.json next to .*pass config="):
        retrain(arch)
    (tmp_path / "three").mkdir()
    wrong = _arch(tmp_path / "three", num_classes=3)
    with pytest.raises(ValueError, match=r"predicts 3 classes, but dataset 'digits' has .*10"):
        retrain(wrong, config=StudyConfig.from_dict(tiny_config()))
    with pytest.raises(ValueError, match="warmup_epochs"):
        retrain(arch, epochs=1, config={"training": {"epochs": 4, "warmup_epochs": 2}})
