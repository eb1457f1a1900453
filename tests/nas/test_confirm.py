"""``nas confirm``: a companion study of repeats, its intervals and the confirmed front."""

import math
import re

import numpy as np
import optuna
import pandas as pd
import pytest
import scipy.stats
from optuna.trial import TrialState

from nas import trial_schema as schema
from nas.cli import main
from nas.cli.reviewing import _print_confirmation
from nas.config import StudyConfig
from nas.confirm import (
    confirm_frame,
    confirm_seeds,
    find_confirm_study,
    looks_schedule,
    median_repeat,
    model_line,
    plan_architectures,
    power_line,
    prepare_confirm,
    ranked_trials,
    run_confirm,
    verdict,
    verdicts,
)
from nas.pareto import non_dominated_sort
from nas.stats import (
    detectable_effect,
    dunnett_critical,
    equicorrelated,
    holm_adjust,
    many_to_one,
    mean_interval,
    t_test_power,
)
from nas.storage import open_storage
from nas.study import load_or_create_study
from nas.worker import join_study, run_search
from search_spaces.space import baselines, suggest_arch


@pytest.fixture
def searched(tiny_config):
    """A searched tiny study with its four baselines (none, se, eca, simam) and one more."""
    data = tiny_config(study={"n_trials": 5}, evaluation={"baselines": True})
    cfg = StudyConfig.from_dict(data)
    return run_search(cfg, progress=False), cfg, data


def _studies(url: str) -> list[tuple[str, int]]:
    """(name, trials) of every study in a storage: what a refused command must not change."""
    storage = open_storage(url)
    return [(s.study_name, s.n_trials) for s in optuna.get_all_study_summaries(storage)]


def test_confirm_repeats_front_and_baselines_paired_by_seed(searched):
    study, cfg, _ = searched
    url = cfg.study.storage_url()
    confirm, confirm_cfg = prepare_confirm(study, url, top=1, seeds=2)
    plan = schema.confirm_plan(confirm)
    assert plan["of"] == "tiny" and plan["seeds"] == confirm_seeds(cfg.study.seed, 2)
    assert plan["architectures"][:4] == [f"baseline {b}" for b in ("none", "se", "eca", "simam")]
    planned = len(plan["architectures"])
    assert confirm_cfg.study.n_trials == planned * 2 == len(confirm.get_trials())
    assert confirm_cfg.pruning.pruner == "none" and confirm_cfg.training == cfg.training
    # Queued again on a second call: nothing new.
    prepare_confirm(study, url, top=1, seeds=2)
    assert len(confirm.get_trials()) == planned * 2

    confirm = run_search(confirm_cfg, storage=url, progress=False)
    trials = confirm.get_trials()
    assert all(t.state == TrialState.COMPLETE for t in trials)
    for t in trials:
        seed = plan["seeds"][schema.REPLICATE.get(t)]
        assert schema.SEED.get(t) == schema.DATA_SEED.get(t) == seed
        assert 0 <= schema.TEST_ACC.get(t) <= 1 and schema.EPOCHS_RUN.get(t) == 2
    # The two repeats of one architecture differ in seed; the search's trials are untouched.
    assert len(load_or_create_study(cfg).get_trials()) == 5
    assert find_confirm_study(study).study_name == "tiny-confirm"

    frame = confirm_frame(confirm, study)
    assert list(frame["architecture"]) == plan["architectures"]
    by_key = {}
    for t in trials:
        key = f"baseline {schema.BASELINE.get(t)}" if schema.BASELINE.has(t) else "trial"
        by_key.setdefault(key, {})[schema.REPLICATE.get(t)] = t
    keys = ["trial" if k.startswith("trial") else k for k in frame["architecture"]]
    table = np.array([[by_key[k][r].values[0] for r in range(2)] for k in keys])
    expected = many_to_one(table, "dunnett")  # none is the first row
    assert set(frame["model"]) == {expected.model}
    ref = table[0]
    holm = holm_adjust([scipy.stats.ttest_rel(row, ref).pvalue for row in table[1:]])
    for i, row in enumerate(frame.itertuples()):
        vals = table[i]
        assert row.val_acc_mean == pytest.approx(vals.mean())
        assert 0 <= row.val_acc_low <= row.val_acc_mean <= row.val_acc_high <= 1
        assert 0 <= row.test_acc_low <= row.test_acc_mean <= row.test_acc_high <= 1
        if row.architecture != "baseline none":
            assert row.gain_vs_none == pytest.approx((vals - ref).mean())
            j = expected.rows.index(i)
            assert (row.gain_vs_none_low, row.gain_vs_none_high) == pytest.approx(
                (expected.low[j], expected.high[j])
            )
            assert row.p_adjusted == pytest.approx(expected.p_adjusted[j])
            if np.std(vals - ref) > 0:
                assert row.p_holm == pytest.approx(holm[i - 1])
    points = frame[["val_acc_mean", "flops"]].to_numpy()
    first = non_dominated_sort(points, ["maximize", "minimize"])[0]
    assert list(np.flatnonzero(frame["on_confirmed_front"])) == first
    assert verdict(frame).startswith("best gain over none")
    member = frame[frame["on_confirmed_front"]]["architecture"].iloc[0]
    runs = [
        t
        for t in trials
        if (f"baseline {schema.BASELINE.get(t)}" if schema.BASELINE.has(t) else "trial")
        == (member if member.startswith("baseline") else "trial")
    ]
    lower = min(runs, key=lambda t: (t.values[0], t.number))  # two repeats: the lower median
    assert median_repeat(confirm, member).number == lower.number


def _hand_made_confirm(values: dict[str, list[float]]) -> optuna.Study:
    """A confirm study of COMPLETE repeats: ``{key: [val_acc per repeat]}``, flops = 1 + index."""
    storage = optuna.storages.InMemoryStorage()
    optuna.create_study(study_name="s", storage=storage, directions=["maximize", "minimize"])
    confirm = optuna.create_study(
        study_name="s-confirm", storage=storage, directions=["maximize", "minimize"]
    )
    confirm.set_metric_names(["val_acc", "flops"])
    keys = list(values)
    confirm.set_user_attr(
        "confirm", {"of": "s", "top": 1, "seeds": [1, 2, 3], "architectures": keys}
    )
    for i, (key, accs) in enumerate(values.items()):
        for r, acc in enumerate(accs):
            attrs = {"replicate": r, "test_acc": acc - 0.01}
            if key.startswith("baseline "):
                attrs |= {"baseline": key.removeprefix("baseline "), "source_trial": None}
            else:
                attrs["source_trial"] = int(key.removeprefix("trial "))
            confirm.add_trial(optuna.trial.create_trial(values=[acc, 1.0 + i], user_attrs=attrs))
    return confirm


def test_significance_is_holm_adjusted_and_needs_a_positive_gain():
    confirm = _hand_made_confirm(
        {
            "baseline none": [0.50, 0.52, 0.51],
            "trial 3": [0.60, 0.63, 0.61],  # +0.10, tight: significant
            "trial 4": [0.40, 0.43, 0.41],  # -0.10, tight: significant, but worse
            "trial 5": [0.55, 0.50, 0.52],  # +0.013, noisy: not significant
        }
    )
    frame = confirm_frame(confirm).set_index("architecture")
    raw = [
        scipy.stats.ttest_rel(confirm_values, [0.50, 0.52, 0.51]).pvalue
        for confirm_values in ([0.60, 0.63, 0.61], [0.40, 0.43, 0.41], [0.55, 0.50, 0.52])
    ]
    order = np.argsort(raw)
    holm = np.maximum.accumulate(np.minimum(1, (3 - np.arange(3)) * np.array(raw)[order]))
    expected = np.empty(3)
    expected[order] = holm
    assert list(frame.loc[["trial 3", "trial 4", "trial 5"], "p_holm"]) == pytest.approx(expected)
    assert list(frame["significant"]) == [False, True, False, False]
    assert list(frame["vs_none"]) == ["", "better", "worse", "tie"]
    # Mean accuracy against flops (1, 2, 3, 4): none and trial 3 are on the confirmed front.
    assert list(frame["on_confirmed_front"]) == [True, True, False, False]
    assert frame.loc["trial 3", "test_acc_mean"] == pytest.approx(np.mean([0.59, 0.62, 0.60]))
    assert "trial 3" in verdict(frame.reset_index()) and "larger than its noise" in verdict(
        frame.reset_index()
    )


def test_a_gain_within_its_noise_is_said_to_be_so():
    confirm = _hand_made_confirm(
        {"baseline none": [0.50, 0.60, 0.40], "trial 1": [0.52, 0.55, 0.47]}
    )
    line = verdict(confirm_frame(confirm))
    assert "within its noise" in line and "no architecture is confirmed better" in line


def test_bad_requests_are_refused_and_touch_nothing(searched, tiny_config, capsys):
    study, cfg, data = searched
    url = cfg.study.storage_url()
    before = _studies(url)
    runs_dir = data["study"]["runs_dir"]
    for args, message in [
        (["--top", "0"], "--top must be an int >= 1"),
        (["--seeds", "1"], "an interval needs at least two seeds"),
    ]:
        assert main(["confirm", "tiny", "--runs-dir", runs_dir, *args]) == 2
        assert message in capsys.readouterr().err
    changed = StudyConfig.from_dict({**data, "training": {"epochs": 3, "lr": 0.05}})
    with pytest.raises(ValueError, match=r"changed: training.epochs"):
        prepare_confirm(study, url, top=1, seeds=2, given=changed)
    assert _studies(url) == before

    empty_cfg = StudyConfig.from_dict(
        tiny_config(study={"name": "empty"}, evaluation={"baselines": False})
    )
    empty = load_or_create_study(empty_cfg)
    empty_url = empty_cfg.study.storage_url()
    with pytest.raises(ValueError, match=r"no complete .* trial to confirm"):
        prepare_confirm(empty, empty_url, top=1, seeds=2)
    assert [name for name, _ in _studies(empty_url)] == ["empty"]

    with pytest.raises(ValueError) as caught:
        prepare_confirm(study, url, top=1, seeds=2, name="tiny")
    assert str(caught.value) == (
        "study 'tiny' exists and is not a confirm study; give the confirmation another name "
        "(--name)"
    )
    assert _studies(url) == before

    prepare_confirm(study, url, top=1, seeds=2)
    started = _studies(url)
    with pytest.raises(ValueError) as caught:
        prepare_confirm(study, url, top=2, seeds=2)
    assert str(caught.value) == (
        "'tiny-confirm' was started with --top 1 --seeds 2; resume it with those (its finished "
        "runs are kept), or start another confirmation with --name"
    )
    with pytest.raises(ValueError, match="is itself a confirm study"):
        prepare_confirm(find_confirm_study(study), url, top=1, seeds=2)
    assert _studies(url) == started

    # A new best architecture on the front: the plan stored is not the front any more.
    then = schema.confirm_plan(find_confirm_study(study))["architectures"]
    best = study.best_trials[0]
    study.add_trial(
        optuna.trial.create_trial(
            values=[1.0, 0.0],
            params=best.params,
            distributions=best.distributions,
            user_attrs={**best.user_attrs, "digest": "a-new-architecture"},
        )
    )
    now = [p.key for p in plan_architectures(study, cfg, 1)]
    assert now != then
    with pytest.raises(ValueError) as caught:
        prepare_confirm(study, url, top=1, seeds=2)
    assert str(caught.value) == (
        f"the front of 'tiny' changed since 'tiny-confirm' was planned (then: {then}, now: "
        f"{now}); confirm the new front under another name (--name), or report the "
        "confirmation that exists"
    )
    assert _studies(url) == [(n, c + (n == "tiny")) for n, c in started]


def test_a_confirm_study_is_joined_by_workers_like_any_study(searched):
    study, cfg, _ = searched
    url = cfg.study.storage_url()
    confirm, _ = prepare_confirm(study, url, top=1, seeds=2)
    joined = join_study(url, confirm.study_name, progress=False)
    assert all(t.state == TrialState.COMPLETE for t in joined.get_trials())
    assert all(schema.REPLICATE.has(t) for t in joined.get_trials())
    # Nothing is left to run: a second worker starts no trial.
    assert len(join_study(url, confirm.study_name, progress=False).get_trials()) == len(
        joined.get_trials()
    )


def test_cli_confirm_report_and_export_prefer_the_confirmed_front(searched, capsys, tmp_path):
    """confirm.csv holds every planned architecture with its runs' accuracies, and the export
    writes the median repeat of each member of the confirmed front."""
    study, _, data = searched
    runs_dir = data["study"]["runs_dir"]
    common = ["tiny", "--runs-dir", runs_dir]
    assert main(["confirm", *common, "--top", "1", "--seeds", "2", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "val_acc % [95% CI]" in out and "best gain over none" in out
    assert main(["status", *common]) == 0
    assert "confirmation ('tiny-confirm')" in capsys.readouterr().out
    assert main(["report", *common, "--out", str(tmp_path / "report")]) == 0
    confirm = find_confirm_study(study)
    table = pd.read_csv(tmp_path / "report" / "confirm.csv")
    assert list(table["architecture"]) == schema.confirm_plan(confirm)["architectures"]
    assert (table["seeds"] == 2).all()
    runs = confirm.get_trials(states=(TrialState.COMPLETE,))
    assert len(runs) == 2 * len(table)
    # A repeat is validated once, after its last epoch (only its final value counts), as are
    # the trials of this search without a pruner.
    assert {(len(schema.VAL_HISTORY.get(t)), schema.EPOCHS_RUN.get(t)) for t in runs} == {(1, 2)}
    searched_runs = study.get_trials(states=(TrialState.COMPLETE,))
    assert {(len(schema.VAL_HISTORY.get(t)), schema.EPOCHS_RUN.get(t)) for t in searched_runs} == {
        (1, 2)
    }
    assert (table["val_acc_mean"] * 2).sum() == pytest.approx(sum(t.values[0] for t in runs))
    assert main(["export", *common, "--pareto", "--out", str(tmp_path / "export")]) == 0
    out = capsys.readouterr().out
    assert "exported the confirmed front of 'tiny-confirm'" in out
    members = table.loc[table["on_confirmed_front"], "architecture"]
    chosen = sorted(f"trial_{median_repeat(confirm, key).number}" for key in members)
    folders = sorted(p.name for p in (tmp_path / "export" / "confirmed").glob("trial_*"))
    assert chosen and folders == chosen
    assert (
        main(["export", *common, "--pareto", "--search-front", "--out", str(tmp_path / "s")]) == 0
    )
    assert "the search's Pareto front" in capsys.readouterr().out


# -- pooled statistics, bounded intervals, power ---------------------------------------------------


def _intervals(text: str) -> list[tuple[float, float]]:
    """Every ``[low, high]`` printed."""
    pairs = re.findall(r"\[([-+]?\d+\.\d+), ([-+]?\d+\.\d+)\]", text)
    return [(float(a), float(b)) for a, b in pairs]


def test_cli_confirm_with_two_seeds_prints_bounded_pooled_intervals(searched, capsys):
    _, _, data = searched
    common = ["tiny", "--runs-dir", data["study"]["runs_dir"]]
    assert main(["confirm", *common, "--top", "1", "--seeds", "2", "--no-progress"]) == 0
    out = capsys.readouterr().out
    lines = out[: out.index("best gain over none")].splitlines()
    start = next(i for i, line in enumerate(lines) if "val_acc % [95% CI]" in line)
    header, accuracies = lines[start], lines[start + 1 :]
    assert len(accuracies) == len(
        schema.confirm_plan(find_confirm_study(searched[0]))["architectures"]
    )
    assert "gain vs none, points [95% CI]" in header and "p (Dunnett)" in header
    for line in accuracies:
        val, test, *_ = _intervals(line)  # the gain's interval (points) may be signed
        assert all(0.0 <= bound <= 100.0 for bound in (*val, *test)), line
    assert "model: architecture + seed (two-way ANOVA" in out or "model: per-architecture" in out
    assert "power (80%" in out


def test_intervals_near_100_percent_stay_in_bounds_where_student_t_does_not(capsys):
    values = {
        "baseline none": [0.990, 0.962],
        "trial 1": [0.999, 0.975],
        "trial 2": [0.981, 0.958],
        "trial 3": [1.000, 0.985],
    }
    confirm = _hand_made_confirm(values)
    frame = confirm_frame(confirm)
    student = [mean_interval(v) for v in values.values()]
    assert max(i.high for i in student) > 1.0  # what the Student-t interval over 2 seeds did
    assert ((frame["val_acc_low"] >= 0) & (frame["val_acc_high"] <= 1)).all()
    assert ((frame["test_acc_low"] >= 0) & (frame["test_acc_high"] <= 1)).all()
    _print_confirmation(frame)
    out = capsys.readouterr().out
    for line in out.splitlines()[1:5]:
        val, test, *_ = _intervals(line)
        assert all(0.0 <= bound <= 100.0 for bound in (*val, *test)), line


def test_pooled_intervals_are_narrower_than_per_row_on_the_same_runs():
    runs = {
        "baseline none": [0.9722, 0.9388],
        "baseline se": [0.9513, 0.9430],
        "baseline cbam": [0.9318, 0.9207],
        "trial 3": [0.9694, 0.9541],
        "trial 4": [0.9624, 0.9388],
    }
    confirm = _hand_made_confirm(runs)
    pooled = confirm_frame(confirm)
    per_row = confirm_frame(confirm, comparison="holm")
    assert set(pooled["model"]) == {"pooled"} and set(per_row["model"]) == {"per-row"}
    assert (pooled["residual_df"] == 4).all()  # (5 - 1) x (2 - 1), not 1 per row
    width = {
        (column, model): frame[f"{column}_high"] - frame[f"{column}_low"]
        for column in ("val_acc", "gain_vs_none")
        for model, frame in (("pooled", pooled), ("per-row", per_row))
    }
    gains = width["gain_vs_none", "pooled"].notna()
    assert gains.sum() == 4
    assert (width["gain_vs_none", "pooled"][gains] < width["gain_vs_none", "per-row"][gains]).all()
    # A mean's interval carries the seed effect too (Satterthwaite df between 1 and 5 here): it
    # is narrower on average and at its widest, not for a row whose two seeds happen to agree.
    assert width["val_acc", "pooled"].mean() < width["val_acc", "per-row"].mean() / 2
    assert width["val_acc", "pooled"].max() < width["val_acc", "per-row"].max() / 4
    # The per-row model is the paired t-test of each row, Holm-adjusted: the old columns.
    none = runs["baseline none"]
    for key, row in per_row.set_index("architecture").iloc[1:].iterrows():
        interval = scipy.stats.ttest_rel(runs[key], none).confidence_interval(0.95)
        assert (row["gain_vs_none_low"], row["gain_vs_none_high"]) == pytest.approx(
            (interval.low, interval.high)
        )
    assert "Holm-adjusted paired t-tests" in model_line(per_row)
    assert "two-way ANOVA" in model_line(pooled) and "df 4" in model_line(pooled)


def test_power_figures_are_those_of_the_pooled_design():
    runs = {
        "baseline none": [0.80, 0.83, 0.81, 0.84],
        "trial 1": [0.82, 0.84, 0.82, 0.87],
        "trial 2": [0.79, 0.83, 0.80, 0.84],
    }
    frame = confirm_frame(_hand_made_confirm(runs)).set_index("architecture")
    table = np.array(list(runs.values()))
    residual = table - table.mean(1, keepdims=True) - table.mean(0, keepdims=True) + table.mean()
    sd = math.sqrt(2 * (residual**2).sum() / ((3 - 1) * (4 - 1)))
    critical = dunnett_critical(6, equicorrelated(2), 0.05)
    smallest = detectable_effect(sd, 4, 6, critical)
    assert t_test_power(smallest, sd, 4, 6, critical) == pytest.approx(0.8, abs=1e-9)
    assert frame.loc["trial 1", "detectable_gain"] == pytest.approx(smallest)
    gain = table[1].mean() - table[0].mean()
    needed = int(frame.loc["trial 1", "seeds_needed"])
    df = lambda n: 2 * (n - 1)  # noqa: E731
    crit = lambda n: dunnett_critical(df(n), equicorrelated(2), 0.05)  # noqa: E731
    assert t_test_power(gain, sd, needed, df(needed), crit(needed)) >= 0.8
    assert t_test_power(gain, sd, needed - 1, df(needed - 1), crit(needed - 1)) < 0.8
    line = power_line(frame.reset_index())
    assert f"{100 * smallest:.2f} points" in line and f"need {needed} seeds" in line


# -- --top fills from the next fronts ---------------------------------------------------------------


def test_top_fills_from_the_next_non_dominated_fronts(tiny_config):
    cfg = StudyConfig.from_dict(tiny_config(evaluation={"baselines": True}))
    study = optuna.create_study(directions=["maximize", "minimize"])
    rows = [  # (val_acc, flops, baseline): fronts {none, A}, {B, C}, {D}
        (0.50, 1.0, "none"),
        (0.90, 10.0, None),
        (0.80, 12.0, None),
        (0.70, 11.0, None),
        (0.60, 13.0, None),
    ]
    for n, (acc, flops, baseline) in enumerate(rows):
        attrs = {"digest": f"d{n}"} | ({"baseline": baseline} if baseline else {})
        study.add_trial(
            optuna.trial.create_trial(
                values=[acc, flops],
                params={"stage1.block": "none"},
                distributions={
                    "stage1.block": optuna.distributions.CategoricalDistribution(["none", "se"])
                },
                user_attrs=attrs,
            )
        )
    assert [t.number for t in ranked_trials(study)] == [1, 0, 2, 3, 4]
    keys = lambda top: [p.key for p in plan_architectures(study, cfg, top)]  # noqa: E731
    assert keys(1) == ["baseline none", "trial 1"]
    assert keys(2) == ["baseline none", "trial 1"]  # none, on the first front, is one of the 2
    assert keys(3) == ["baseline none", "trial 1", "trial 2"]  # the first front holds 2
    assert keys(5) == ["baseline none", "trial 1", "trial 2", "trial 3", "trial 4"]
    assert keys(9) == keys(5)


def test_none_is_planned_where_the_search_ran_no_baselines_and_repeated_once(tiny_config):
    cfg = StudyConfig.from_dict(tiny_config())
    none_params = baselines(cfg.space, blocks=[], limit=1)["none"]
    # The input channels and classes are the searched study's (7: not a default of anything).
    none_digest = suggest_arch(
        optuna.trial.FixedTrial(none_params), cfg.space, in_channels=1, num_classes=7
    ).digest()
    study = optuna.create_study(directions=["maximize", "minimize"])
    arch = {"in_channels": 1, "num_classes": 7}
    for acc, flops, digest in ((0.9, 10.0, "d-se"), (0.5, 1.0, none_digest)):
        study.add_trial(
            optuna.trial.create_trial(
                values=[acc, flops], user_attrs={"digest": digest, "arch": arch}
            )
        )
    planned = plan_architectures(study, cfg, top=2)
    assert [p.key for p in planned] == ["baseline none", "trial 0"]  # trial 1 is none: once
    assert (planned[0].params, planned[0].source_trial) == (none_params, None)


# -- --seeds auto: looks in rounds ------------------------------------------------------------------


def _fake_run(
    effects: dict[str, float], log: list, stop_at: int | None = None, budgets: list | None = None
):
    """A stand-in for run_search: completes the confirm study's queued runs at once, val_acc =
    0.8 + the architecture's effect + a seed effect + noise (fixed per run), logging each
    (repeat, key); with ``stop_at``, raises KeyboardInterrupt once ``log`` holds that many.
    ``budgets`` gets, per call, (the n_trials it is given, the one stored with the study, the
    trials the study has), as a worker joining the study would see them."""
    noise = np.random.default_rng(5).normal(0, 0.004, (64, 16))
    seed_effect = np.random.default_rng(6).normal(0, 0.01, 16)

    def run(cfg):
        confirm = optuna.load_study(
            study_name=cfg.study.name, storage=open_storage(cfg.study.storage)
        )
        if budgets is not None:
            stored = confirm.user_attrs[schema.STUDY_CONFIG]["study"]["n_trials"]
            budgets.append((cfg.study.n_trials, stored, len(confirm.trials)))
        for _ in confirm.get_trials(states=(TrialState.WAITING,)):
            if len(log) == stop_at:
                raise KeyboardInterrupt
            trial = confirm.ask()
            r = trial.user_attrs["replicate"]
            base = trial.user_attrs.get("baseline")
            key = f"baseline {base}" if base else f"trial {trial.user_attrs['source_trial']}"
            value = (
                0.8 + effects.get(key, 0.0) + seed_effect[r] + noise[list(effects).index(key), r]
            )
            trial.set_user_attr("test_acc", value - 0.01)
            confirm.tell(trial, [value, 1.0])
            log.append((r, key))
        return confirm

    return run


def _auto(searched, effects_of, max_seeds=10):
    study, cfg, _ = searched
    url = cfg.study.storage_url()
    confirm, confirm_cfg = prepare_confirm(study, url, top=1, seeds="auto", max_seeds=max_seeds)
    plan = schema.confirm_plan(confirm)
    assert plan["looks"] == looks_schedule(3, max_seeds) and len(plan["seeds"]) == max_seeds
    effects = {key: effects_of(key) for key in plan["architectures"]}
    return confirm, confirm_cfg, url, effects


def _complete(confirm) -> dict[str, list[int]]:
    done = {}
    for t in confirm.get_trials(states=(TrialState.COMPLETE,)):
        base = t.user_attrs.get("baseline")
        key = f"baseline {base}" if base else f"trial {t.user_attrs['source_trial']}"
        done.setdefault(key, []).append(t.user_attrs["replicate"])
    return {k: sorted(v) for k, v in done.items()}


def test_auto_seeds_stop_when_every_verdict_is_decided(searched):
    def effect(key):  # every architecture far from none: decided at the first look
        return {"baseline none": 0.0, "baseline se": 0.1, "baseline eca": -0.1}.get(key, 0.15)

    confirm, cfg, url, effects = _auto(searched, effect)
    log = []
    confirm, why = run_confirm(confirm, cfg, url, _fake_run(effects, log))
    assert "every verdict against none is decided at 3 seeds" in why
    assert len(log) == 3 * len(effects) and all(r < 3 for r in _complete(confirm)["baseline none"])
    frame = confirm_frame(confirm).set_index("architecture")
    assert (frame.drop("baseline none")["decided_at"] == 3).all()
    assert frame.loc["baseline se", "vs_none"] == "better"
    assert frame.loc["baseline eca", "vs_none"] == "worse"
    assert "looks at 3, 6, 10 seeds" in model_line(frame.reset_index(), [3, 6, 10])


def test_auto_seeds_add_seeds_only_to_the_undecided_until_the_budget(searched):
    def effect(key):  # se ties with none; the rest are far off
        return {"baseline none": 0.0, "baseline se": 0.0}.get(key, -0.1)

    confirm, cfg, url, effects = _auto(searched, effect)
    log, budgets = [], []
    confirm, why = run_confirm(confirm, cfg, url, _fake_run(effects, log, budgets=budgets))
    assert why == "the budget of 10 seeds is spent"
    # Each round's runs raise the study's n_trials, given to the run and stored for any worker.
    assert budgets == [(n, n, n) for n in (3 * len(effects), 3 * len(effects) + 6, len(log))]
    done = _complete(confirm)
    assert done["baseline none"] == done["baseline se"] == list(range(10))
    assert all(v == [0, 1, 2] for k, v in done.items() if k not in ("baseline none", "baseline se"))
    assert len(log) == len(set(log)) == 3 * len(effects) + 2 * 7
    frame = confirm_frame(confirm).set_index("architecture")
    assert frame.loc["baseline se", "vs_none"] == "tie" and np.isnan(
        frame.loc["baseline se", "decided_at"]
    )
    # the looks' adjusted p-values: 3 looks, each at alpha / 3
    state = verdicts(confirm)
    assert state.reached == 3 and state.alpha == pytest.approx(0.05 / 3)
    looks = [many_to_one(state.values[:, :s], "dunnett", 0.05 / 3) for s in (3, 6, 10)]
    i = state.keys.index("baseline se")
    smallest = min(float(look.p_adjusted[look.rows.index(i)]) for look in looks)
    assert frame.loc["baseline se", "p_adjusted"] == pytest.approx(min(1.0, 3 * smallest))
    assert frame.loc["baseline se", "gain_confidence"] == pytest.approx(1 - 0.05 / 3)


def test_runs_are_queued_under_the_lock_the_studys_workers_take(searched, monkeypatch):
    """Planning and queueing a look's runs hold this machine's lock of the confirm study (the
    one ``run_search`` takes to count and ask), so no worker of the study asks meanwhile."""
    import nas.confirm.planning as planning
    import nas.confirm.rounds as rounds

    taken = []
    real_lock = rounds.machine_lock

    def recording_lock(lock_url, study_name):
        taken.append((lock_url, study_name))
        return real_lock(lock_url, study_name)

    monkeypatch.setattr(planning, "machine_lock", recording_lock)
    monkeypatch.setattr(rounds, "machine_lock", recording_lock)
    confirm, cfg, url, effects = _auto(searched, lambda key: 0.0)
    run_confirm(confirm, cfg, url, _fake_run(effects, []))
    assert len(taken) > 1 and set(taken) == {(url, confirm.study_name)}


def test_a_killed_auto_confirmation_resumes_without_repeating_a_run(searched):
    def effect(key):
        return {"baseline none": 0.0, "baseline se": 0.0}.get(key, -0.1)

    confirm, cfg, url, effects = _auto(searched, effect)
    first = []
    confirm, _ = run_confirm(confirm, cfg, url, _fake_run(effects, first))
    # Again from scratch, on another study, killed in the second round.
    study, _, _ = searched
    other, other_cfg = prepare_confirm(
        study, url, top=1, seeds="auto", max_seeds=10, name="tiny-confirm-2"
    )
    killed = []
    with pytest.raises(KeyboardInterrupt):
        run_confirm(other, other_cfg, url, _fake_run(effects, killed, stop_at=3 * len(effects) + 1))
    assert len(killed) == 3 * len(effects) + 1  # round 1, and one run of round 2
    other, other_cfg = prepare_confirm(  # the CLI's resume: the same command again
        study, url, top=1, seeds="auto", max_seeds=10, name="tiny-confirm-2"
    )
    resumed = []
    other, why = run_confirm(other, other_cfg, url, _fake_run(effects, resumed))
    assert not set(resumed) & set(killed)
    assert sorted(killed + resumed) == sorted(first)
    assert _complete(other) == _complete(confirm) and why == "the budget of 10 seeds is spent"


def test_bad_seed_options_are_one_line_errors_that_change_nothing(searched, capsys):
    study, cfg, data = searched
    url = cfg.study.storage_url()
    common = ["confirm", "tiny", "--runs-dir", data["study"]["runs_dir"], "--top", "1"]
    before = _studies(url)
    for args, message in [
        (
            ["--seeds", "5", "--max-seeds", "3"],
            "--max-seeds 3 is below --seeds 5: give --max-seeds >= 5",
        ),
        (["--seeds", "auto"], "--seeds auto needs a budget: add --max-seeds N"),
    ]:
        assert main([*common, *args]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) <= 2  # argparse adds its usage
    assert _studies(url) == before
    confirm, _ = prepare_confirm(study, url, top=1, seeds=2)  # queued, not run
    plan, started = schema.confirm_plan(confirm), _studies(url)
    assert main([*common, "--seeds", "2", "--max-seeds", "6"]) == 2
    err = capsys.readouterr().err
    unfinished = 2 * len(plan["architectures"])
    assert f"has {unfinished} unfinished runs: finish it first" in err and "--seeds 2" in err
    assert len(err.strip().splitlines()) == 1
    assert main([*common, "--seeds", "3"]) == 2
    assert "was started with --top 1 --seeds 2; resume it" in capsys.readouterr().err
    assert _studies(url) == started and schema.confirm_plan(find_confirm_study(study)) == plan


def test_the_comparison_is_stored_with_the_plan(searched):
    study, cfg, _ = searched
    url = cfg.study.storage_url()
    confirm, _ = prepare_confirm(study, url, top=1, seeds=2)
    assert schema.confirm_plan(confirm)["comparison"] == "dunnett"
    confirm, _ = prepare_confirm(study, url, top=1, seeds=2, comparison="holm")  # re-judged
    assert schema.confirm_plan(confirm)["comparison"] == "holm"
    prepare_confirm(study, url, top=1, seeds="auto", max_seeds=6, name="tiny-auto")
    before = _studies(url)
    with pytest.raises(ValueError, match="decides its rounds with --comparison dunnett"):
        prepare_confirm(
            study, url, top=1, seeds="auto", max_seeds=6, comparison="holm", name="tiny-auto"
        )
    with pytest.raises(ValueError, match="started with --top 1 --seeds 3 --max-seeds 6"):
        prepare_confirm(study, url, top=1, seeds=3, max_seeds=10, name="tiny-auto")
    assert _studies(url) == before


def test_a_finished_confirmation_is_extended_by_max_seeds(searched):
    study, cfg, _ = searched
    url = cfg.study.storage_url()
    confirm, confirm_cfg = prepare_confirm(study, url, top=1, seeds=2)
    keys = schema.confirm_plan(confirm)["architectures"]
    effects = {k: {"baseline none": 0.0, "baseline se": 0.0}.get(k, -0.2) for k in keys}
    log = []
    confirm, why = run_confirm(confirm, confirm_cfg, url, _fake_run(effects, log))
    assert why == "" and len(log) == 2 * len(keys)
    # The smallest extension: one more look (2 -> 4 seeds).
    confirm, confirm_cfg = prepare_confirm(study, url, top=1, seeds="auto", max_seeds=4)
    plan = schema.confirm_plan(confirm)
    assert plan["looks"] == [2, 4] and plan["seeds"][:2] == confirm_seeds(cfg.study.seed, 2)
    confirm, why = run_confirm(confirm, confirm_cfg, url, _fake_run(effects, log))
    done = _complete(confirm)
    assert done["baseline none"] == done["baseline se"] == list(range(4))
    assert len(log) == len(set(log)) == 2 * len(keys) + 2 * 2
    assert why == "the budget of 4 seeds is spent"
