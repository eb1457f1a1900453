"""``training.precision = "auto"``: bfloat16 on a CPU where it pays, one precision per study."""

import pytest
from optuna.trial import TrialState

from nas import trial_schema as schema
from nas.config import StudyConfig
from nas.confirm import prepare_confirm
from nas.worker import run_search


@pytest.fixture
def bf16_pays(monkeypatch):
    """A CPU with native bfloat16, and a threshold every tiny model reaches."""
    monkeypatch.setattr("nas.training.cpu_has_native_bf16", lambda: True)
    monkeypatch.setattr("nas.training.CPU_BF16_MIN_FLOPS", 0.0)


def _precisions(study) -> list[str]:
    """What each trial that trained (not one still queued, nor a reused duplicate) trained in."""
    return [
        schema.TRAINED_WITH.get(t)["precision"]
        for t in study.get_trials()
        if schema.TRAINED_WITH.has(t)
    ]


def test_auto_trains_bf16_where_it_pays_and_says_so_once(tiny_config, bf16_pays, capsys):
    cfg = StudyConfig.from_dict(tiny_config(study={"n_trials": 3}))
    study = run_search(cfg, progress=False)
    assert all(t.state == TrialState.COMPLETE for t in study.get_trials())
    assert _precisions(study) == ["bf16-mixed"] * 3
    assert all(0.0 <= t.values[0] <= 1.0 for t in study.get_trials())
    said = [line for line in capsys.readouterr().err.splitlines() if line.startswith("precision")]
    assert len(said) == 1 and "natively" in said[0] and "the study keeps it" in said[0]
    # A precision set in the config is used as it is.
    data = tiny_config(study={"n_trials": 1, "name": "fp32"}, training={"precision": "32"})
    assert _precisions(run_search(StudyConfig.from_dict(data), progress=False)) == ["32-true"]


def test_a_resumed_study_keeps_its_first_trials_precision(tiny_config, monkeypatch, capsys):
    data = tiny_config(study={"n_trials": 1})
    study = run_search(StudyConfig.from_dict(data), progress=False)
    assert _precisions(study) == ["32-true"]  # tiny: below the threshold
    # Resumed where "auto" would now choose bfloat16 (another machine, or a new release):
    monkeypatch.setattr("nas.training.cpu_has_native_bf16", lambda: True)
    monkeypatch.setattr("nas.training.CPU_BF16_MIN_FLOPS", 0.0)
    data["study"]["n_trials"] = 3
    study = run_search(StudyConfig.from_dict(data), progress=False)
    assert _precisions(study) == ["32-true"] * 3
    assert "precision" not in capsys.readouterr().err
    # Setting a precision on a stored study changes how its trials compare: refused.
    data["study"]["n_trials"] = 4
    data["training"]["precision"] = "bf16-mixed"
    cfg = StudyConfig.from_dict(data)
    with pytest.raises(ValueError, match="precision"):  # a changed setting is refused on resume
        run_search(cfg, progress=False)


def test_a_confirm_study_trains_in_its_searched_studys_precision(tiny_config, bf16_pays):
    data = tiny_config(study={"n_trials": 2}, evaluation={"baselines": True})
    cfg = StudyConfig.from_dict(data)
    study = run_search(cfg, progress=False)
    assert set(_precisions(study)) == {"bf16-mixed"}
    url = cfg.study.storage_url()
    # Confirmed where "auto" would choose float32: the repeats still match the search's trials.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("nas.training.cpu_has_native_bf16", lambda: False)
        confirm, confirm_cfg = prepare_confirm(study, url, top=1, seeds=2)
        confirm = run_search(confirm_cfg, storage=url, progress=False)
    assert _precisions(confirm) and set(_precisions(confirm)) == {"bf16-mixed"}


def test_bf16_trials_reproduce_on_the_cpu(tiny_config, tmp_path, bf16_pays):
    def run(folder: str):
        data = tiny_config(study={"n_trials": 2, "runs_dir": str(tmp_path / folder)})
        return run_search(StudyConfig.from_dict(data), progress=False)

    first, second = run("first"), run("second")
    assert _precisions(first) == ["bf16-mixed"] * 2
    for a, b in zip(first.get_trials(), second.get_trials(), strict=True):
        assert a.values == b.values
        assert schema.VAL_HISTORY.get(a) == schema.VAL_HISTORY.get(b)
