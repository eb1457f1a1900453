"""`nas export` and `nas train` from the command line, on a tiny real search."""

import json

import torch

from nas import trial_schema as schema
from nas.cli import main
from nas.config import StudyConfig
from nas.export import load
from nas.pareto import front_trials
from nas.worker import run_search
from search_spaces.spec import ArchSpec


def test_export_then_train_from_the_command_line(tiny_config, tmp_path, capsys):
    cfg = StudyConfig.from_dict(tiny_config(study={"n_trials": 3}))
    study = run_search(cfg, progress=False)
    study_args = ["tiny", "--runs-dir", cfg.study.runs_dir]

    assert main(["export", *study_args, "--pareto"]) == 0
    out_dir = tmp_path / "runs" / "tiny" / "export"
    front = sorted(t.number for t in front_trials(study))
    assert sorted(int(p.name.split("_")[1]) for p in out_dir.glob("trial_*")) == front
    folder = out_dir / f"trial_{front[0]}"
    assert {"arch.json", "weights.pt", "model.onnx", "model.ts", "model_card.md"} <= {
        p.name for p in folder.iterdir()
    }
    assert f"wrote {folder}/" in capsys.readouterr().out

    assert main(["train", str(folder / "arch.json"), "--epochs", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    metrics = json.loads((folder / "retrained" / "metrics.json").read_text())
    assert f"test accuracy {metrics['test_acc']:.4f}" in out and metrics["epochs"] == 1
    model = load(folder / "retrained")
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)


def test_export_errors_exit_2_with_the_fix(tiny_config, tmp_path, capsys):
    cfg = StudyConfig.from_dict(tiny_config(study={"n_trials": 2}))
    study = run_search(cfg, progress=False)
    study_args = ["tiny", "--runs-dir", cfg.study.runs_dir]
    assert main(["export", *study_args, "--trial", "99"]) == 2
    assert "trial 99" in capsys.readouterr().err
    assert main(["export", *study_args, "--pareto", "--arch-only"]) == 2
    assert "--arch-only takes --trial N" in capsys.readouterr().err
    assert main(["export", *study_args, "--trial", "1", "--arch-only"]) == 0
    folder = tmp_path / "runs" / "tiny" / "export" / "trial_1"
    assert sorted(p.name for p in folder.iterdir()) == ["arch.json", "config.json"]  # no weights
    spec = ArchSpec.from_dict(json.loads((folder / "arch.json").read_text()))
    assert spec.to_dict() == schema.ARCH.get(study.trials[1])
    assert main(["train", str(tmp_path / "nowhere" / "arch.json")]) == 2
    assert "nas train: error" in capsys.readouterr().err
