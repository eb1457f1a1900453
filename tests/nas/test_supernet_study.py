"""``search.strategy = "supernet"``: training, resuming, the sub-network study and its checks."""

import html
import json
from pathlib import Path

import lightning
import optuna
import pytest
import torch
from optuna.trial import TrialState

from nas import supernet as engine
from nas import trial_schema as schema
from nas.artifacts import download_weights, open_artifact_store
from nas.config import ConfigError, StudyConfig, supernet_epochs
from nas.confirm import confirm_frame, prepare_confirm, verdict
from nas.dashboard import write_dashboard
from nas.export import export_arch, export_trials
from nas.objective import load_data
from nas.report import write_report
from nas.storage import open_storage
from nas.study import load_or_create_study
from nas.worker import join_study, run_search
from search_spaces.build import build_model
from search_spaces.cost import model_cost
from search_spaces.space import suggest_arch
from search_spaces.spec import ArchSpec
from search_spaces.supernet import activate, build_supernet, recalibrate_bn

SUPERNET = {"strategy": "supernet", "supernet_epochs": 2, "calibration_batches": 2}


@pytest.fixture
def supernet_config(tiny_config):
    def make(**sections):
        search = {**SUPERNET, **sections.pop("search", {})}
        return StudyConfig.from_dict(tiny_config(search=search, **sections))

    return make


@pytest.fixture
def searched(supernet_config):
    cfg = supernet_config(study={"n_trials": 6})
    return run_search(cfg, progress=False), cfg


def test_supernet_trials_carry_what_multi_trial_trials_carry(searched):
    study, cfg = searched
    record = engine.SupernetRecord.of(study)
    train_size = 6 * 10
    assert record.epochs == 2 and record.train_images == train_size
    assert record.image_epochs == 2 * train_size and record.steps == 2 * 2  # 60 images, batch 32
    trials = study.get_trials(states=[TrialState.COMPLETE])
    assert len(trials) == 6
    dm = load_data(cfg)
    for t in trials:
        spec = ArchSpec.from_dict(schema.ARCH.get(t))
        # The same parameter names as a multi-trial study: suggest_arch replays them.
        fixed = optuna.trial.FixedTrial(t.params)
        assert suggest_arch(fixed, cfg.space, num_classes=10, in_channels=1) == spec
        assert schema.by_supernet(t) and schema.EPOCHS_RUN.get(t) == 0
        assert schema.DIGEST.get(t) == spec.digest() and schema.SEED.get(t) == cfg.study.seed
        # Costs of the stand-alone model, measured as a multi-trial trial measures them.
        built = build_model(spec, seed=cfg.study.seed)
        assert schema.COST.get(t) == model_cost(built, tuple(dm.input_shape)).to_dict()
        assert t.values == [schema.VAL_HISTORY.get(t)[-1]["val_acc"], schema.COST.get(t)["flops"]]
        assert schema.VAL_SIZE.get(t) == 40 and schema.VAL_ACC_SE.get(t) > 0


def test_an_estimate_is_the_accuracy_of_the_recalibrated_sub_network(searched, tmp_path):
    """Recompute one trial's value through the plugin API alone."""
    study, cfg = searched
    record = engine.SupernetRecord.of(study)
    path = download_weights(
        open_artifact_store(cfg.study.artifacts_url()), record.artifact, tmp_path / "s.pt"
    )
    payload = torch.load(path, weights_only=True)
    dm = load_data(cfg)
    net = build_supernet(cfg.space, dm.in_channels, dm.num_classes)
    net.load_state_dict(payload["state_dict"])
    batches = engine.calibration_batches(dm, cfg.search.calibration_batches, cfg.study.seed)
    assert len(batches) == 2
    for t in study.get_trials(states=[TrialState.COMPLETE])[:3]:
        activate(net, ArchSpec.from_dict(schema.ARCH.get(t)))
        recalibrate_bn(net, batches)
        net.eval()
        correct = total = 0
        loss = 0.0
        with torch.no_grad():
            for x, y in dm.val_dataloader():
                logits = net(x)
                correct += int((logits.argmax(1) == y).sum())
                loss += float(torch.nn.functional.cross_entropy(logits, y, reduction="sum"))
                total += len(y)
        # Lightning logs float32: the stored values are rounded to it.
        assert t.values[0] == pytest.approx(correct / total, abs=1e-6)
        assert schema.VAL_HISTORY.get(t)[-1]["val_loss"] == pytest.approx(loss / total, abs=1e-5)


def test_report_dashboard_and_export_work_on_a_supernet_study(searched, tmp_path):
    """The report counts the front, the dashboard states it and lists each member's summary, and
    the export writes the front trial's stored architecture (no weights: there are none)."""
    study, _ = searched
    paths = write_report(study, tmp_path / "report")
    summary = json.loads(paths["summary"].read_text())
    assert summary["front_size"] == len(study.best_trials)
    text = write_dashboard(study, tmp_path / "dash.html").read_text()
    assert f"{summary['front_size']} architectures on the front" in text
    assert all(html.escape(schema.SUMMARY.get(t)) in text for t in study.best_trials)
    front = study.best_trials[0]
    folder = export_arch(study, front.number, tmp_path / "export")
    assert sorted(p.name for p in folder.iterdir()) == ["arch.json", "config.json"]
    assert json.loads((folder / "arch.json").read_text()) == schema.ARCH.get(front)
    with pytest.raises(ValueError, match=r"evaluated on the study's supernet.*nas confirm"):
        export_trials(study, tmp_path / "export", trials=[front.number])


def test_confirm_trains_the_supernet_front_stand_alone(searched):
    study, cfg = searched
    url = cfg.study.storage_url()
    confirm, confirm_cfg = prepare_confirm(study, url, top=2, seeds=2)
    assert confirm_cfg.search.strategy == "multi_trial"
    confirm = run_search(confirm_cfg, storage=url, progress=False)
    assert all(not schema.by_supernet(t) for t in confirm.get_trials())
    assert all(schema.EPOCHS_RUN.get(t) == cfg.training.epochs for t in confirm.get_trials())
    frame = confirm_frame(confirm, study)
    searched_rows = frame[frame["architecture"] != "baseline none"]
    assert set(searched_rows["search_estimate"]) == {"supernet"}
    assert searched_rows["search_val_acc"].notna().all()
    assert "supernet vs stand-alone ranking" in verdict(frame)


def test_a_killed_supernet_training_resumes_to_the_same_weights(supernet_config, tmp_path):
    cfg = supernet_config(search={"supernet_epochs": 3})
    dm = load_data(cfg)

    class Kill(lightning.Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            if trainer.current_epoch == 2:
                raise KeyboardInterrupt

    class CountEpochs(lightning.Callback):
        epochs = 0

        def on_train_epoch_start(self, trainer, pl_module):
            CountEpochs.epochs += 1

    folder = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        engine.train_supernet(cfg, dm, progress=False, folder=folder, callbacks=[Kill()])
    assert (folder / engine.CHECKPOINT_NAME).is_file()
    resumed = engine.train_supernet(
        cfg, dm, progress=False, folder=folder, callbacks=[CountEpochs()]
    )
    assert CountEpochs.epochs == 1 and resumed.global_step == 3 * 2
    whole = engine.train_supernet(cfg, dm, progress=False, folder=tmp_path / "whole")
    a, b = resumed.model.state_dict(), whole.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_checkpoint_of_another_space_is_refused_by_name(supernet_config, tmp_path):
    cfg = supernet_config(search={"supernet_epochs": 1})
    dm = load_data(cfg)
    folder = tmp_path / "supernet"
    trained = engine.train_supernet(cfg, dm, progress=False, folder=folder)
    # A CIFAR ResNet's supernet trains channels-last on the CPU, as its sub-networks do.
    assert trained.backbone_family == "cifar_resnet" and trained.channels_last
    other = supernet_config(space={"blocks": ["none", "se", "cbam"]}, search={"supernet_epochs": 1})
    with pytest.raises(ValueError) as err:
        engine.train_supernet(other, dm, progress=False, folder=folder)
    message = str(err.value)
    assert str(folder / "last.ckpt") in message and "space.blocks" in message
    assert "['none', 'se', 'eca', 'simam']" in message and "'cbam'" in message
    (folder / "last.ckpt").write_bytes(b"torn")
    with pytest.raises(ValueError, match=r"cannot be read.*delete it"):
        engine.train_supernet(cfg, dm, progress=False, folder=folder)


def test_a_supernet_too_large_is_refused_before_the_study_is_stored(supernet_config):
    cfg = supernet_config(
        backbone={"name": "resnet8", "args": {"width": 32}},
        space={"blocks": ["none", "non_local", "gsop", "encoding"], "reductions": [1, 2]},
        search={"max_supernet_mb": 1},
    )
    with pytest.raises(
        ValueError, match=r"would not fit: .* parameters, about \d+ MB.*max_supernet_mb"
    ):
        run_search(cfg, progress=False)
    assert not (Path(cfg.study.runs_dir) / cfg.study.name / "journal.log").exists()


def test_a_joining_worker_refuses_an_untrained_supernet(supernet_config):
    cfg = supernet_config()
    load_or_create_study(cfg)
    with pytest.raises(ValueError, match=r"not trained yet.*nas search"):
        join_study(cfg.study.storage_url(), cfg.study.name, progress=False)


def test_search_section_errors_name_the_field(tiny_config):
    with pytest.raises(ConfigError, match=r"search\.strategy"):
        StudyConfig.from_dict(tiny_config(search={"strategy": "oneshot"}))
    with pytest.raises(ConfigError, match=r"search\.calibration_batches"):
        StudyConfig.from_dict(tiny_config(search={"calibration_batches": 0}))
    with pytest.raises(ConfigError, match=r"search.strategy='supernet'.*space.blocks"):
        StudyConfig.from_dict(
            tiny_config(search={"strategy": "supernet"}, space={"blocks": ["none"]})
        )


@pytest.mark.slow
def test_nas_search_killed_in_supernet_training_resumes_to_the_same_supernet(tiny_config, tmp_path):
    """A real SIGKILL of `nas search` during supernet training, then the same command again:
    the search goes on from the last epoch's checkpoint and trains the uninterrupted weights."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import tomli_w

    root = Path(__file__).resolve().parents[2]

    def config(name):
        data = tiny_config(
            study={"name": name, "n_trials": 2},
            data={"per_class": 30},
            search={**SUPERNET, "supernet_epochs": 8},
        )
        path = tmp_path / f"{name}.toml"
        path.write_text(tomli_w.dumps(data))
        return path, StudyConfig.from_dict(data)

    def search(path):
        return subprocess.Popen(
            [sys.executable, "-m", "nas.cli", "search", str(path), "--no-progress"],
            cwd=root,
            env={**os.environ, "PYTHONPATH": str(root)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

    killed_path, killed_cfg = config("killed")
    checkpoint = engine.supernet_folder(killed_cfg) / engine.CHECKPOINT_NAME
    proc = search(killed_path)
    deadline = time.monotonic() + 120
    while not checkpoint.is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, (
        f"finished before a checkpoint could be killed: {proc.stderr.read()}"
    )
    epoch_at_kill = torch.load(checkpoint, weights_only=True)["epoch"]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert epoch_at_kill < 8
    resumed = search(killed_path)
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    whole_path, whole_cfg = config("whole")
    assert search(whole_path).wait(timeout=300) == 0

    def weights(cfg):
        study = optuna.load_study(
            study_name=cfg.study.name, storage=open_storage(cfg.study.storage_url())
        )
        record = engine.SupernetRecord.of(study)
        store = open_artifact_store(cfg.study.artifacts_url())
        path = download_weights(store, record.artifact, tmp_path / f"{cfg.study.name}.pt")
        return record, torch.load(path, weights_only=True)["state_dict"]

    (record_a, a), (record_b, b) = weights(killed_cfg), weights(whole_cfg)
    assert record_a.steps == record_b.steps and record_a.epochs == 8
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_supernet_epochs_default_to_the_training_epochs(supernet_config):
    cfg = supernet_config(search={"supernet_epochs": 3})
    assert supernet_epochs(cfg) == 3
    cfg = StudyConfig.from_dict({**cfg.to_dict(), "search": {"strategy": "supernet"}})
    assert supernet_epochs(cfg) == cfg.training.epochs
