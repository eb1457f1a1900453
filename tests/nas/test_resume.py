"""Resumes and extra processes propose new architectures; none is trained twice."""

import threading
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from nas import trial_schema as schema
from nas.config import StudyConfig
from nas.objective import ArchitectureRunning, TrialRunner
from nas.storage import open_storage
from nas.study import SEED_STRIDE, load_or_create_study
from nas.worker import run_search, run_worker
from search_spaces.space import suggest_arch

#: Six sites (ResNet-14, one choice per residual block) x 7 blocks x 2 positions: ~5e6
#: architectures, so distinct seeds never propose the same one by chance in a few trials.
WIDE = {
    "backbone": {"name": "cifar_resnet", "args": {"depth": 14, "width": 4}},
    "space": {
        "blocks": ["none", "se", "eca", "simam", "gct", "cbam", "coord"],
        "positions": ["standard", "post"],
        "granularity": "per_block",
    },
    "training": {"epochs": 1, "lr": 0.05},
}


def _trials(cfg: StudyConfig) -> list[optuna.trial.FrozenTrial]:
    storage = open_storage(cfg.study.storage_url())
    return optuna.load_study(study_name=cfg.study.name, storage=storage).get_trials()


@pytest.mark.parametrize("sampler", ["random", "nsga2", "tpe"])
def test_a_resume_proposes_new_architectures(tiny_config, sampler):
    data = tiny_config(**WIDE, study={"sampler": sampler, "n_trials": 3})
    run_search(StudyConfig.from_dict(data), progress=False)
    data["study"]["n_trials"] = 6
    cfg = StudyConfig.from_dict(data)
    run_search(cfg, progress=False)
    trials = _trials(cfg)
    assert len(trials) == 6 and all(t.state.is_finished() for t in trials)
    assert len({schema.DIGEST.get(t) for t in trials}) == 6
    assert not any(schema.DUPLICATE_OF.has(t) for t in trials)


def test_sampler_seeds_differ_per_process_and_a_fresh_study_keeps_its_seed(tiny_config):
    cfg = StudyConfig.from_dict(tiny_config(study={"seed": 7, "n_trials": 1}))
    # The first process of a fresh study samples with study.seed, as every release did.
    reference = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=7))
    expected = suggest_arch(reference.ask(), cfg.space, in_channels=1, num_classes=10)
    run_worker(cfg, progress=False)
    assert schema.DIGEST.get(_trials(cfg)[0]) == expected.digest()
    assert schema.sampler_starts(load_or_create_study(cfg)) == 1
    more = StudyConfig.from_dict(tiny_config(study={"seed": 7, "n_trials": 2}))
    run_worker(more, progress=False)
    assert schema.sampler_starts(load_or_create_study(more)) == 2
    # A run with nothing to do claims no seed (and writes nothing).
    run_worker(more, progress=False)
    assert schema.sampler_starts(load_or_create_study(more)) == 2
    assert SEED_STRIDE > 1000  # apart from the worker offsets of `--workers N`


def _start_running_twin(cfg: StudyConfig) -> tuple[optuna.Study, optuna.Trial]:
    """A RUNNING trial of this process, and the same architecture queued behind it."""
    study = load_or_create_study(cfg)
    first = study.ask()
    spec = suggest_arch(first, cfg.space, in_channels=1, num_classes=10)
    schema.WORKER.set(first, schema.this_worker())
    schema.DIGEST.set(first, spec.digest())
    schema.SEED.set(first, cfg.study.seed)  # common random numbers: every trial's seed
    study.enqueue_trial(first.params)
    return study, first


def test_a_running_duplicate_is_waited_for_and_its_outcome_reused(tiny_config):
    cfg = StudyConfig.from_dict(tiny_config(study={"n_trials": 2}))
    study, first = _start_running_twin(cfg)

    def finish_first() -> None:
        time.sleep(1.5)
        schema.COST.set(first, {"flops": 123.0})
        schema.EPOCHS_RUN.set(first, 2)
        study.tell(first, [0.5, 123.0])

    finisher = threading.Thread(target=finish_first)
    finisher.start()
    started = time.monotonic()
    assert run_worker(cfg, progress=False) == 1
    finisher.join()
    first_done, twin = _trials(cfg)
    assert time.monotonic() - started >= 1.5
    assert twin.state == TrialState.COMPLETE and twin.values == first_done.values == [0.5, 123.0]
    assert schema.DUPLICATE_OF.get(twin) == 0 and schema.epochs_spent(twin) == 0


def test_the_runner_refuses_to_train_an_architecture_that_is_running(tiny_config):
    cfg = StudyConfig.from_dict(tiny_config(study={"n_trials": 2}))
    study, _ = _start_running_twin(cfg)
    with pytest.raises(ArchitectureRunning, match="running as trial 0"):
        TrialRunner(cfg, study, progress=False).run(study.ask())


def test_a_duplicate_of_a_pruned_trial_is_pruned_without_training(tiny_config):
    cfg = StudyConfig.from_dict(tiny_config(study={"n_trials": 2}))
    study = load_or_create_study(cfg)
    first = study.ask()
    suggest_arch(first, cfg.space, in_channels=1, num_classes=10)
    runner = TrialRunner(cfg, study, progress=False)
    outcome = runner.run(first)
    from nas.pruning import finish_pruned

    finish_pruned(study, first, outcome.values)  # as if the pruner had stopped it
    study.enqueue_trial(first.params)
    twin = study.ask()
    reused = runner.run(twin)
    assert reused.state == TrialState.PRUNED and reused.values == outcome.values
    assert schema.DUPLICATE_OF.get(twin) == 0


@pytest.mark.slow  # two `nas search` processes
def test_two_concurrent_searches_train_distinct_architectures(tiny_config, tmp_path, worker_procs):
    import tomli_w

    data = tiny_config(**WIDE, study={"n_trials": 8})
    config = tmp_path / "study.toml"
    config.write_bytes(tomli_w.dumps(data).encode())
    procs = [worker_procs.start("search", str(config), "--no-progress") for _ in range(2)]
    worker_procs.wait_for(lambda: all(p.poll() is not None for p in procs), 300, "both searches")
    assert [p.returncode for p in procs] == [0, 0], worker_procs.report()
    cfg = StudyConfig.from_dict(data)
    trials = [t for t in _trials(cfg) if t.state.is_finished()]
    assert len(trials) == 8
    assert len({schema.DIGEST.get(t) for t in trials}) == 8
    assert schema.sampler_starts(load_or_create_study(cfg)) == 2


@pytest.mark.slow  # a `nas search` process killed mid-trial, then resumed
def test_a_killed_and_resumed_study_trains_distinct_architectures(
    tiny_config, tmp_path, worker_procs
):
    import signal
    import subprocess
    import sys

    import tomli_w

    from nas.pareto import front_trials

    data = tiny_config(
        **{**WIDE, "training": {"epochs": 40, "lr": 0.05, "validate": "every_epoch"}},
        study={"n_trials": 5},
    )
    config = tmp_path / "study.toml"
    config.write_bytes(tomli_w.dumps(data).encode())
    cfg = StudyConfig.from_dict(data)
    proc = worker_procs.start("search", str(config), "--no-progress")

    def two_done_one_training() -> bool:
        if not Path(cfg.study.storage_url()).exists():
            return False
        trials = _trials(cfg)
        done = sum(t.state == TrialState.COMPLETE for t in trials)
        return (
            done >= 2 and trials[-1].state == TrialState.RUNNING and trials[-1].intermediate_values
        )

    worker_procs.wait_for(two_done_one_training, 180, "two trials complete, a third training")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    resumed = subprocess.run(
        [sys.executable, "-m", "nas.cli", "search", str(config), "--no-progress"],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr
    trials = _trials(cfg)
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    states = [(t.number, t.state.name, t.user_attrs.get("retry_of")) for t in trials]
    assert len(finished) == 5, states
    assert len({schema.DIGEST.get(t) for t in finished}) == 5
    storage = open_storage(cfg.study.storage_url())
    study = optuna.load_study(study_name=cfg.study.name, storage=storage)
    front = [schema.DIGEST.get(t) for t in front_trials(study)]
    assert len(front) == len(set(front))
