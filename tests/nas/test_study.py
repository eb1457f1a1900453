"""The search engine end to end on tiny real data (digits, a few images per class)."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState
from torch import nn

import attn_blocks
from attn_blocks import registry
from nas import trial_schema as schema
from nas.config import StudyConfig
from nas.objective import TrialOutcome
from nas.storage import open_storage
from nas.study import load_or_create_study, make_pruner
from nas.worker import run_search, run_worker, tell_outcome
from search_spaces.spec import ArchSpec

ROOT = Path(__file__).resolve().parents[2]


def _study(cfg: StudyConfig) -> optuna.Study:
    return optuna.load_study(
        study_name=cfg.study.name, storage=open_storage(cfg.study.storage_url())
    )


def test_search_stores_everything_a_reviewer_needs(tiny_config):
    cfg = StudyConfig.from_dict(tiny_config())
    study = run_search(cfg, progress=False)
    trials = study.get_trials()
    assert len(trials) == 4 and all(t.state == TrialState.COMPLETE for t in trials)
    assert study.metric_names == ["val_acc", "flops"]
    for t in trials:
        spec = ArchSpec.from_dict(t.user_attrs["arch"])
        assert t.user_attrs["summary"] == spec.summary()
        assert t.user_attrs["digest"] == spec.digest()
        assert t.values[1] == t.user_attrs["cost"]["flops"] > 0
        assert 0.0 <= t.values[0] <= 1.0
        # No pruner reads the curve: one validation, after the last epoch, in the storage.
        assert list(t.intermediate_values) == [1] and t.user_attrs["epochs_run"] == 2
        assert t.values[0] == t.user_attrs["val_history"][-1]["val_acc"]
        assert t.values[0] == pytest.approx(t.intermediate_values[1], abs=1e-6)
    assert study.user_attrs["config"] == cfg.to_dict()
    assert study.best_trials  # a Pareto front exists


def test_validation_runs_at_the_epochs_something_reads(tiny_config, tmp_path):
    """Every epoch where a pruner reads the curve (baselines too: it compares trials with
    them) or ``training.validate = "every_epoch"`` asks; once at the end otherwise, with the same
    trials' values (skipping validations trains the same weights)."""

    def curves(sub: str, **sections) -> dict[int, tuple[tuple, tuple, tuple]]:
        data = tiny_config(study={"runs_dir": str(tmp_path / sub)}, **sections)
        study = run_search(StudyConfig.from_dict(data), progress=False)
        return {
            t.number: (
                tuple(sorted(t.intermediate_values)),
                tuple(h["epoch"] for h in t.user_attrs["val_history"]),
                tuple(t.values or ()),
            )
            for t in study.get_trials()
        }

    epochs = {"epochs": 3, "lr": 0.05}
    once = curves("once", training=epochs)
    assert {c[:2] for c in once.values()} == {((2,), (2,))}
    every = curves("every", training={**epochs, "validate": "every_epoch"})
    assert {c[:2] for c in every.values()} == {((0, 1, 2), (0, 1, 2))}
    assert [c[2] for c in every.values()] == [c[2] for c in once.values()]
    pruned = curves(
        "pruned",
        training=epochs,
        pruning={"pruner": "moasha", "min_epochs": 1, "reduction_factor": 3},
        evaluation={"baselines": True},
    )
    for number, (steps, validated, _) in pruned.items():
        # From the first epoch on, up to the last or the one where the trial was pruned.
        assert steps == validated == tuple(range(len(steps))), number
    assert sum(c[0] == (0, 1, 2) for c in pruned.values()) >= 4  # the baselines run through


def test_rerun_resumes_and_changed_config_is_refused(tiny_config):
    cfg = StudyConfig.from_dict(tiny_config())
    run_search(cfg, progress=False)
    assert run_worker(cfg, progress=False) == 0  # nothing left to do
    more = StudyConfig.from_dict(tiny_config(study={"n_trials": 5}))
    assert run_worker(more, progress=False) == 1  # the budget is a study setting, not a new study
    changed = StudyConfig.from_dict(tiny_config(training={"epochs": 3}))
    with pytest.raises(ValueError, match=r"different config \(changed: training\.epochs\)"):
        run_search(changed, progress=False)
    assert len(_study(cfg).get_trials()) == 5  # nothing stored was lost


def test_same_seed_same_trials_on_cpu(tiny_config, tmp_path):
    def run(sub: str):
        data = tiny_config(study={"runs_dir": str(tmp_path / sub), "sampler": "nsga2"})
        study = run_search(StudyConfig.from_dict(data), progress=False)
        return [(t.params, t.values) for t in study.get_trials()]

    first, second = run("a"), run("b")
    assert first == second
    other = tiny_config(study={"runs_dir": str(tmp_path / "c"), "seed": 1})
    assert [p for p, _ in first] != [
        t.params for t in run_search(StudyConfig.from_dict(other), progress=False).get_trials()
    ]


class _NaNAttention(nn.Module):
    """Test-only block: its output is NaN, as a numerically broken block's would be."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale * float("nan")


@pytest.fixture
def nan_block(monkeypatch):
    info = registry.BlockInfo(name="nan_test", cls=_NaNAttention, family="channel", paper="test")
    monkeypatch.setitem(registry._REGISTRY, "nan_test", info)
    return "nan_test"


def test_nan_trials_fail_with_reason_and_the_study_goes_on(tiny_config, nan_block):
    data = tiny_config(
        space={"blocks": ["none", nan_block], "granularity": "global"},
        study={"n_trials": 3, "seed": 3},
    )
    cfg = StudyConfig.from_dict(data)
    study = load_or_create_study(cfg)
    study.enqueue_trial({"all.block": nan_block})
    study.enqueue_trial({"all.block": "none"})
    study = run_search(cfg, progress=False)
    failed = study.get_trials(states=(TrialState.FAIL,))
    assert failed and all("NonFiniteLossError" in t.user_attrs["fail_reason"] for t in failed)
    assert all(t.user_attrs["arch"]["sites"]["stage1.0"]["block"] == nan_block for t in failed)
    assert len(study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))) == 3


def test_all_trials_failing_stops_the_search(tiny_config, nan_block):
    data = tiny_config(
        space={"blocks": [nan_block], "granularity": "global"}, study={"n_trials": 2}
    )
    with pytest.raises(RuntimeError, match="2 trials failed and none finished"):
        run_search(StudyConfig.from_dict(data), progress=False)


def test_a_pruned_single_objective_trial_is_told_with_its_epoch():
    # The live trial (Optuna 5 gives it no intermediate_values) holds epochs_run.
    study = optuna.create_study()
    trial = study.ask()
    schema.EPOCHS_RUN.set(trial, 2)
    tell_outcome(study, trial, TrialOutcome(TrialState.PRUNED, [0.5]))
    assert study.trials[0].state == TrialState.PRUNED
    assert study.trials[0].user_attrs["pruned_at_epoch"] == 1


def test_pruned_trials_keep_values_and_are_never_on_the_front(tiny_config):
    data = tiny_config(
        study={"n_trials": 8, "sampler": "random", "seed": 2},
        training={"epochs": 4},
        pruning={"pruner": "moasha", "min_epochs": 1, "reduction_factor": 2},
    )
    cfg = StudyConfig.from_dict(data)
    assert make_pruner(cfg).max_epochs == 4  # rungs after 1 and 2 epochs, none after 4
    study = run_search(cfg, progress=False)
    pruned = study.get_trials(states=(TrialState.PRUNED,))
    assert pruned, "MO-ASHA with eta=2 over 8 trials prunes some"
    front = {t.number for t in study.best_trials}
    for t in pruned:
        # The values at the pruning epoch: its validation accuracy and the architecture's FLOPs.
        history = t.user_attrs["val_history"]
        assert t.values == [history[-1]["val_acc"], t.user_attrs["cost"]["flops"]]
        assert len(history) == t.user_attrs["epochs_run"] < 4
        assert t.number not in front


def test_constraints_are_stored_for_the_sampler(tiny_config):
    data = tiny_config(
        objectives={"minimize": [], "constraints": {"params": 2000}},
        study={"n_trials": 2, "sampler": "tpe"},
    )
    study = run_search(StudyConfig.from_dict(data), progress=False)
    for t in study.get_trials():
        assert t.system_attrs["constraints:params"] == t.user_attrs["cost"]["params"] - 2000


def _write_config(path: Path, data: dict) -> Path:
    import tomli_w

    path.write_text(tomli_w.dumps(data))
    return path


#: 80 epochs (~2 s trials), each validated: a live trial shows its epochs in the storage.
EPOCHS_SHOWN = {"epochs": 80, "validate": "every_epoch"}


def _newest_trial_training(cfg: StudyConfig) -> bool:
    """The newest trial is RUNNING and has reported an epoch (so its params are complete)."""
    if not Path(cfg.study.storage_url()).exists():
        return False
    trials = _study(cfg).get_trials()
    return (
        bool(trials)
        and trials[-1].state == TrialState.RUNNING
        and len(trials[-1].intermediate_values) >= 1
    )


def _search_stopped_by(sig: signal.Signals, config: Path, cfg: StudyConfig, worker_procs):
    """``nas search CONFIG`` sent ``sig`` while its first trial trains: (exit code, stderr)."""
    proc = worker_procs.start("search", str(config), "--no-progress")
    worker_procs.wait_for(lambda: _newest_trial_training(cfg), 120, "the first trial trains")
    proc.send_signal(sig)
    return proc.wait(timeout=60), worker_procs.stderr(proc)


@pytest.mark.slow  # worker subprocesses
def test_resume_after_the_process_is_killed_mid_trial(tiny_config, tmp_path, worker_procs):
    # ~1.5 s trials: polling every 0.2 s sees the second one training (6 epochs took 0.1 s).
    data = tiny_config(study={"n_trials": 4}, training={**EPOCHS_SHOWN, "epochs": 60})
    config = _write_config(tmp_path / "study.toml", data)
    cfg = StudyConfig.from_dict(data)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = worker_procs.start("search", str(config), "--no-progress")

    def one_done_one_training() -> bool:
        # killed while training (not between suggestions, when its params are partial)
        if not _newest_trial_training(cfg):
            return False
        return any(t.state == TrialState.COMPLETE for t in _study(cfg).get_trials())

    worker_procs.wait_for(one_done_one_training, 120, "one trial complete, the next training")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    before = _study(cfg).get_trials()
    completed = {t.number: t.values for t in before if t.state == TrialState.COMPLETE}
    interrupted = [t.number for t in before if t.state == TrialState.RUNNING]
    assert completed and interrupted

    result = subprocess.run(
        [sys.executable, "-m", "nas.cli", "search", str(config), "--no-progress"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    after = {t.number: t for t in _study(cfg).get_trials()}
    for number, values in completed.items():  # nothing completed was lost or changed
        assert after[number].state == TrialState.COMPLETE and after[number].values == values
    for number in interrupted:  # the killed trial is not counted complete, and is re-queued once
        assert after[number].state == TrialState.FAIL
        assert "died" in after[number].user_attrs["fail_reason"]
        (retry,) = [t for t in after.values() if t.user_attrs.get("retry_of") == number]
        assert retry.state == TrialState.COMPLETE and retry.params == after[number].params
    finished = [t for t in after.values() if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 4
    assert "Pareto front" in result.stdout


@pytest.mark.slow  # worker subprocesses
def test_two_local_workers_share_one_storage(tiny_config, worker_start_barrier):
    data = tiny_config(study={"n_trials": 10, "sampler": "tpe"})
    study = run_search(StudyConfig.from_dict(data), workers=2, progress=False)
    trials = study.get_trials()
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers)) == 10
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert len(list(worker_start_barrier.iterdir())) == 2  # the hook ran in both workers
    workers = {t.user_attrs["worker"] for t in trials}
    assert len(workers) == 2  # both processes ran trials


def test_cli_blocks_status_and_errors(tiny_config, tmp_path, capsys):
    from nas.cli import main

    assert main(["blocks"]) == 0
    out = capsys.readouterr().out
    for name in attn_blocks.available():
        assert name in out

    data = tiny_config(study={"n_trials": 2})
    config = _write_config(tmp_path / "study.toml", data)
    assert main(["search", str(config), "--no-progress"]) == 0
    assert main(["status", str(config)]) == 0
    out = capsys.readouterr().out
    assert "2 trials 2 complete" in out and "Pareto front" in out

    data["training"]["epochs"] = 0
    bad = _write_config(tmp_path / "bad.toml", data)
    assert main(["search", str(bad)]) == 2
    assert "epochs" in capsys.readouterr().err
    assert main(["status", "no-such-study"]) == 2


@pytest.mark.parametrize("sampler", ["nsga2", "tpe", "gp", "random"])
def test_every_sampler_runs_a_seeded_study(tiny_config, sampler):
    data = tiny_config(
        study={"n_trials": 3, "sampler": sampler, "population_size": 2}, training={"epochs": 1}
    )
    study = run_search(StudyConfig.from_dict(data), progress=False)
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 3


@pytest.mark.slow  # worker subprocesses
def test_ctrl_c_stops_cleanly_and_the_next_run_resumes(tiny_config, tmp_path, worker_procs):
    data = tiny_config(study={"n_trials": 3}, training=EPOCHS_SHOWN)
    config = _write_config(tmp_path / "study.toml", data)
    cfg = StudyConfig.from_dict(data)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "nas.cli", "search", str(config), "--no-progress"]
    code, err = _search_stopped_by(signal.SIGINT, config, cfg, worker_procs)
    assert code == 130, err
    assert "re-run the same command to resume" in err
    interrupted, queued = _study(cfg).get_trials()
    assert interrupted.state == TrialState.FAIL
    assert "interrupted by the user" in interrupted.user_attrs["fail_reason"]
    # its architecture is queued again, once
    assert (
        queued.state == TrialState.WAITING and queued.user_attrs["retry_of"] == interrupted.number
    )

    # The same command resumes (the budget is shortened with --n-trials to keep the test quick).
    result = subprocess.run(
        [*command, "--n-trials", "2"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    trials = _study(cfg).get_trials()
    states = [t.state for t in trials]
    assert states.count(TrialState.COMPLETE) + states.count(TrialState.PRUNED) == 2
    assert trials[1].params == interrupted.params and trials[1].state == TrialState.COMPLETE
    assert "fail_reason" not in trials[1].user_attrs


@pytest.mark.slow
def test_four_local_workers_finish_exactly_the_budget(tiny_config):
    from nas.pareto import non_dominated_sort

    data = tiny_config(study={"n_trials": 8, "sampler": "tpe"})
    study = run_search(StudyConfig.from_dict(data), workers=4, progress=False)
    trials = study.get_trials()
    assert len({t.number for t in trials}) == len(trials) == 8  # local workers share a lock
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    points = [t.values for t in complete]
    first = non_dominated_sort(points, ["maximize", "minimize"])[0]
    assert {t.number for t in study.best_trials} == {complete[i].number for i in first}


@pytest.mark.slow
def test_a_local_worker_killed_mid_trial_loses_nothing(tiny_config, worker_procs):
    # Trials of seconds, so the victim still trains when the second worker has started (with 40
    # epochs of the tiny data a trial takes half a second).
    data = tiny_config(
        study={"n_trials": 5}, data={"per_class": 20}, training={**EPOCHS_SHOWN, "epochs": 60}
    )
    cfg = StudyConfig.from_dict(data)
    load_or_create_study(cfg)
    args = ("worker", "--storage", cfg.study.storage_url(), "--study", cfg.study.name)
    victim = worker_procs.start(*args, "--no-progress")

    def running(proc, trials) -> list:
        return [
            t
            for t in trials
            if t.state == TrialState.RUNNING
            and t.user_attrs.get("worker", "").endswith(f":{proc.pid}")
            and t.intermediate_values
        ]

    # The victim finishes a trial and is training the next; then a second worker joins, and the
    # victim is killed while both train.
    def victim_trains_its_second() -> bool:
        now = _study(cfg).get_trials()
        return any(t.state == TrialState.COMPLETE for t in now) and bool(running(victim, now))

    def both_train() -> bool:
        now = _study(cfg).get_trials()
        return bool(running(survivor, now)) and bool(running(victim, now))

    worker_procs.wait_for(victim_trains_its_second, 300, "the victim completes a trial, trains on")
    survivor = worker_procs.start(*args, "--no-progress")
    worker_procs.wait_for(both_train, 300, "both workers train at once")
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    before = _study(cfg).get_trials()
    completed = {t.number: t.values for t in before if t.state == TrialState.COMPLETE}
    (killed,) = running(victim, before)
    assert survivor.wait(timeout=600) == 0, worker_procs.report()

    after = {t.number: t for t in _study(cfg).get_trials()}
    for number, values in completed.items():
        assert after[number].values == values
    assert after[killed.number].state == TrialState.FAIL  # its pid is gone: failed, re-queued
    (retry,) = [t for t in after.values() if t.user_attrs.get("retry_of") == killed.number]
    assert retry.params == killed.params and retry.state != TrialState.RUNNING
    finished = [t for t in after.values() if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 5
    assert not [t for t in after.values() if t.state == TrialState.RUNNING]


@pytest.mark.slow  # worker subprocesses
def test_sigterm_abandons_the_trial_cleanly(tiny_config, tmp_path, worker_procs):
    data = tiny_config(study={"n_trials": 3}, training=EPOCHS_SHOWN)
    config = _write_config(tmp_path / "study.toml", data)
    cfg = StudyConfig.from_dict(data)
    code, err = _search_stopped_by(signal.SIGTERM, config, cfg, worker_procs)
    assert code == 143, err
    assert "stopped by signal SIGTERM" in err and "Traceback" not in err
    abandoned, queued = _study(cfg).get_trials()
    assert abandoned.state == TrialState.FAIL
    assert "stopped by signal SIGTERM" in abandoned.user_attrs["fail_reason"]
    assert queued.state == TrialState.WAITING  # its architecture, queued again
    assert queued.system_attrs["fixed_params"] == abandoned.params


def test_joining_workers_seed_their_samplers_apart(monkeypatch):
    from nas import trial_schema, worker

    offsets = set()
    for pid in (101, 102, 103):
        monkeypatch.setattr(trial_schema.os, "getpid", lambda pid=pid: pid)
        offsets.add(worker._joining_worker())
    # Distinct per process and never one of `nas search`'s own workers 0, 1, ...
    assert len(offsets) == 3 and min(offsets) >= 1000
