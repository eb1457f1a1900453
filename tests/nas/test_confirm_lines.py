"""The lines ``nas confirm`` prints under its table, from hand-made frames with known values:
each branch's exact wording (which model, which test, what power), and the table file."""

import math

import pandas as pd

from nas.confirm import agreement_line, model_line, power_line, verdict, write_table
from nas.supernet_rankings import yardstick_line

NAN = math.nan


def _power_frame(detectable, gains, needed, comparison="dunnett", confidence=0.975, seeds=(4, 6)):
    rows = [{"architecture": "baseline none", "detectable_gain": NAN}]
    for i, (d, g, n, s) in enumerate(zip(detectable, gains, needed, seeds, strict=True)):
        rows.append(
            {
                "architecture": f"trial {i + 3}",
                "detectable_gain": d,
                "gain_confidence": confidence,
                "comparison": comparison,
                "seeds": s,
                "gain_vs_none": g,
                "seeds_needed": n,
            }
        )
    return pd.DataFrame(rows)


def test_power_line_with_dunnett_one_detectable_gain_and_a_gain_beyond_any_budget():
    frame = _power_frame([0.0312, 0.03124], [0.004, 0.001], [NAN, 40.0])
    assert power_line(frame) == (
        "power (80%, Dunnett at alpha 0.025): with 6 seeds a gain over none of 3.12 points or "
        "more would be detected; the best observed gain, +0.40 points (trial 3), would need "
        "more than 100000 seeds per architecture (an observed best gain overstates the true one)"
    )


def test_power_line_gives_a_range_of_detectable_gains_and_the_seeds_the_best_would_need():
    frame = _power_frame([0.0312, 0.03126], [0.001, 0.02], [900.0, 12.0], comparison="holm",
                         confidence=0.95)  # fmt: skip
    assert power_line(frame) == (
        "power (80%, Bonferroni-Holm at alpha 0.05): with 6 seeds a gain over none of 3.12 to "
        "3.13 points or more would be detected; the best observed gain, +2.00 points (trial 4), "
        "would need 12 seeds per architecture (an observed best gain overstates the true one)"
    )


def test_power_line_when_no_gain_can_be_detected_and_none_was_seen():
    frame = _power_frame([1.0, 1.2], [0.0, -0.01], [NAN, NAN])
    assert power_line(frame) == (
        "power (80%, Dunnett at alpha 0.025): with 6 seeds no gain over none (they are at most "
        "100 points) would be detected; no architecture gained over none"
    )
    assert power_line(pd.DataFrame({"architecture": ["baseline none"]})) == ""


def _model_frame(model, note=None, **extra):
    return pd.DataFrame([{"architecture": "baseline none", "model": model, "model_note": note,
                          **extra}])  # fmt: skip


def test_model_line_of_the_pooled_model_with_and_without_looks():
    frame = _model_frame("pooled", residual_sd=0.0123, residual_df=9, variance_p=0.4567)
    pooled = (
        "model: architecture + seed (two-way ANOVA, seeds as blocks), one residual sd of 1.23 "
        "points pooled over every run (df 9); gains vs none by Dunnett's many-to-one test with "
        "simultaneous intervals; means' intervals from the pooled spread over seeds "
        "(Satterthwaite df), on the logit scale. Assumes a seed shifts every architecture alike, "
        "one residual variance (Bartlett p = 0.46) and normal errors"
    )
    assert model_line(frame) == pooled
    assert model_line(frame, looks=[6]) == pooled  # one look: nothing sequential
    assert model_line(frame, looks=[3, 6, 9]) == pooled + (
        "; sequential: looks at 3, 6, 9 seeds, each at alpha 0.05/3 (Bonferroni over the "
        "planned looks), p adjusted over them"
    )


def test_model_line_of_per_architecture_intervals_says_why():
    line = model_line(_model_frame("per_row", note="variances differ: Bartlett p = 0.001"))
    assert line == (
        "model: per-architecture intervals (Student-t over its own seeds, logit scale) and "
        "Holm-adjusted paired t-tests against none (variances differ: Bartlett p = 0.001)"
    )
    assert model_line(_model_frame("per_row")).endswith("against none (--comparison holm)")
    assert model_line(_model_frame("")) == ""  # no model: too few repeats to fit one
    assert model_line(pd.DataFrame({"architecture": ["baseline none"]})) == ""
    assert model_line(pd.DataFrame()) == ""


def _verdict_frame(significant, **columns):
    none = {"architecture": "baseline none", "gain_vs_none": NAN, "seeds": 4}
    best = {
        "architecture": "trial 3",
        "gain_vs_none": 0.021,
        "gain_vs_none_low": 0.004,
        "gain_vs_none_high": 0.038,
        "seeds": 4,
        "p_holm": 0.0312,
        "significant": significant,
        **columns,
    }
    worse = {**best, "architecture": "trial 5", "gain_vs_none": -0.01}
    return pd.DataFrame([none, best, worse])


def test_a_table_of_an_earlier_release_reads_as_holm_at_95_percent():
    # confirm.csv written before comparison, gain_confidence and p_adjusted existed
    assert verdict(_verdict_frame(True)) == (
        "best gain over none: trial 3, +2.10 points (95% CI +0.40 to +3.80, 4 seeds, Holm p = "
        "0.0312): larger than its noise"
    )
    dunnett = _verdict_frame(False, comparison="dunnett", gain_confidence=0.975, p_adjusted=0.0612)
    assert verdict(dunnett) == (
        "best gain over none: trial 3, +2.10 points (97.5% CI +0.40 to +3.80, 4 seeds, Dunnett "
        "p = 0.0612): within its noise, no architecture is confirmed better than none at this "
        "budget"
    )


def test_no_verdict_without_none_or_without_two_repeats():
    assert verdict(pd.DataFrame()) == (
        "no verdict: the confirmation has no repeats of 'none' to compare with"
    )
    one_repeat = pd.DataFrame(
        [{"architecture": "baseline none", "gain_vs_none": NAN},
         {"architecture": "trial 3", "gain_vs_none": NAN}]
    )  # fmt: skip
    assert verdict(one_repeat) == "no verdict yet: fewer than two complete repeats per architecture"


def test_the_agreement_line_only_for_supernet_searches():
    trained = pd.DataFrame({"architecture": ["trial 3"], "search_estimate": ["trained"]})
    assert agreement_line(trained) == ""
    assert agreement_line(pd.DataFrame({"architecture": ["trial 3"]})) == ""
    assert agreement_line(pd.DataFrame()) == ""
    two = pd.DataFrame(
        {
            "architecture": ["trial 3", "trial 5"],
            "search_estimate": ["supernet", "supernet"],
            "search_val_acc": [0.5, 0.6],
            "val_acc_mean": [0.7, 0.8],
        }
    )
    assert agreement_line(two) == (
        "supernet vs stand-alone ranking: too few confirmed architectures with distinct "
        f"accuracies to rank (at least 3); {yardstick_line()}"
    )


def test_the_table_file_holds_the_frame_and_nothing_else(tmp_path):
    frame = pd.DataFrame({"architecture": ["baseline none", "trial 3"], "val_acc_mean": [0.8, 0.9]})
    path = write_table(frame, tmp_path / "confirm.csv")
    assert path == tmp_path / "confirm.csv"
    read = pd.read_csv(path)
    assert list(read.columns) == ["architecture", "val_acc_mean"]  # no index column
    pd.testing.assert_frame_equal(read, frame)
    assert [p.name for p in tmp_path.iterdir()] == ["confirm.csv"]  # no partial file left
