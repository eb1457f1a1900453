"""Command-line flags no other test runs, each held to its ``--help`` text: ``nas status --all``,
``nas confirm --name``, ``nas schema --out``, ``nas train --config --seed --out`` and ``nas
doctor NAME --runs-dir``."""

import json
from pathlib import Path

import jsonschema
import optuna
import pytest
import tomli_w
import torch
from optuna.trial import TrialState

from nas import trial_schema as schema
from nas.cli import main
from nas.config import StudyConfig
from nas.storage import open_storage
from nas.worker import run_search
from search_spaces.spec import ArchSpec, BlockChoice

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "study_v0_1_0"


def _trials_listed(out: str) -> list[int]:
    """The trial numbers of the trials table ``nas status`` prints (before the front's)."""
    table = out.split("\nPareto front")[0].strip().splitlines()[2:]  # the heading, the columns
    return [int(line.split()[0]) for line in table]


def test_status_all_lists_every_trial_not_just_the_last_20(tiny_config, capsys):
    """``--all``: "list every trial, not just the last 20"; a study of 22 trials shows trials
    2-21 without it and 0-21 with it."""
    cfg = StudyConfig.from_dict(tiny_config(study={"n_trials": 22}, training={"epochs": 1}))
    run_search(cfg, progress=False)
    study_args = ["tiny", "--runs-dir", cfg.study.runs_dir]
    assert main(["status", *study_args]) == 0
    assert _trials_listed(capsys.readouterr().out) == list(range(2, 22))
    assert main(["status", *study_args, "--all"]) == 0
    assert _trials_listed(capsys.readouterr().out) == list(range(22))


def test_confirm_name_names_the_confirm_study_in_the_same_storage(tiny_config, capsys):
    """``--name``: "the confirm study's name (default <study>-confirm, in the same storage)";
    the repeats are stored under that name beside the search, no ``tiny-confirm`` is made, and
    ``nas status`` of the search finds the confirmation by it."""
    cfg = StudyConfig.from_dict(tiny_config(study={"n_trials": 5}, evaluation={"baselines": True}))
    run_search(cfg, progress=False)
    study_args = ["tiny", "--runs-dir", cfg.study.runs_dir]
    repeat = ["--top", "1", "--seeds", "2", "--no-progress"]
    assert main(["confirm", *study_args, *repeat, "--name", "tiny-recheck"]) == 0
    assert capsys.readouterr().out.startswith("confirm study 'tiny-recheck': ")

    storage = open_storage(cfg.study.storage_url())
    names = {s.study_name for s in optuna.get_all_study_summaries(storage)}
    assert names == {"tiny", "tiny-recheck"}
    confirm = optuna.load_study(study_name="tiny-recheck", storage=storage)
    plan = schema.confirm_plan(confirm)
    assert plan["of"] == "tiny"
    states = [t.state for t in confirm.get_trials()]
    assert states == [TrialState.COMPLETE] * 2 * len(plan["architectures"])
    assert main(["status", *study_args]) == 0
    assert "confirmation ('tiny-recheck'): " in capsys.readouterr().out


def test_schema_out_writes_the_printed_schema_to_the_file(tiny_config, tmp_path, capsys):
    """``--out``: "write it to this file (default: print it)"; the file holds exactly what is
    printed without it, only the path is printed, and the schema it holds accepts the tiny
    config and refuses a misspelt setting."""
    assert main(["schema"]) == 0
    printed = capsys.readouterr().out
    out = tmp_path / "study.schema.json"
    assert main(["schema", "--out", str(out)]) == 0
    assert capsys.readouterr().out == f"wrote {out}\n"
    assert out.read_text() == printed
    written = json.loads(out.read_text())
    jsonschema.validate(tiny_config(), written)
    with pytest.raises(jsonschema.ValidationError, match="n_trails"):
        jsonschema.validate(tiny_config(study={"n_trails": 3}), written)


def test_train_takes_its_settings_seed_and_folder_from_the_flags(tiny_config, tmp_path, capsys):
    """``nas train`` of an arch.json with no config.json beside it: ``--config`` gives the data
    and training settings (the TOML's 1 epoch; without it the command is refused), ``--out``
    the folder written instead of ``<arch folder>/retrained/``, ``--seed`` the seed (default
    0): the same seed gives the same weights, another seed other weights."""
    spec = ArchSpec(
        "resnet8",
        {"width": 4},
        in_channels=1,
        num_classes=10,
        sites={"stage2.0": BlockChoice("se", {"reduction": 2})},
    )
    arch = tmp_path / "arch" / "arch.json"
    arch.parent.mkdir()
    arch.write_text(spec.to_json())
    config = tmp_path / "study.toml"
    config.write_bytes(tomli_w.dumps(tiny_config(training={"epochs": 1})).encode())

    assert main(["train", str(arch), "--no-progress"]) == 2
    assert "no config.json next to" in capsys.readouterr().err
    base = ["train", str(arch), "--config", str(config), "--no-progress"]
    for name in ("a", "b"):
        assert main([*base, "--seed", "3", "--out", str(tmp_path / name)]) == 0
        assert f"wrote {tmp_path / name}/ (weights.pt, metrics.json)" in capsys.readouterr().out
    assert main(base) == 0
    assert sorted(p.name for p in arch.parent.iterdir()) == ["arch.json", "retrained"]

    folders = {"a": tmp_path / "a", "b": tmp_path / "b", "default": arch.parent / "retrained"}
    metrics = {k: json.loads((f / "metrics.json").read_text()) for k, f in folders.items()}
    weights = {
        k: torch.load(f / "weights.pt", weights_only=True)["state_dict"] for k, f in folders.items()
    }
    assert [metrics[k]["seed"] for k in folders] == [3, 3, 0]
    assert all(m["epochs"] == 1 and m["dataset"] == "digits" for m in metrics.values())
    assert metrics["a"]["test_acc"] == metrics["b"]["test_acc"]
    assert all(torch.equal(weights["a"][k], weights["b"][k]) for k in weights["a"])
    assert not all(torch.equal(weights["a"][k], weights["default"][k]) for k in weights["a"])


def test_doctor_runs_dir_finds_the_named_study_there(tmp_path, monkeypatch, capsys):
    """``--runs-dir``: "where studies named without a config live (default studies/runs)";
    ``nas doctor v010 --runs-dir elsewhere`` repairs ``elsewhere/v010/journal.log``, while
    without the flag it looks in ``studies/runs``, finds nothing and creates nothing."""
    journal = tmp_path / "elsewhere" / "v010" / "journal.log"
    journal.parent.mkdir(parents=True)
    lines = (FIXTURE / "journal.log").read_bytes().splitlines(keepends=True)
    lines.insert(20, b"\x00\x00 a damaged line \x00\n")
    journal.write_bytes(b"".join(lines))
    monkeypatch.chdir(tmp_path)

    assert main(["doctor", "v010"]) == 2
    assert "no journal at studies/runs/v010/journal.log" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere"]

    assert main(["doctor", "v010", "--runs-dir", "elsewhere"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("elsewhere/v010/journal.log: kept ")
    assert "set aside 1 damaged piece(s)" in out and "study 'v010': 8 trials, readable" in out
    assert list(journal.parent.glob("journal.log.bak-*"))
