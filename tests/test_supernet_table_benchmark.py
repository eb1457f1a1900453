"""benchmarks/supernet_table.py: settings, few-shot paths, rankings against the table's truth."""

import json
import math
import sys
from pathlib import Path

import pytest

from benchmarks._harness import read_runs

sys.path.insert(0, str(Path(__file__).resolve().parent / "nas"))
from _tables import synthetic_table, synthetic_table_data

from nas.stats import rank_correlation
from search_spaces.supernet import PathSampler


@pytest.fixture(scope="module")
def bench(load_benchmark):
    return load_benchmark("supernet_table")


def test_settings_parse_and_count_the_few_shot_children(bench):
    assert bench.Setting.parse("fair:32") == bench.Setting("fair:32", "fair", 32)
    fewshot = bench.Setting.parse("fewshot:8+2")
    assert (fewshot.epochs, fewshot.child_epochs) == (8, 2)
    assert fewshot.training_epochs(choices=7) == 8 + 7 * 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("spos:8", "must be uniform, fair or fewshot"),
        ("uniform", "uniform:EPOCHS"),
        ("uniform:0", "uniform:EPOCHS"),
        ("fewshot:8", r"fewshot:PARENT\+CHILD"),
        ("fair:8+2", "fair:EPOCHS"),
    ],
)
def test_a_malformed_setting_is_refused_with_its_form(bench, text, message):
    with pytest.raises(SystemExit, match=message):
        bench.Setting.parse(text)


def test_fixed_scope_paths_take_the_split_choice_and_sample_the_rest(bench):
    table = synthetic_table()
    space = table.space
    sampler = PathSampler(space, seed=3, in_channels=1)
    scope_sites = list(space.scopes().values())[-1]
    choice = space.choices()[2]
    fixed = bench.FixedScope(sampler, scope_sites, choice)
    other_sites = [s for s in sampler(0).sites if s not in scope_sites]
    for step in range(12):
        path = fixed(step)
        assert all(path.sites[s] == choice for s in scope_sites)
        assert all(path.sites[s] == sampler(step).sites[s] for s in other_sites)
    other_scope = next(iter(space.scopes().values()))[0]
    assert len({fixed(s).sites[other_scope].block for s in range(12)}) > 1


def test_rankings_are_the_rank_correlations_with_the_table_truth(bench):
    table = synthetic_table()
    truth = [a.mean_val_acc() for a in table.architectures]
    assert bench.top_indices(truth) == [8, 7, 6]  # 10% of 9 is 1: at least 3
    estimate = [0.3, 0.1, 0.2, 0.5, 0.4, 0.6, 0.9, 0.7, 0.8]
    run = {
        "setting": "uniform:1",
        "seed": 0,
        "image_epochs": 10,
        "train_seconds": 1.0,
        "estimate_seconds": 0.1,
        "estimates": {"2": estimate},
    }
    (row,) = bench.supernet_rankings(table, [run], ["uniform:1"], n_boot=40)
    expected = rank_correlation(estimate, truth, n_boot=40)
    assert row["all"]["kendall_tau"] == pytest.approx(expected.kendall_tau)
    assert row["all"]["tau_low"] == pytest.approx(expected.tau_low)
    top = rank_correlation([0.8, 0.7, 0.9], [truth[8], truth[7], truth[6]], n_boot=40)
    assert row["top"]["kendall_tau"] == pytest.approx(top.kendall_tau)
    assert row["calibration"] == 2
    twin = {**run, "seed": 1, "estimates": {"2": truth}}
    agreement = bench.seed_agreement([run, twin], calibration=2)
    assert agreement["uniform:1"] == pytest.approx(expected.kendall_tau)


def test_a_run_trains_estimates_every_architecture_and_resumes(bench, tmp_path, capsys):
    table_path = tmp_path / "table.json"
    table_path.write_text(json.dumps(synthetic_table_data()))
    out = tmp_path / "supernet.md"
    argv = [
        "--table",
        str(table_path),
        "--settings",
        "uniform:1",
        "fewshot:1+1",
        "--supernet-seeds",
        "1",
        "--calibration",
        "1",
        "2",
        "--n-boot",
        "20",
        "--out",
        str(out),
    ]
    assert bench.main(argv) == 0
    runs = read_runs(out)
    assert {r["setting"] for r in runs} == {"uniform:1", "fewshot:1+1"}
    for run in runs:
        for values in run["estimates"].values():
            assert len(values) == 9 and all(0.0 <= v <= 1.0 and not math.isnan(v) for v in values)
    fewshot = next(r for r in runs if r["setting"] == "fewshot:1+1")
    uniform = next(r for r in runs if r["setting"] == "uniform:1")
    assert fewshot["image_epochs"] == 4 * uniform["image_epochs"]  # parent + 3 children
    assert fewshot["estimates"] != uniform["estimates"]  # the children trained on
    first = out.read_text().split("## Supernets")[1]
    capsys.readouterr()
    assert bench.main(argv) == 0  # resumed: nothing left to train, the same table
    assert "supernets to train" not in capsys.readouterr().err
    assert out.read_text().split("## Supernets")[1] == first
    with pytest.raises(SystemExit, match="lack these counts"):
        bench.main([*argv[: argv.index("--calibration")], "--calibration", "4", *argv[-4:]])
