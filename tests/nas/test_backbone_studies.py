"""Studies on timm backbones and from pretrained weights run end to end (search, report, export)."""

import json
from pathlib import Path

import optuna
import pandas as pd
import pytest
import tomli_w
import torch

from nas import trial_schema as schema
from nas.cli import main
from nas.config import StudyConfig
from nas.pareto import front_trials
from nas.storage import open_storage
from search_spaces.backbones import build_backbone
from search_spaces.build import build_model
from search_spaces.spec import ArchSpec

pytest.importorskip("timm")


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "study.toml"
    path.write_bytes(tomli_w.dumps(data).encode())
    return path


def _trials(cfg: StudyConfig) -> list[optuna.trial.FrozenTrial]:
    storage = open_storage(cfg.study.storage_url())
    return optuna.load_study(study_name=cfg.study.name, storage=storage).get_trials()


def _search_report_export(config: Path, tmp_path: Path) -> None:
    """The report lists every trial, and the export writes each front member's architecture."""
    assert main(["search", str(config), "--no-progress"]) == 0
    assert main(["report", str(config), "--out", str(tmp_path / "report")]) == 0
    assert main(["export", str(config), "--pareto", "--out", str(tmp_path / "export")]) == 0
    cfg = StudyConfig.load(config)
    study = optuna.load_study(
        study_name=cfg.study.name, storage=open_storage(cfg.study.storage_url())
    )
    report = pd.read_csv(tmp_path / "report" / "trials.csv")
    assert list(report["trial"]) == [t.number for t in study.trials]
    front = {t.number: t for t in front_trials(study)}
    exported = {
        int(f.name.removeprefix("trial_")): f for f in (tmp_path / "export").glob("trial_*")
    }
    assert front and set(exported) == set(front)
    for number, folder in exported.items():
        assert json.loads((folder / "arch.json").read_text()) == schema.ARCH.get(front[number])


def test_a_timm_backbone_study_runs_end_to_end(tiny_config, tmp_path):
    data = tiny_config(
        study={"n_trials": 2},
        backbone={"name": "timm:resnet18", "args": {"small_input": True}},
        space={"blocks": ["none", "se", "eca"], "positions": ["standard", "post"]},
        data={"per_class": 2, "val_per_class": 2},
        training={"epochs": 1},
    )
    config = _write(tmp_path, data)
    _search_report_export(config, tmp_path)
    trials = _trials(StudyConfig.from_dict(data))
    assert all(schema.ARCH.get(t)["backbone"] == "timm:resnet18" for t in trials)
    assert all(schema.cost(t)["params"] > 11e6 for t in trials)  # a real ResNet-18


def test_a_pretrained_study_starts_from_the_weights_file(tiny_config, tmp_path, capsys):
    weights = tmp_path / "resnet8.pt"
    torch.manual_seed(3)
    torch.save(build_backbone("resnet8", 1, 10, width=4).state_dict(), weights)
    data = tiny_config(
        study={"n_trials": 2},
        backbone={"pretrained": str(weights)},
        space={"blocks": ["none", "gc", "gct"]},
        training={"epochs": 1},
    )
    config = _write(tmp_path, data)
    _search_report_export(config, tmp_path)
    cfg = StudyConfig.from_dict(data)
    assert cfg.to_dict()["backbone"] == {"pretrained": str(weights)}
    # Retraining an export starts from the same weights.
    folder = sorted((tmp_path / "export").glob("trial_*"))[0]
    assert json.loads((folder / "config.json").read_text())["backbone"] == {
        "pretrained": str(weights)
    }
    assert main(["train", str(folder / "arch.json"), "--epochs", "1", "--no-progress"]) == 0
    # Each trial started from the file: gc/gct start as the identity, so before training its
    # model computes exactly what the pretrained backbone computes.
    plain = build_backbone("resnet8", 1, 10, width=4, pretrained=str(weights)).eval()
    x = torch.randn(2, 1, 8, 8)
    for trial in _trials(cfg):
        model = build_model(ArchSpec.from_dict(schema.ARCH.get(trial)), seed=0, pretrained=weights)
        assert torch.allclose(model.eval()(x), plain(x), atol=1e-6)


def test_the_search_trains_every_trial_from_the_weights_file(tiny_config, tmp_path, monkeypatch):
    """What the search itself trains, not a model rebuilt afterwards: every trial's module is
    built from backbone.pretrained."""
    import nas.objective
    from nas.worker import run_search

    weights = tmp_path / "resnet8.pt"
    torch.save(build_backbone("resnet8", 1, 10, width=4).state_dict(), weights)
    started_from = []

    class Recording(nas.objective.ClassifierModule):
        def __init__(self, *args, pretrained=False, **kwargs):
            started_from.append(pretrained)
            super().__init__(*args, pretrained=pretrained, **kwargs)

    monkeypatch.setattr(nas.objective, "ClassifierModule", Recording)
    data = tiny_config(
        study={"n_trials": 2}, backbone={"pretrained": str(weights)}, training={"epochs": 1}
    )
    run_search(StudyConfig.from_dict(data), progress=False)
    assert started_from and set(started_from) == {str(weights)}


def test_a_weights_file_that_does_not_fit_is_refused_before_anything_is_stored(
    tiny_config, tmp_path, capsys
):
    weights = tmp_path / "other.pt"
    torch.save(build_backbone("resnet8", 1, 10, width=8).state_dict(), weights)  # wrong width
    data = tiny_config(backbone={"pretrained": str(weights)})
    config = _write(tmp_path, data)
    assert main(["search", str(config), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "other.pt" in err and "Traceback" not in err
    assert not Path(StudyConfig.from_dict(data).study.storage_url()).exists()


def test_an_unknown_timm_model_names_the_model(tiny_config, tmp_path, capsys):
    config = _write(tmp_path, tiny_config(backbone={"name": "timm:resnet5000", "args": {}}))
    assert main(["search", str(config), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "resnet5000" in err and "timm.list_models" in err and "Traceback" not in err
