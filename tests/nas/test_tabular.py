"""Tabular benchmarks: a table built by the engine, its file, its checks and its noise figures."""

import json
import sys

import numpy as np
import optuna
import pytest
import torch

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from nas import trial_schema as schema
from nas.cli import main as cli
from nas.config import StudyConfig
from nas.storage import open_storage
from nas.tabular import (
    FORMAT,
    VERSION,
    export_table,
    load_table,
    planned_indices,
    prepare_table,
    rebuild_run,
    table_from_data,
    table_noise,
    table_seeds,
)
from nas.worker import run_search
from search_spaces.build import build_model
from search_spaces.cost import count_flops, count_params
from search_spaces.space import SearchSpace, architecture_params, spec_to_params, suggest_arch

#: A tiny table: 3 blocks at 2 stages of a 4-wide ResNet-8 on 100 digits, 9 architectures.
TABLE_TOML = """
[study]
name = "t"
runs_dir = "{runs_dir}"
[data]
name = "digits"
per_class = 6
val_per_class = 4
batch_size = 32
[backbone]
name = "resnet8"
args = {{ width = 4 }}
[space]
blocks = ["none", "se", "eca"]
reductions = [2]
eca_kernels = [3]
granularity = "per_stage"
stages = [2, 3]
[training]
epochs = 2
lr = 0.05
[objectives]
maximize = "val_acc"
minimize = ["params"]
"""


def table_config(tmp_path, **study) -> StudyConfig:
    data = tomllib.loads(TABLE_TOML.format(runs_dir=tmp_path / "runs"))
    data["study"].update(study)
    return StudyConfig.from_dict(data)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A whole 9-architecture x 2-seed table built with `nas table build`, and its file."""
    tmp_path = tmp_path_factory.mktemp("table")
    path = tmp_path / "t.toml"
    path.write_text(TABLE_TOML.format(runs_dir=tmp_path / "runs"))
    out = tmp_path / "t.json"
    args = ["table", "build", str(path), "--seeds", "2", "--out", str(out), "--no-progress"]
    assert cli(args) == 0
    return StudyConfig.load(path), out, tmp_path


def test_architecture_params_enumerate_the_space_once_each():
    space = SearchSpace(
        backbone="resnet8",
        backbone_args={"width": 4},
        blocks=("none", "se", "eca"),
        reductions=(2, 4),
        eca_kernels=(3,),
        granularity="per_stage",
        stages=(2, 3),
    )
    params = architecture_params(space)
    assert len(params) == space.size() == 16  # (none, se r2, se r4, eca) per stage
    digests = {suggest_arch(optuna.trial.FixedTrial(p), space).digest() for p in params}
    assert len(digests) == 16
    for p in params:  # each round-trips through the spec
        assert spec_to_params(suggest_arch(optuna.trial.FixedTrial(p), space), space) == p


def test_built_table_holds_every_architecture_with_every_seed(built):
    cfg, out, _ = built
    table = load_table(out)
    assert table.complete and table.space_size == 9 and len(table.architectures) == 9
    assert table.seeds == tuple(table_seeds(0, 2))
    assert [a.index for a in table.architectures] == list(range(9))
    assert table.val_size == 40 and (table.in_channels, table.num_classes) == (1, 10)
    for arch, params in zip(table.architectures, architecture_params(cfg.space), strict=True):
        assert arch.params == params
        assert [r.replicate for r in arch.runs] == [0, 1]
        assert {r.seed for r in arch.runs} == set(table.seeds)
        for run in arch.runs:
            assert len(run.val_acc) == len(run.val_loss) == cfg.training.epochs
            assert all(0 <= v <= 1 for v in run.val_acc) and 0 <= run.test_acc <= 1
            assert run.train_seconds > 0 and run.cpu_seconds > 0
            assert run.threads == torch.get_num_threads()
            # accuracies on 40 validation images are multiples of 1/40
            assert all(abs(v * 40 - round(v * 40)) < 1e-6 for v in run.val_acc)
        # Each architecture's own costs: those of the model its parameters build (8 x 8 digits).
        spec = suggest_arch(optuna.trial.FixedTrial(params), cfg.space, in_channels=1)
        model = build_model(spec, seed=0)
        assert arch.cost["params"] == count_params(model)
        assert arch.cost["flops"] == count_flops(model, (1, 1, 8, 8))
    # the runs differ by seed (a table of one run repeated would be useless)
    assert any(a.runs[0].val_acc != a.runs[1].val_acc for a in table.architectures)


def test_table_study_keeps_no_weights_and_resumes_without_new_runs(built):
    cfg, out, tmp_path = built
    storage = open_storage(str(tmp_path / "runs/t/journal.log"))
    study = optuna.load_study(study_name="t", storage=storage)
    trials = study.get_trials()
    assert len(trials) == 18 and all(t.state.name == "COMPLETE" for t in trials)
    assert not any(schema.WEIGHTS_ARTIFACT.has(t) for t in trials)
    assert schema.table_plan(study)["seeds"] == table_seeds(0, 2)
    again, run_cfg = prepare_table(cfg, 2)
    run_search(run_cfg, progress=False)
    assert len(again.get_trials()) == 18
    assert (
        export_table(again, tmp_path / "again.json")["architectures"]
        == json.loads(out.read_text())["architectures"]
    )


def test_rebuilding_a_run_reproduces_its_stored_curve_exactly(built, tmp_path):
    _, out, _ = built
    table = load_table(out)
    arch = table.architectures[5]
    rebuilt = rebuild_run(table, arch.index, 1, workdir=tmp_path)
    assert rebuilt.val_acc == arch.runs[1].val_acc
    assert rebuilt.val_loss == arch.runs[1].val_loss
    assert rebuilt.test_acc == arch.runs[1].test_acc
    assert rebuilt.seed == arch.runs[1].seed


def test_cli_rebuild_says_identical(built, capsys):
    _, out, _ = built
    assert cli(["table", "rebuild", str(out), "--arch", "2", "--seed", "0"]) == 0
    assert "identical" in capsys.readouterr().out


def test_a_pilot_trains_a_fixed_sample(tmp_path):
    space = table_config(tmp_path).space
    assert planned_indices(space, 4, 0) == planned_indices(space, 4, 0)
    assert len(set(planned_indices(space, 4, 0))) == 4
    assert planned_indices(space, 4, 0) != planned_indices(space, 4, 1)
    assert planned_indices(space, 100, 0) == list(range(9))


def test_table_study_refuses_other_seeds_sample_or_config_and_writes_nothing(tmp_path):
    cfg = table_config(tmp_path)
    study, _ = prepare_table(cfg, 2, sample=3)
    before = len(study.get_trials())
    with pytest.raises(ValueError, match="--seeds 2 --sample 3"):
        prepare_table(cfg, 3, sample=3)
    with pytest.raises(ValueError, match="--seeds 2 --sample 3"):
        prepare_table(cfg, 2)
    other = table_config(tmp_path)
    other = StudyConfig.from_dict(
        {**other.to_dict(), "training": {**other.to_dict()["training"], "lr": 0.2}}
    )
    with pytest.raises(ValueError, match=r"changed: training\.lr"):
        prepare_table(other, 2, sample=3)
    assert len(study.get_trials()) == before == 6
    with pytest.raises(ValueError, match="--seeds must be an int >= 1"):
        prepare_table(cfg, 0)
    with pytest.raises(ValueError, match="--sample must be an int >= 2"):
        prepare_table(cfg, 2, sample=1)
    last_only = StudyConfig.from_dict(
        {**cfg.to_dict(), "training": {**cfg.to_dict()["training"], "validate": "last_epoch"}}
    )
    with pytest.raises(ValueError, match=r"^training\.validate = 'last_epoch': a table keeps"):
        prepare_table(last_only, 2, sample=3)
    assert len(study.get_trials()) == 6


def test_a_searched_study_is_not_a_table(tmp_path):
    cfg = table_config(tmp_path)
    run_search(cfg, progress=False)
    with pytest.raises(ValueError, match="exists and is not a table study"):
        prepare_table(cfg, 2)


def _data(out):
    return json.loads(out.read_text())


def test_load_refuses_other_formats_and_versions(built, tmp_path):
    _, out, _ = built
    data = _data(out)
    with pytest.raises(ValueError, match=f"version 2 table; this release reads version {VERSION}"):
        table_from_data({**data, "version": 2})
    with pytest.raises(ValueError, match=f"format is not {FORMAT!r}"):
        table_from_data({**data, "format": "something"})
    with pytest.raises(ValueError, match="missing 'seeds'"):
        table_from_data({k: v for k, v in data.items() if k != "seeds"})
    bad = tmp_path / "bad.json"
    bad.write_text("not json")
    with pytest.raises(ValueError, match="not a table file"):
        load_table(bad)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_table(tmp_path / "missing.json")


def test_lookup_of_a_missing_architecture_names_it(built):
    _, out, _ = built
    data = _data(out)
    partial = table_from_data({**data, "architectures": data["architectures"][:4]})
    assert not partial.complete
    missing = data["architectures"][7]
    with pytest.raises(ValueError, match=rf"{missing['digest']}.*4 of the space's 9"):
        partial.lookup(missing["digest"], missing["summary"])


def test_check_matches_names_the_settings_that_differ(built, tmp_path):
    cfg, out, _ = built
    table = load_table(out)
    table.check_matches(table_config(tmp_path, name="other", seed=5))  # study settings: fine
    d = cfg.to_dict()
    other = StudyConfig.from_dict({**d, "space": {**d["space"], "blocks": ["none", "se"]}})
    with pytest.raises(ValueError, match=r"differ: space\.blocks"):
        table.check_matches(other)
    # Which epochs validate changes no weight: a replay may validate once or every epoch.
    for validate in ("every_epoch", "last_epoch"):
        table.check_matches(
            StudyConfig.from_dict({**d, "training": {**d["training"], "validate": validate}})
        )
    # Compiling changes the numerics (within float tolerance): the table's setting is kept.
    for field, value in (("compile", True), ("compile_scope", "units")):
        changed = StudyConfig.from_dict({**d, "training": {**d["training"], field: value}})
        with pytest.raises(ValueError, match=rf"differ: training\.{field}\)"):
            table.check_matches(changed)


def test_noise_figures_match_a_direct_computation(built):
    _, out, _ = built
    table = load_table(out)
    noise = table_noise(table)
    finals = np.array([[r.final_val_acc for r in a.runs] for a in table.architectures])
    pooled = np.sqrt(np.mean(finals.var(axis=1, ddof=1)))  # equal seeds: plain mean of variances
    assert noise["run_sd"] == pytest.approx(pooled)
    assert noise["spread_of_means"] == pytest.approx(finals.mean(axis=1).std(ddof=1))
    assert noise["ratio"] == pytest.approx(noise["spread_of_means"] / noise["run_sd"])
    seconds = [r.train_seconds for a in table.architectures for r in a.runs]
    assert noise["projected_build_hours"] == pytest.approx(np.median(seconds) * 9 * 2 / 3600)


def test_a_run_failed_for_good_is_queued_again_by_the_next_build(tmp_path):
    cfg = table_config(tmp_path)
    study, run_cfg = prepare_table(cfg, 1, sample=2)
    trial = study.ask()  # the first queued run, then "killed twice": FAIL, no re-queue left
    study.tell(trial, state=optuna.trial.TrialState.FAIL)
    assert len(study.get_trials()) == 2
    again, _ = prepare_table(cfg, 1, sample=2)
    waiting = again.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert sorted(schema.TABLE_ARCH.get(t) for t in waiting) == planned_indices(cfg.space, 2, 0)
    run_search(run_cfg, progress=False)
    done = again.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert sorted(schema.TABLE_ARCH.get(t) for t in done) == planned_indices(cfg.space, 2, 0)
