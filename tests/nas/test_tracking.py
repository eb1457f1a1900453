"""Experiment trackers (``[tracking]``, nas.tracking): each trial is one run of TensorBoard,
MLflow, W&B or CSV, a broken tracker never costs a trial, and one that cannot log is refused with
one line before anything is stored."""

import socket
import sys
import warnings
from pathlib import Path

import optuna
import pytest
import tomli_w
from lightning.pytorch.loggers import CSVLogger, MLFlowLogger
from optuna.trial import TrialState

import nas.study
from nas import trial_schema as schema
from nas.cli import main
from nas.config import ConfigError, StudyConfig
from nas.confirm import prepare_confirm
from nas.study import load_or_create_study, load_stored_study
from nas.tracking import GuardedLogger, check_trackers, mlflow_uri, run_name, tracking_dir
from nas.worker import run_search


def _config(tiny_config, **sections) -> StudyConfig:
    # Seed 1 samples four different architectures first: no trial reuses another's results as
    # a duplicate, each one trains.
    sections["study"] = {"seed": 1, **sections.get("study", {})}
    return StudyConfig.from_dict(tiny_config(**sections))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _mlflow_runs(cfg: StudyConfig) -> tuple:
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_uri(cfg))
    experiment = client.get_experiment_by_name(cfg.study.name)
    return client, client.search_runs([experiment.experiment_id], max_results=100)


def _nothing_stored(cfg: StudyConfig) -> bool:
    journal = Path(cfg.study.storage_url())
    return not journal.exists() and not (Path(cfg.study.runs_dir) / cfg.study.name).exists()


# -- the section --------------------------------------------------------------------------------


def test_no_section_tracks_nothing(tiny_config):
    cfg = StudyConfig.from_dict(tiny_config())
    assert cfg.tracking.loggers == ()
    assert cfg.to_dict()["tracking"]["loggers"] == []
    check_trackers(cfg)  # nothing to check, nothing created
    assert not (Path(cfg.study.runs_dir)).exists()


@pytest.mark.parametrize(
    ("tracking", "message"),
    [
        (
            {"loggers": ["tensorbord"]},
            r"^tracking\.loggers must be a list of distinct trackers from \['tensorboard', "
            r"'mlflow', 'wandb', 'csv'\], got 'tensorbord'$",
        ),
        (
            {"uri": "http://localhost:5000"},
            r"^tracking\.uri is MLflow's tracking URI, but loggers does not list 'mlflow'; add",
        ),
        ({"folder": "x"}, r"^unknown key\(s\) \['tracking\.folder'\]; allowed: \['dir',"),
    ],
)
def test_bad_settings_are_one_line_naming_the_field(tiny_config, tracking, message):
    with pytest.raises(ConfigError, match=message):
        StudyConfig.from_dict(tiny_config(tracking=tracking))


def test_defaults_are_offline_beside_the_study(tiny_config, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = StudyConfig.from_dict(tiny_config(tracking={"loggers": ["mlflow"]}))
    folder = Path(cfg.study.runs_dir) / "tiny" / "tracking"
    assert tracking_dir(cfg) == folder
    assert mlflow_uri(cfg) == f"sqlite:///{(folder / 'mlflow' / 'mlflow.db').resolve()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert mlflow_uri(cfg) == "http://mlflow.example:5000"
    assert run_name(12) == "trial-00012"


def test_trackers_may_be_added_when_a_study_resumes(tiny_config):
    plain = StudyConfig.from_dict(tiny_config())
    load_or_create_study(plain)
    tracked = StudyConfig.from_dict(tiny_config(tracking={"loggers": ["csv"]}))
    study = load_or_create_study(tracked)  # not refused as a changed config
    # Stored, so that workers joining from the storage alone log to it too.
    assert schema.stored_config(study)["tracking"]["loggers"] == ["csv"]
    _, joined = load_stored_study(plain.study.storage_url(), "tiny")
    assert joined.tracking == tracked.tracking
    assert joined.to_dict() == tracked.to_dict()


# -- refused before anything is stored ----------------------------------------------------------


def _search_cli(tiny_config, tmp_path, tracking) -> tuple[Path, StudyConfig]:
    data = tiny_config(tracking=tracking)
    path = tmp_path / "study.toml"
    path.write_bytes(tomli_w.dumps(data).encode())
    return path, StudyConfig.from_dict(data)


def test_unreachable_mlflow_server_is_one_line_and_stores_nothing(
    tiny_config, tmp_path, capsys, monkeypatch
):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = f"http://127.0.0.1:{_closed_port()}"
    path, cfg = _search_cli(tiny_config, tmp_path, {"loggers": ["mlflow"], "uri": uri})
    assert main(["search", str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"nas search: error: tracking.uri: MLflow at {uri} cannot be reached")
    assert "start the server or correct tracking.uri" in err[0]
    assert _nothing_stored(cfg)


def test_unreachable_server_in_the_environment_names_the_variable(tiny_config, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{_closed_port()}")
    cfg = StudyConfig.from_dict(tiny_config(tracking={"loggers": ["mlflow"]}))
    with pytest.raises(ConfigError, match=r"^MLFLOW_TRACKING_URI: MLflow at http://127\.0\.0\.1"):
        run_search(cfg, progress=False)
    assert _nothing_stored(cfg)


@pytest.mark.parametrize(("tracker", "module"), [("mlflow", "mlflow"), ("wandb", "wandb")])
def test_a_tracker_not_installed_is_one_line_with_the_pip_line(
    tiny_config, tmp_path, capsys, monkeypatch, tracker, module
):
    monkeypatch.setitem(sys.modules, module, None)  # `import mlflow` raises ImportError
    path, cfg = _search_cli(tiny_config, tmp_path, {"loggers": ["csv", tracker]})
    assert main(["search", str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"nas search: error: tracking.loggers lists {tracker!r}, but {module} is not installed; "
        f"pip install {module} (or attention-nas[tracking]), or remove it from the list"
    ]
    assert _nothing_stored(cfg)


def test_online_wandb_without_a_login_is_refused(tiny_config, tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc with a key
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    cfg = StudyConfig.from_dict(
        tiny_config(tracking={"loggers": ["wandb"], "wandb_mode": "online"})
    )
    try:
        with pytest.raises(ConfigError, match=r"^tracking\.wandb_mode = 'online' needs a W&B"):
            run_search(cfg, progress=False)
    finally:
        import wandb

        wandb.teardown()  # W&B keeps the settings it looked at for the whole process
    assert _nothing_stored(cfg)


# -- a failing tracker ----------------------------------------------------------------------------


def test_a_failing_logger_warns_once_per_tracker_and_stops_logging(tmp_path):
    class Failing(CSVLogger):
        calls = 0

        def log_metrics(self, metrics, step=None):
            Failing.calls += 1
            raise OSError("disk full")

    warned: set[str] = set()
    with pytest.warns(RuntimeWarning) as record:
        for trial in range(2):
            logger = GuardedLogger(lambda: Failing(tmp_path), "csv", trial, warned)
            logger.log_metrics({"val_acc": 0.5})
            logger.log_metrics({"val_acc": 0.6})  # dropped: the logger broke in this trial
            logger.log_hyperparams({"state": "complete"})
            logger.close("complete")
    messages = [str(w.message) for w in record]
    assert messages == [
        "tracking: csv failed while logging trial 0 (OSError: disk full); it logs nothing more "
        "of that trial, and the study goes on with every result stored (this warning is not "
        "repeated)"
    ]
    assert Failing.calls == 2  # once per trial
    assert warned == {"csv"}


def test_a_logger_that_cannot_be_built_is_dropped_with_a_warning(tmp_path):
    def build():
        raise ValueError("bad project name")

    with pytest.warns(RuntimeWarning, match=r"^tracking: wandb failed while logging trial 3 "):
        logger = GuardedLogger(build, "wandb", 3, set())
    logger.log_metrics({"val_acc": 0.5})
    logger.close("failed")
    assert logger.broken


@pytest.mark.slow
def test_a_tracker_failing_mid_study_loses_no_trial(tiny_config, monkeypatch):
    def broken(self, metrics, step=None):
        raise ConnectionError("tracking server went away")

    monkeypatch.setattr(MLFlowLogger, "log_metrics", broken)
    cfg = _config(tiny_config, study={"n_trials": 3}, tracking={"loggers": ["mlflow", "csv"]})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        study = run_search(cfg, progress=False)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3
    assert all(t.values and t.user_attrs["val_history"] for t in study.trials)
    mine = [str(w.message) for w in caught if "tracking:" in str(w.message)]
    assert len(mine) == 1 and mine[0].startswith("tracking: mlflow failed while logging trial 0")
    # The other tracker logged every trial in full.
    for t in study.trials:
        csv = tracking_dir(cfg) / "csv" / "tiny" / run_name(t.number) / "metrics.csv"
        assert "final/val_acc" in csv.read_text().splitlines()[0]


# -- what a study logs --------------------------------------------------------------------------


def test_tensorboard_has_each_trials_epoch_curves(tiny_config):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = _config(tiny_config, study={"n_trials": 2}, tracking={"loggers": ["tensorboard"]})
    study = run_search(cfg, progress=False)
    runs = sorted(p.name for p in (tracking_dir(cfg) / "tensorboard" / "tiny").iterdir())
    assert runs == ["trial-00000", "trial-00001"]
    for t in study.trials:
        events = EventAccumulator(str(tracking_dir(cfg) / "tensorboard" / "tiny" / runs[t.number]))
        events.Reload()
        curve = [e.value for e in events.Scalars("val_acc")]
        history = t.user_attrs["val_history"]
        assert curve == pytest.approx([h["val_acc"] for h in history])
        assert len(events.Scalars("train_loss")) == 2
        assert events.Scalars("final/val_acc")[0].value == pytest.approx(t.values[0])
        assert events.Scalars("cost/flops")[0].value == t.user_attrs["cost"]["flops"]


class PruneTrialOne(optuna.pruners.BasePruner):
    """Prunes trial 1 at its first epoch, lets every other trial finish."""

    def prune(self, study, trial):
        return trial.number == 1


@pytest.mark.slow
def test_mlflow_has_one_run_per_trial_with_params_curves_values_and_state(tiny_config, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setattr(nas.study, "make_pruner", lambda cfg: PruneTrialOne())
    cfg = _config(
        tiny_config,
        study={"n_trials": 3},
        training={"epochs": 3},
        objectives={"minimize": []},  # single-objective: Optuna asks the study's pruner
        tracking={"loggers": ["mlflow"]},
    )
    study = run_search(cfg, progress=False)
    assert [t.state for t in study.trials] == [
        TrialState.COMPLETE,
        TrialState.PRUNED,
        TrialState.COMPLETE,
    ]
    client, runs = _mlflow_runs(cfg)
    by_name = {r.info.run_name: r for r in runs}
    assert sorted(by_name) == ["trial-00000", "trial-00001", "trial-00002"]
    for t in study.trials:
        run = by_name[run_name(t.number)]
        params, metrics = run.data.params, run.data.metrics
        assert run.data.tags["study"] == "tiny" and run.data.tags["trial"] == str(t.number)
        assert params["summary"] == t.user_attrs["summary"]
        assert params["digest"] == t.user_attrs["digest"]
        assert params["seed"] == str(t.user_attrs["seed"])
        assert {k: params[k] for k in t.params} == {k: str(v) for k, v in t.params.items()}
        curve = [m.value for m in client.get_metric_history(run.info.run_id, "val_acc")]
        assert curve == pytest.approx([h["val_acc"] for h in t.user_attrs["val_history"]])
        assert metrics["cost/flops"] == t.user_attrs["cost"]["flops"]
        assert metrics["epochs_run"] == t.user_attrs["epochs_run"]
    done, pruned = by_name["trial-00000"], by_name["trial-00001"]
    assert done.data.params["state"] == "complete" and done.info.status == "FINISHED"
    assert done.data.metrics["final/val_acc"] == pytest.approx(study.trials[0].values[0])
    assert len(client.get_metric_history(done.info.run_id, "val_acc")) == 3
    assert pruned.data.params["state"] == "pruned" and pruned.info.status == "KILLED"
    assert pruned.data.params["pruned_at_epoch"] == "0"
    assert len(client.get_metric_history(pruned.info.run_id, "val_acc")) == 1
    assert pruned.data.metrics["final/val_acc"] == pytest.approx(
        study.trials[1].user_attrs["val_history"][-1]["val_acc"]
    )


@pytest.mark.slow  # worker subprocesses
def test_two_workers_log_into_one_experiment_without_clashes(
    tiny_config, tmp_path, monkeypatch, worker_start_barrier
):
    """Two worker processes at once, each trial's run written while the other writes its own
    into the same experiment (and the same SQLite store): none is lost or incomplete."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    tracking = {"loggers": ["mlflow"], "dir": str(tmp_path / "shared-tracking")}
    cfg = _config(tiny_config, study={"n_trials": 10, "sampler": "tpe"}, tracking=tracking)
    study = run_search(cfg, workers=2, progress=False)
    trials = study.get_trials()
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # both processes ran trials
    client, runs = _mlflow_runs(cfg)
    by_name = {r.info.run_name: r for r in runs}
    assert sorted(by_name) == [run_name(n) for n in range(10)]  # one run per trial, no clash
    for t in trials:
        run = by_name[run_name(t.number)]
        assert run.data.params["worker"] == t.user_attrs["worker"]
        assert run.data.params["state"] == "complete" and run.info.status == "FINISHED"
        assert run.data.metrics["final/val_acc"] == pytest.approx(t.values[0])
        curve = [m.value for m in client.get_metric_history(run.info.run_id, "val_acc")]
        if "duplicate_of" in t.user_attrs:  # reused an earlier run's outcome: nothing trained
            assert run.data.params["duplicate_of"] == str(t.user_attrs["duplicate_of"])
            assert curve == []
        else:
            assert curve == pytest.approx([h["val_acc"] for h in t.user_attrs["val_history"]])


@pytest.mark.slow
def test_wandb_offline_writes_one_run_folder_per_trial(tiny_config, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{_closed_port()}")  # never reached
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    cfg = _config(tiny_config, study={"n_trials": 2}, tracking={"loggers": ["wandb"]})
    study = run_search(cfg, progress=False)
    folders = sorted((tracking_dir(cfg) / "wandb").glob("offline-run-*"))
    assert len(folders) == 2
    # The run files are W&B's binary records: each holds its own run name and the curves.
    logs = [next(f.glob("run-*.wandb")).read_bytes() for f in folders]
    for t in study.trials:
        mine = [log for log in logs if run_name(t.number).encode() in log]
        assert len(mine) == 1
        assert b"val_acc" in mine[0] and b"final/val_acc" in mine[0]


@pytest.mark.slow
def test_confirm_runs_are_tagged_as_repeats_of_their_source_trial(tiny_config):
    import yaml

    cfg = _config(tiny_config, study={"n_trials": 3}, tracking={"loggers": ["csv"]})
    study = run_search(cfg, progress=False)
    url = cfg.study.storage_url()
    confirm, confirm_cfg = prepare_confirm(study, url, top=1, seeds=2)
    confirm = run_search(confirm_cfg, storage=url, progress=False)
    folder = tracking_dir(confirm_cfg) / "csv" / "tiny-confirm"
    assert folder.parent.parent == Path(cfg.study.runs_dir) / "tiny-confirm" / "tracking"
    trials = confirm.get_trials()
    assert sorted(p.name for p in folder.iterdir()) == [run_name(t.number) for t in trials]
    sources = set()
    for t in trials:
        logged = yaml.safe_load((folder / run_name(t.number) / "hparams.yaml").read_text())
        assert logged["repeat"] == schema.REPLICATE.get(t)
        assert logged["seed"] == schema.SEED.get(t)
        assert logged.get("source_trial") == schema.SOURCE_TRIAL.get(t)
        assert logged["state"] == "complete" and logged["study"] == "tiny-confirm"
        sources.add(logged.get("source_trial"))
    assert {t.number for t in study.trials} & sources  # the repeated front trial is named
