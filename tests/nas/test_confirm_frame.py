"""A confirm study's verdicts from stored runs with known values: the table, its lines and the
sequential looks, each checked against a float64 computation of its own (scipy's paired
t-tests, Holm's step-down, a two-way ANOVA, the noncentral t). No training: the runs are
written into an in-memory study the way ``nas confirm`` stores them."""

import math

import numpy as np
import optuna
import pandas as pd
import pytest
import scipy.stats
from optuna.trial import TrialState, create_trial

from nas import trial_schema as schema
from nas.confirm import (
    confirm_frame,
    median_repeat,
    model_line,
    power_line,
    supernet_agreement,
    verdict,
)
from nas.confirm.rounds import next_round, verdicts
from nas.stats import mean_intervals

SEEDS = [10, 11, 12, 13]
SEED_SHIFT = np.array([0.0, 0.01, -0.01, 0.005])
#: Architecture -> (true accuracy, parameters, noise per repeat). ``trial 3`` gains 6 points
#: over none, ``trial 5`` ties it, ``baseline se`` loses 5.
RUNS = {
    "baseline none": (0.80, 100.0, [0.002, -0.003, 0.001, 0.000]),
    "trial 3": (0.86, 150.0, [-0.002, 0.001, 0.003, -0.002]),
    "trial 5": (0.80, 120.0, [0.004, -0.002, -0.004, 0.001]),
    "baseline se": (0.75, 110.0, [0.001, 0.002, -0.004, 0.000]),
}


def _val_acc(key: str) -> np.ndarray:
    mean, _, noise = RUNS[key]
    return mean + SEED_SHIFT + np.array(noise)


def _attrs(key: str, repeat: int) -> dict:
    kind, name = key.split(" ")
    attrs = {schema.REPLICATE.key: repeat, schema.SUMMARY.key: f"summary of {key}"}
    if kind == "baseline":
        attrs[schema.BASELINE.key] = name
    else:
        attrs[schema.SOURCE_TRIAL.key] = int(name)
    return attrs


def _confirm_study(
    comparison: str, looks: list[int] | None = None, repeats: int = 4, keys=tuple(RUNS)
) -> optuna.Study:
    """A confirm study of ``keys`` with ``repeats`` complete runs each, planned as ``nas
    confirm`` plans it (``looks`` seeds per look; one look of every seed by default)."""
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.set_metric_names(["val_acc", "params"])
    plan = {
        "of": "searched",
        "top": 2,
        "seeds": SEEDS,
        "architectures": list(keys),
        "looks": looks or [len(SEEDS)],
        "comparison": comparison,
    }
    study.set_user_attr(schema.CONFIRM, plan)
    for key in keys:
        for r in range(repeats):
            _add_run(study, key, r)
    return study


def _add_run(study: optuna.Study, key: str, repeat: int) -> None:
    value = float(_val_acc(key)[repeat])
    attrs = {**_attrs(key, repeat), schema.TEST_ACC.key: value - 0.01}
    study.add_trial(
        create_trial(state=TrialState.COMPLETE, values=[value, RUNS[key][1]], user_attrs=attrs)
    )


def _holm(p: list[float]) -> list[float]:
    """Holm's step-down adjustment, written out: the i-th smallest times (m - i), running max."""
    order = np.argsort(p)
    adjusted, running = [0.0] * len(p), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def _paired(key: str) -> tuple[float, float, float]:
    """(mean gain over none, SD of the paired differences, scipy's paired t-test p)."""
    diff = _val_acc(key) - _val_acc("baseline none")
    p = scipy.stats.ttest_rel(_val_acc(key), _val_acc("baseline none")).pvalue
    return float(diff.mean()), float(diff.std(ddof=1)), float(p)


def _power(effect: float, sd: float, n: int, m: int) -> float:
    """Power of a two-sided paired t-test at 0.05 / m (Bonferroni's first step), by scipy's
    noncentral t (its lower tail, far out, comes back NaN for what is 0)."""
    critical = scipy.stats.t.ppf(1 - 0.05 / (2 * m), n - 1)
    dist = scipy.stats.nct(n - 1, effect * math.sqrt(n) / sd)
    return float(dist.sf(critical) + np.nan_to_num(dist.cdf(-critical)))


def test_per_row_table_against_scipy_paired_t_tests_and_holm():
    frame = confirm_frame(_confirm_study("holm")).set_index("architecture")
    others = ["trial 3", "trial 5", "baseline se"]
    # Each metric's intervals come from its own runs: test accuracy is validation's - 0.01.
    val = np.array([_val_acc(key) for key in RUNS])
    for metric, table in (("val_acc", val), ("test_acc", val - 0.01)):
        low, high = mean_intervals(table, False, 0.95)
        assert list(frame[f"{metric}_low"]) == pytest.approx(list(low), abs=1e-12)
        assert list(frame[f"{metric}_high"]) == pytest.approx(list(high), abs=1e-12)
    p_holm = dict(zip(others, _holm([_paired(k)[2] for k in others]), strict=True))
    for key in RUNS:
        values = _val_acc(key)
        row = frame.loc[key]
        assert row["seeds"] == 4
        assert row["summary"] == f"summary of {key}"
        assert row["val_acc_mean"] == pytest.approx(values.mean(), abs=1e-12)
        assert row["val_acc_sd"] == pytest.approx(values.std(ddof=1), abs=1e-12)
        assert row["test_acc_mean"] == pytest.approx(values.mean() - 0.01, abs=1e-12)
        assert row["val_acc_low"] < row["val_acc_mean"] < row["val_acc_high"]
        assert row["test_acc_low"] < row["test_acc_mean"] < row["test_acc_high"]
        assert row["params"] == RUNS[key][1]
        assert math.isnan(row["search_val_acc"]) and row["search_estimate"] == "single run"
    for key in others:
        gain, _, p = _paired(key)
        row = frame.loc[key]
        assert row["gain_vs_none"] == pytest.approx(gain, abs=1e-12)
        assert row["gain_vs_none_low"] < gain < row["gain_vs_none_high"]
        assert row["p_value"] == pytest.approx(p, rel=1e-9)
        assert row["p_holm"] == pytest.approx(p_holm[key], rel=1e-9)
        assert row["p_adjusted"] == pytest.approx(p_holm[key], rel=1e-9)  # one look
        assert (row["model"], row["comparison"]) == ("per-row", "holm")
    assert (
        frame.loc["trial 3", "gain_vs_none_low"] > 0 > frame.loc["baseline se", "gain_vs_none_high"]
    )
    assert math.isnan(frame.loc["baseline none", "gain_vs_none"])
    assert dict(frame["vs_none"]) == {
        "baseline none": "",
        "trial 3": "better",
        "trial 5": "tie",
        "baseline se": "worse",
    }
    assert dict(frame["significant"]) == {k: k == "trial 3" for k in RUNS}
    assert frame.loc["trial 3", "decided_at"] == 4 and math.isnan(
        frame.loc["trial 5", "decided_at"]
    )


def test_confirmed_front_is_the_brute_force_non_dominated_set():
    frame = confirm_frame(_confirm_study("holm"))
    points = list(zip(frame["val_acc_mean"], frame["params"], strict=True))
    dominated = [
        any(a >= acc and c <= cost and (a, c) != (acc, cost) for a, c in points)
        for acc, cost in points
    ]
    assert list(frame["on_confirmed_front"]) == [not d for d in dominated]
    assert set(frame.loc[frame["on_confirmed_front"], "architecture"]) == {
        "baseline none",
        "trial 3",
    }


def test_an_architecture_with_one_repeat_is_never_on_the_confirmed_front():
    study = _confirm_study("holm", keys=("baseline none", "trial 5", "baseline se"))
    _add_run(study, "trial 3", 0)  # the most accurate, but one repeat is no confirmation
    frame = confirm_frame(study).set_index("architecture")
    assert frame.loc["trial 3", "seeds"] == 1 and math.isnan(frame.loc["trial 3", "val_acc_sd"])
    assert not frame.loc["trial 3", "on_confirmed_front"]
    assert frame.loc["baseline none", "on_confirmed_front"]


def test_pooled_model_residual_sd_is_the_two_way_anova_one():
    frame = confirm_frame(_confirm_study("dunnett"))
    table = np.array([_val_acc(k) for k in RUNS])
    residuals = _two_way_residuals(table)
    df = (table.shape[0] - 1) * (table.shape[1] - 1)
    row = frame.iloc[0]
    assert (row["model"], row["comparison"]) == ("pooled", "dunnett")
    assert row["residual_df"] == df
    assert row["residual_sd"] == pytest.approx(math.sqrt((residuals**2).sum() / df), rel=1e-9)
    line = model_line(frame)
    assert f"one residual sd of {100 * row['residual_sd']:.2f} points" in line
    assert f"(df {df})" in line and "Dunnett's many-to-one" in line
    assert f"Bartlett p = {row['variance_p']:.2g}" in line and "sequential" not in line
    looks = model_line(frame, looks=[2, 4])
    assert looks.endswith(
        "sequential: looks at 2, 4 seeds, each at alpha 0.05/2 (Bonferroni over the planned looks), p adjusted over them"
    )


def _study_of(
    values: dict[str, np.ndarray], comparison: str, test_acc=None, unsummarised=()
) -> optuna.Study:
    """A confirm study whose architecture ``key`` has the runs ``values[key]`` (validation
    accuracy per repeat) and test accuracy ``test_acc[key]`` (validation's where not given);
    the runs of ``unsummarised`` architectures store no summary."""
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.set_metric_names(["val_acc", "params"])
    plan = {"of": "searched", "top": 2, "seeds": SEEDS, "architectures": list(values)}
    study.set_user_attr(schema.CONFIRM, {**plan, "looks": [4], "comparison": comparison})
    for key, runs in values.items():
        tests = (test_acc or {}).get(key, runs)
        for r, (value, test) in enumerate(zip(runs, tests, strict=True)):
            attrs = {**_attrs(key, r), schema.TEST_ACC.key: float(test)}
            if key in unsummarised:
                del attrs[schema.SUMMARY.key]
            study.add_trial(
                create_trial(
                    state=TrialState.COMPLETE, values=[float(value), 1.0], user_attrs=attrs
                )
            )
    return study


def _two_way_residuals(table: np.ndarray) -> np.ndarray:
    return (
        table - table.mean(axis=1, keepdims=True) - table.mean(axis=0, keepdims=True) + table.mean()
    )


def test_a_pooled_request_with_unequal_variances_falls_back_to_per_row_and_says_why():
    """Eight steady architectures and one that swings by +-5 points: Bartlett's test on the
    two-way residuals (scipy) rejects one shared variance, so the rows are compared one by one."""
    values = {"baseline none": np.full(4, 0.80)}
    values |= {f"trial {i}": np.full(4, 0.80 + 0.01 * i) for i in range(1, 8)}
    values["trial 8"] = 0.80 + np.array([0.05, -0.05, 0.04, -0.04])
    frame = confirm_frame(_study_of(values, "dunnett"))
    p = scipy.stats.bartlett(*_two_way_residuals(np.array(list(values.values())))).pvalue
    row = frame.iloc[0]
    assert (row["model"], row["comparison"]) == ("per-row", "holm")
    assert row["variance_p"] == pytest.approx(p, rel=1e-9) and p < 0.01
    assert row["model_note"] == (
        f"the architectures' residual variances are clearly unequal (Bartlett p = {p:.2g} < 0.01)"
    )
    pooled = confirm_frame(_confirm_study("dunnett")).iloc[0]
    table = np.array([_val_acc(k) for k in RUNS])
    expected = scipy.stats.bartlett(*_two_way_residuals(table)).pvalue
    assert pooled["variance_p"] == pytest.approx(expected, rel=1e-9) and pooled["model_note"] == ""


def test_row_figures_of_few_repeats_and_of_a_planned_architecture_without_runs():
    values = {"baseline none": np.array([0.80, 0.81]), "trial 3": np.array([0.84, 0.86])}
    test_acc = {"trial 3": np.array([0.70, 0.90])}  # its spread differs from validation's
    study = _study_of(values, "holm", test_acc, unsummarised=["trial 3"])
    plan = schema.confirm_plan(study)
    study.set_user_attr(schema.CONFIRM, {**plan, "architectures": [*values, "trial 9"]})
    frame = confirm_frame(study).set_index("architecture")
    # Two repeats have an SD: validation accuracy's own, whatever the test accuracy did.
    assert frame.loc["trial 3", "val_acc_sd"] == pytest.approx(np.std([0.84, 0.86], ddof=1))
    assert frame.loc["trial 3", "test_acc_mean"] == pytest.approx(0.80)
    assert frame.loc["trial 3", "summary"] == ""  # runs stored without a summary
    # Planned, never run: no summary, no figures, no cost.
    empty = frame.loc["trial 9"]
    assert (empty["summary"], empty["seeds"]) == ("", 0)
    assert all(math.isnan(empty[c]) for c in ("val_acc_mean", "val_acc_sd", "params"))


def test_a_gain_equal_in_every_seed_has_no_power_figures_and_one_comparison_needs_no_split():
    """The paired SD of a gain that is the same in every seed is 0: no t-test power applies.
    With one architecture against none, the detectable gain is the unsplit test's (m = 1)."""
    none = _val_acc("baseline none")
    steady = confirm_frame(_study_of({"baseline none": none, "trial 3": none + 0.02}, "holm"))
    row = steady.set_index("architecture").loc["trial 3"]
    assert math.isnan(row["detectable_gain"]) and math.isnan(row["seeds_needed"])
    frame = confirm_frame(_confirm_study("holm", keys=("baseline none", "trial 3")))
    _, sd, _ = _paired("trial 3")
    gain = frame.set_index("architecture").loc["trial 3", "detectable_gain"]
    assert _power(gain, sd, 4, 1) == pytest.approx(0.8, abs=1e-6)


def test_the_table_has_the_columns_confirm_csv_documents():
    frame = confirm_frame(_confirm_study("holm"))
    assert list(frame.columns) == [
        "architecture", "summary", "seeds", "val_acc_mean", "val_acc_low", "val_acc_high",
        "val_acc_sd", "test_acc_mean", "test_acc_low", "test_acc_high", "params",
        "search_val_acc", "search_estimate", "gain_vs_none",
        "gain_vs_none_low", "gain_vs_none_high", "gain_confidence", "p_value", "p_adjusted",
        "p_holm", "significant", "vs_none", "decided_at", "model", "comparison", "model_note",
        "variance_p", "residual_sd", "residual_df", "detectable_gain", "seeds_needed",
        "on_confirmed_front",
    ]  # fmt: skip


def test_per_row_model_line_says_why():
    frame = confirm_frame(_confirm_study("holm"))
    assert model_line(frame).startswith("model: per-architecture intervals")
    assert model_line(frame).endswith("against none (--comparison holm)")
    assert model_line(pd.DataFrame()) == ""


def test_detectable_gain_and_seeds_needed_by_the_noncentral_t():
    frame = confirm_frame(_confirm_study("holm")).set_index("architecture")
    for key in ("trial 3", "trial 5", "baseline se"):
        gain, sd, _ = _paired(key)
        row = frame.loc[key]
        assert _power(row["detectable_gain"], sd, 4, 3) == pytest.approx(0.8, abs=1e-6)
        if key == "trial 5" and abs(gain) < 1e-12:
            continue
        needed = next(n for n in range(2, 10_000) if _power(abs(gain), sd, n, 3) >= 0.8)
        assert row["seeds_needed"] == needed
    line = power_line(frame.reset_index())
    smallest = frame["detectable_gain"].dropna()
    assert line.startswith("power (80%, Bonferroni-Holm at alpha 0.05): with 4 seeds a gain ")
    assert f"{100 * smallest.min():.2f} to {100 * smallest.max():.2f} points" in line
    best_gain = _paired("trial 3")[0]
    needed = int(frame.loc["trial 3", "seeds_needed"])
    assert (
        f"the best observed gain, {100 * best_gain:+.2f} points (trial 3), would need {needed} seeds"
        in line
    )


def test_power_line_when_nothing_gained_and_when_nothing_to_say():
    study = _confirm_study("holm", keys=("baseline none", "baseline se"))
    line = power_line(confirm_frame(study))
    assert line.endswith("; no architecture gained over none")
    assert power_line(pd.DataFrame({"architecture": ["baseline none"]})) == ""


def test_verdict_lines_name_the_best_gain_and_whether_it_beats_its_noise():
    frame = confirm_frame(_confirm_study("holm"))
    line = verdict(frame)
    row = frame.set_index("architecture").loc["trial 3"]
    assert line == (
        f"best gain over none: trial 3, {100 * row['gain_vs_none']:+.2f} points (95% CI "
        f"{100 * row['gain_vs_none_low']:+.2f} to {100 * row['gain_vs_none_high']:+.2f}, 4 seeds, "
        f"Holm p = {row['p_adjusted']:.3g}): larger than its noise"
    )
    tie = confirm_frame(_confirm_study("holm", keys=("baseline none", "trial 5", "baseline se")))
    assert verdict(tie).startswith("best gain over none: trial 5, ")
    assert verdict(tie).endswith(
        "within its noise, no architecture is confirmed better than none at this budget"
    )
    pooled = verdict(confirm_frame(_confirm_study("dunnett")))
    assert ", 4 seeds, Dunnett p = " in pooled


def test_no_verdict_without_none_or_before_two_repeats():
    without_none = confirm_frame(_confirm_study("holm", keys=("trial 3", "trial 5")))
    assert verdict(without_none) == (
        "no verdict: the confirmation has no repeats of 'none' to compare with"
    )
    one_repeat = confirm_frame(_confirm_study("holm", repeats=1))
    assert verdict(one_repeat) == "no verdict yet: fewer than two complete repeats per architecture"


def test_search_values_and_supernet_estimates_come_from_the_source_trial():
    searched = optuna.create_study(directions=["maximize", "minimize"])
    for number in range(6):
        attrs = {schema.EVALUATED_BY.key: "supernet"} if number == 3 else {}
        searched.add_trial(
            create_trial(
                state=TrialState.COMPLETE, values=[0.5 + number / 100, 1.0], user_attrs=attrs
            )
        )
    frame = confirm_frame(_confirm_study("holm"), searched).set_index("architecture")
    assert frame.loc["trial 3", "search_val_acc"] == pytest.approx(0.53)
    assert frame.loc["trial 3", "search_estimate"] == "supernet"
    assert frame.loc["trial 5", "search_val_acc"] == pytest.approx(0.55)
    assert frame.loc["trial 5", "search_estimate"] == "single run"
    assert math.isnan(frame.loc["baseline none", "search_val_acc"])


def _estimates(search: list[float], stand_alone: list[float], by: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {"search_val_acc": search, "val_acc_mean": stand_alone, "search_estimate": by}
    )


def test_supernet_agreement_ranks_only_supernet_estimates_with_both_values():
    frame = _estimates(
        [0.1, 0.2, 0.3, 0.4, 0.9, math.nan, 0.5],
        [0.5, 0.6, 0.8, 0.7, 0.1, 0.9, math.nan],
        ["supernet"] * 4 + ["single run", "supernet", "supernet"],
    )
    corr = supernet_agreement(frame)
    expected = scipy.stats.kendalltau([0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.8, 0.7]).statistic
    rho = scipy.stats.spearmanr([0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.8, 0.7]).statistic
    assert corr.n == 4
    assert corr.kendall_tau == pytest.approx(expected) and expected == pytest.approx(4 / 6)
    assert corr.spearman_rho == pytest.approx(rho)
    line = verdict(frame.assign(architecture=[f"trial {i}" for i in range(7)]))
    assert "; supernet vs stand-alone ranking over 4 architectures: Kendall tau +0.67" in line


@pytest.mark.parametrize(
    ("frame", "why"),
    [
        (pd.DataFrame(), "empty"),
        (pd.DataFrame({"val_acc_mean": [0.1, 0.2, 0.3]}), "a study that predates estimates"),
        (_estimates([0.1, 0.2], [0.3, 0.4], ["supernet"] * 2), "two pairs"),
        (_estimates([0.1, 0.2, 0.3], [0.5, 0.5, 0.5], ["supernet"] * 3), "no order"),
        (_estimates([0.1, 0.2, 0.3], [0.3, 0.4, 0.5], ["single run"] * 3), "no supernet"),
    ],
)
def test_no_supernet_agreement_where_nothing_can_be_ranked(frame, why):
    assert supernet_agreement(frame) is None, why


def test_too_few_supernet_estimates_are_said_to_be_so():
    frame = _estimates([0.1, 0.2], [0.3, 0.4], ["supernet"] * 2).assign(
        architecture=["trial 1", "trial 2"]
    )
    assert verdict(frame).startswith("no verdict: the confirmation has no repeats of 'none'")
    assert "; supernet vs stand-alone ranking: too few confirmed architectures" in verdict(frame)
    single = frame.assign(search_estimate="single run")
    assert "supernet" not in verdict(single)


def test_median_repeat_is_the_lower_median_by_value_then_trial_number():
    study = optuna.create_study(directions=["maximize", "minimize"])
    for repeat, value in enumerate([0.7, 0.9, 0.6, 0.8]):
        study.add_trial(
            create_trial(values=[value, 1.0], user_attrs=_attrs("baseline none", repeat))
        )
    assert median_repeat(study, "baseline none").number == 0  # 0.7 of 0.6, 0.7, 0.8, 0.9
    for repeat, value in ((4, 0.8), (5, 0.7)):  # ties: 0.6, 0.7, 0.7, 0.8, 0.8, 0.9
        study.add_trial(
            create_trial(values=[value, 1.0], user_attrs=_attrs("baseline none", repeat))
        )
    assert median_repeat(study, "baseline none").number == 5  # (0.7, trial 5) is third
    study.add_trial(create_trial(values=[0.95, 1.0], user_attrs=_attrs("baseline none", 6)))
    assert median_repeat(study, "baseline none").number == 3  # the middle of 7: (0.8, trial 3)


def test_sequential_looks_decide_early_and_queue_only_the_undecided():
    study = _confirm_study("dunnett", looks=[2, 4], repeats=2)
    state = verdicts(study)
    assert (state.looks, state.reached, state.alpha) == ([2, 4], 1, 0.025)
    assert state.decided == {"trial 3": 2, "baseline se": 2}
    assert state.sign == {"trial 3": 1.0, "baseline se": -1.0}
    assert all(p < 0.05 for k, p in state.p_adjusted.items() if k in state.decided)
    assert state.p_adjusted["trial 5"] >= 0.05
    missing, why = next_round(study)
    assert why == ""
    assert sorted(missing) == [
        (2, "baseline none"),
        (2, "trial 5"),
        (3, "baseline none"),
        (3, "trial 5"),
    ]
    for repeat, key in missing:
        study.enqueue_trial({}, user_attrs=_attrs(key, repeat))
    assert next_round(study) == (
        [],
        "runs of the look at 4 seeds are unfinished (held by another worker?); run the same "
        "command again when they are done",
    )


def test_a_sequential_design_stops_when_decided_or_when_the_budget_is_spent():
    decided = _confirm_study(
        "dunnett", looks=[2, 4], repeats=2, keys=("baseline none", "trial 3", "baseline se")
    )
    assert next_round(decided) == ([], "every verdict against none is decided at 2 seeds")
    spent = _confirm_study("dunnett", looks=[2, 4], repeats=4)
    assert verdicts(spent).reached == 2
    assert next_round(spent) == ([], "the budget of 4 seeds is spent")
    fixed = _confirm_study("dunnett", repeats=4)
    assert next_round(fixed) == ([], "")
    assert next_round(_confirm_study("dunnett", keys=("trial 3",))) == (
        [],
        "no run of none to compare with",
    )


def test_a_run_that_gave_up_is_described_in_one_line():
    from nas.confirm.runs import MAX_ATTEMPTS, QUOTED_REASON, GaveUp, gave_up_message

    short = GaveUp(2, "trial 7", 5, "  CUDA out of memory\n  at line 3  ")
    assert short.describe() == "trial 7 repeat 2 (5 failed, the last: CUDA out of memory)"
    assert GaveUp(0, "baseline none", 5, "").describe() == (
        "baseline none repeat 0 (5 failed, the last: no reason recorded)"
    )
    exact = GaveUp(1, "trial 3", 6, "x" * QUOTED_REASON).describe()
    assert exact == f"trial 3 repeat 1 (6 failed, the last: {'x' * QUOTED_REASON})"
    long = GaveUp(1, "trial 3", 6, "y" * (QUOTED_REASON + 1)).describe()
    assert long == f"trial 3 repeat 1 (6 failed, the last: {'y' * (QUOTED_REASON - 3)}...)"
    assert gave_up_message("s-confirm", [short, GaveUp(0, "trial 9", 5, "disk full")]) == (
        f"2 run(s) of 's-confirm' gave up after {MAX_ATTEMPTS} failed trials: trial 7 repeat 2 "
        "(5 failed, the last: CUDA out of memory); trial 9 repeat 0 (5 failed, the last: disk "
        "full); the confirmation cannot complete: fix the cause, then confirm again under "
        "another name (--name NEW; the trials stored here are kept)"
    )


def test_the_seed_options_a_plan_was_made_with():
    from nas.confirm.planning import _seeds_option

    assert _seeds_option({"top": 2, "seeds": [1, 2, 3]}) == "--top 2 --seeds 3"
    sequential = {"top": 1, "seeds": list(range(10)), "looks": [3, 6, 10]}
    assert _seeds_option(sequential) == "--top 1 --seeds 3 --max-seeds 10"


def test_queued_runs_give_back_each_architecture_as_it_was_planned():
    from nas.confirm.planning import Planned
    from nas.confirm.rounds import _planned_from_runs

    study = optuna.create_study(directions=["maximize", "minimize"])
    study.enqueue_trial({"stage1.block": "se"}, user_attrs=_attrs("trial 3", 0))
    study.enqueue_trial({"stage1.block": "none"}, user_attrs=_attrs("baseline none", 0))
    study.enqueue_trial({"stage1.block": "se"}, user_attrs=_attrs("trial 3", 1))
    study.add_trial(create_trial(values=[0.5, 1.0]))  # no repeat: not a planned run
    assert _planned_from_runs(study) == {
        "trial 3": Planned("trial 3", {"stage1.block": "se"}, 3, None),
        "baseline none": Planned("baseline none", {"stage1.block": "none"}, None, "none"),
    }


def test_before_its_look_is_reached_the_runs_so_far_decide_at_their_seeds():
    """Three of the four planned seeds complete: no look is reached, so the verdicts stand on
    the runs there are, and say so (decided at 3 seeds)."""
    frame = confirm_frame(_confirm_study("holm", repeats=3)).set_index("architecture")
    assert frame.loc["trial 3", "vs_none"] == "better" and frame.loc["trial 3", "decided_at"] == 3
    state = verdicts(_confirm_study("holm", repeats=3))
    assert state.reached == 0


def test_a_look_is_reached_only_when_every_waiting_run_of_it_has_finished():
    """Repeat 1 of both complete, repeat 0 of one still queued: the look at 2 seeds waits."""
    for unfinished in ("baseline none", "trial 3"):
        study = _confirm_study("holm", looks=[2, 4], repeats=0, keys=("baseline none", "trial 3"))
        for key in ("baseline none", "trial 3"):
            if key == unfinished:
                study.enqueue_trial({}, user_attrs=_attrs(key, 0))
            else:
                _add_run(study, key, 0)
            _add_run(study, key, 1)
        assert verdicts(study).reached == 0, unfinished
        _add_run(study, unfinished, 0)  # a complete run of the same repeat
        study.tell(study.ask(), state=TrialState.FAIL)  # the queued one ends too
        assert verdicts(study).reached == 1, unfinished


def test_a_plan_stored_without_seeds_is_judged_on_every_run_it_has():
    """An older plan lists no seeds: one look of all the repeats there are."""
    study = _confirm_study("holm")
    plan = schema.confirm_plan(study)
    study.set_user_attr(schema.CONFIRM, {k: v for k, v in plan.items() if k != "seeds"})
    state = verdicts(study)
    assert state.looks == [4] and state.reached == 1


def test_a_sequential_p_is_the_smallest_over_the_looks_times_their_number():
    """trial 5 ties none: its p at 2 seeds is smaller than at 4, and the smaller one counts."""
    from nas.stats import many_to_one

    state = verdicts(_confirm_study("holm", looks=[2, 4]))
    assert state.reached == 2 and state.comparison == "holm"
    p = {}
    for seeds in (2, 4):
        look = many_to_one(state.values[:, :seeds], "holm", state.alpha)
        for i, value in zip(look.rows, look.p_adjusted, strict=True):
            p.setdefault(state.keys[i], []).append(float(value))
    assert p["trial 5"][0] < p["trial 5"][1]
    for key, values in p.items():
        assert state.p_adjusted[key] == pytest.approx(min(1.0, 2 * min(values)), rel=1e-12)
