"""Studies are user data: a study written by release 0.1.0 resumes, reports and exports here.

The fixture (tests/fixtures/study_v0_1_0) is a journal written by ``nas search study.toml`` at
commit 9dc6db5 (8 trials of a 3-objective study with a params constraint: complete, pruned with
partial values, duplicates, an infeasible trial), with that release's ``nas report`` output.
"""

import json
import shutil
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from nas import trial_schema as schema
from nas.cli import main
from nas.config import StudyConfig
from nas.storage import open_storage
from search_spaces.spec import ArchSpec

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "study_v0_1_0"


@pytest.fixture
def old_study(tmp_path, monkeypatch):
    """The 0.1.0 study copied into tmp_path (the config's runs_dir is relative: runs/)."""
    shutil.copy(FIXTURE / "study.toml", tmp_path / "study.toml")
    (tmp_path / "runs" / "v010").mkdir(parents=True)
    shutil.copy(FIXTURE / "journal.log", tmp_path / "runs" / "v010" / "journal.log")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _load(root: Path) -> optuna.Study:
    return optuna.load_study(
        study_name="v010", storage=open_storage(str(root / "runs" / "v010" / "journal.log"))
    )


def test_old_trials_read_through_the_schema(old_study):
    trials = _load(old_study).get_trials()
    assert [t.state for t in trials].count(TrialState.COMPLETE) == 3
    for t in trials:
        assert set(t.user_attrs) <= {attr.key for attr in schema.TRIAL_ATTRS}
        assert schema.ARCH.get(t)["backbone"] == "resnet8"
        assert schema.cost(t)["params"] > 0
        # The digest is a contract: this release computes the same one from the stored arch.
        assert ArchSpec.from_dict(schema.ARCH.get(t)).digest() == schema.DIGEST.get(t)
    assert schema.DUPLICATE_OF.get(trials[1]) == 0
    assert schema.epochs_spent(trials[1]) == 0 and schema.epochs_run(trials[1]) == 3
    assert schema.stored_config(_load(old_study))["study"]["name"] == "v010"


def test_old_study_reports_as_it_did(old_study, capsys):
    assert main(["status", "study.toml"]) == 0
    assert "8 trials" in capsys.readouterr().out
    # The default reference moved on purpose (accuracy: the worst complete trial, not 0); the old
    # one, asked for, gives the old hypervolume exactly.
    assert main(["report", "study.toml", "--out", "report", "--reference", "val_acc=0"]) == 0
    old = json.loads((FIXTURE / "summary.json").read_text())
    new = json.loads((old_study / "report" / "summary.json").read_text())
    for key in ("trials", "epochs_spent"):
        assert new[key] == old[key], key
    assert new["reference"].pop("basis")[0] == "set"
    assert new["reference"] == old["reference"]
    assert new["hypervolume"] == pytest.approx(old["hypervolume"], rel=1e-12)
    # One change on purpose: each architecture is on the front once. 0.1.0 also listed trial 1,
    # a duplicate of trial 0 (same architecture, same values).
    assert new["front_size"] == old["front_size"] - 1
    old_front = pd.read_csv(FIXTURE / "front.csv")
    old_front = old_front[old_front["trial"] != 1].reset_index(drop=True)
    new_front = pd.read_csv(old_study / "report" / "front.csv")
    pd.testing.assert_frame_equal(new_front[old_front.columns], old_front)
    old_trials = pd.read_csv(FIXTURE / "trials.csv")
    old_trials.loc[old_trials["trial"] == 1, "on_front"] = False
    new_trials = pd.read_csv(old_study / "report" / "trials.csv")
    shared = [c for c in old_trials.columns if c != "duration_s"]
    pd.testing.assert_frame_equal(new_trials[shared], old_trials[shared])
    assert main(["report", "study.toml", "--out", "default"]) == 0
    default = json.loads((old_study / "default" / "summary.json").read_text())["reference"]
    complete = old_trials[old_trials["state"] == "COMPLETE"]["val_acc"]
    assert (
        default["worst"][0] == complete.min() and default["basis"][0] == "the worst complete trial"
    )


def test_old_study_resumes_with_its_config(old_study):
    assert main(["search", "study.toml", "--n-trials", "10", "--no-progress"]) == 0
    trials = _load(old_study).get_trials()
    assert len(trials) == 10 and all(t.state.is_finished() for t in trials)
    # The stored config was not rewritten: the old study's record stays as it was.
    stored = schema.stored_config(_load(old_study))
    assert StudyConfig.from_dict(stored).to_dict() == StudyConfig.load("study.toml").to_dict()
    # It goes on as it ran: no baselines queued into it, each new trial seeded apart
    # (study.seed + number, the data order study.seed), as 0.1.0 seeded them.
    assert "evaluation" not in stored
    assert not any(schema.BASELINE.has(t) for t in trials)
    seed = stored["study"]["seed"]
    assert [schema.SEED.get(t) for t in trials[8:]] == [seed + 8, seed + 9]
    assert {schema.DATA_SEED.get(t) for t in trials[8:]} == {seed}


def test_old_study_takes_evaluation_settings_it_ran_under_only(old_study, capsys):
    toml = (old_study / "study.toml").read_text()
    (old_study / "study.toml").write_text(toml + '\n[evaluation]\nseeding = "per_trial"\n')
    assert main(["search", "study.toml", "--no-progress"]) == 2
    assert "changed: evaluation.baselines);" in capsys.readouterr().err
    assert len(_load(old_study).get_trials()) == 8
    settings = '\n[evaluation]\nseeding = "per_trial"\nbaselines = false\n'
    (old_study / "study.toml").write_text(toml + settings)
    assert main(["search", "study.toml", "--n-trials", "9", "--no-progress"]) == 0
    assert len(_load(old_study).get_trials()) == 9


def test_old_study_exports_architectures(old_study, capsys):
    assert main(["export", "study.toml", "--arch-only", "--trial", "6", "--out", "export"]) == 0
    arch = json.loads((old_study / "export" / "trial_6" / "arch.json").read_text())
    assert arch == schema.ARCH.get(_load(old_study).trials[6])


def test_a_changed_config_is_still_refused(old_study, capsys):
    text = (old_study / "study.toml").read_text().replace("epochs = 3", "epochs = 4")
    (old_study / "study.toml").write_text(text)
    assert main(["search", "study.toml", "--no-progress"]) == 2
    assert "changed: training.epochs" in capsys.readouterr().err
    assert len(_load(old_study).get_trials()) == 8
