"""nas.stats against scipy and hand-worked references, and every refusal it makes."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.stats

from nas.stats import (
    Interval,
    binomial_se,
    difference_se,
    holm_adjust,
    mean_interval,
    paired_comparison,
    rank_correlation,
)

# --- binomial_se / difference_se ---------------------------------------------------------------


@pytest.mark.parametrize(("p", "n"), [(0.5, 100), (0.9, 10_000), (0.1, 1), (0.73, 50_000)])
def test_binomial_se_matches_formula(p, n):
    assert binomial_se(p, n) == pytest.approx(math.sqrt(p * (1 - p) / n), rel=1e-15)


def test_binomial_se_worked_value():
    assert binomial_se(0.45, 750) == pytest.approx(0.018166, abs=5e-6)


@pytest.mark.parametrize("p", [0.0, 1.0])
def test_binomial_se_is_zero_at_the_bounds(p):
    assert binomial_se(p, 100) == 0.0


def test_binomial_se_accepts_numpy_ints():
    assert binomial_se(0.5, np.int64(4)) == pytest.approx(0.25)


@pytest.mark.parametrize("n", [0, -3, True, 1.5, 100.0])
def test_binomial_se_refuses_bad_n(n):
    with pytest.raises(ValueError, match=r"\bn must be an integer >= 1"):
        binomial_se(0.5, n)


@pytest.mark.parametrize("p", [-0.01, 1.01, math.nan, math.inf])
def test_binomial_se_refuses_bad_accuracy(p):
    with pytest.raises(ValueError, match="accuracy must be a finite number in"):
        binomial_se(p, 100)


def test_difference_se():
    assert difference_se(0.03, 0.04) == pytest.approx(0.05)
    assert difference_se(0.0, 0.02) == pytest.approx(0.02)


# --- mean_interval -----------------------------------------------------------------------------


@pytest.mark.parametrize("confidence", [0.5, 0.9, 0.95, 0.99])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mean_interval_matches_hand_computation_and_scipy(seed, confidence):
    values = np.random.default_rng(seed).normal(0.8, 0.02, size=3 + seed)
    result = mean_interval(values.tolist(), confidence)

    n = len(values)
    mean = math.fsum(values) / n
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = scipy.stats.t.ppf((1 + confidence) / 2, n - 1) * sd / math.sqrt(n)
    assert result.n == n
    assert result.confidence == confidence
    assert result.mean == pytest.approx(mean, rel=1e-12)
    assert result.sd == pytest.approx(sd, rel=1e-10)
    assert result.low == pytest.approx(mean - half, rel=1e-12)
    assert result.high == pytest.approx(mean + half, rel=1e-12)
    assert result.half_width == pytest.approx(half, rel=1e-10)

    low, high = scipy.stats.t.interval(confidence, n - 1, loc=mean, scale=scipy.stats.sem(values))
    assert (result.low, result.high) == pytest.approx((low, high), rel=1e-12)


def test_mean_interval_widens_with_confidence():
    values = [0.81, 0.79, 0.83, 0.80]
    widths = [mean_interval(values, c).half_width for c in (0.5, 0.9, 0.99)]
    assert widths == sorted(widths)
    assert widths[0] > 0


def test_mean_interval_with_zero_spread_is_a_point():
    result = mean_interval([0.1, 0.1, 0.1])
    assert result == Interval(mean=0.1, sd=0.0, n=3, low=0.1, high=0.1, confidence=0.95)
    assert result.half_width == 0.0


def test_interval_to_dict_is_plain_json():
    result = mean_interval(np.array([0.5, 0.7, 0.6]), 0.9)
    data = result.to_dict()
    assert set(data) == {"mean", "sd", "n", "low", "high", "confidence"}
    assert type(data["n"]) is int
    assert all(type(data[k]) is float for k in data if k != "n")
    assert json.loads(json.dumps(data)) == data


@pytest.mark.parametrize("values", [[0.8], []])
def test_mean_interval_needs_two_seeds(values):
    with pytest.raises(ValueError, match=r"at least 2 values \(seeds\)") as info:
        mean_interval(values)
    assert "no spread to estimate" in str(info.value)


@pytest.mark.parametrize("confidence", [0.0, 1.0, -0.5, 1.5, math.nan])
def test_mean_interval_refuses_bad_confidence(confidence):
    with pytest.raises(ValueError, match=r"confidence must be in \(0, 1\)"):
        mean_interval([0.1, 0.2], confidence)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_mean_interval_refuses_non_finite_values(bad):
    with pytest.raises(ValueError, match="values contains NaN or infinite"):
        mean_interval([0.1, bad, 0.2])


def test_mean_interval_refuses_nested_values():
    with pytest.raises(ValueError, match="1-D"):
        mean_interval([[0.1, 0.2], [0.3, 0.4]])


# --- paired_comparison -------------------------------------------------------------------------


@pytest.mark.parametrize("confidence", [0.9, 0.95])
@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5])
def test_paired_comparison_matches_ttest_rel(seed, confidence):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 12))
    b = rng.normal(0.8, 0.02, size=n)
    a = b + rng.normal(0.005 * (seed - 2), 0.01, size=n)
    result = paired_comparison(a.tolist(), b.tolist(), confidence)

    reference = scipy.stats.ttest_rel(a, b)
    ci = reference.confidence_interval(confidence)
    assert result.t == pytest.approx(reference.statistic, rel=1e-9)
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-9, abs=1e-300)
    assert result.difference.mean == pytest.approx(np.mean(a - b), rel=1e-12)
    assert result.difference.n == n
    assert (result.difference.low, result.difference.high) == pytest.approx(
        (ci.low, ci.high), rel=1e-9
    )
    assert result.significant() == (reference.pvalue < 0.05)
    assert result.significant(alpha=1.0)


def test_paired_comparison_identical_runs_are_not_significant():
    result = paired_comparison([0.8, 0.7, 0.9], [0.8, 0.7, 0.9])
    assert math.isnan(result.t)
    assert result.p_value == 1.0
    assert not result.significant()
    assert result.difference.low == result.difference.high == 0.0


def test_paired_comparison_exactly_repeated_difference_is_certain():
    result = paired_comparison([0.75, 0.5, 1.0], [0.5, 0.25, 0.75])
    assert math.isnan(result.t)
    assert result.p_value == 0.0
    assert result.significant()
    assert result.difference.mean == 0.25
    assert result.difference.low == result.difference.high == 0.25


def test_paired_comparison_to_dict():
    data = paired_comparison([0.8, 0.82, 0.85], [0.78, 0.8, 0.8], 0.9).to_dict()
    assert list(data) == ["mean", "sd", "n", "low", "high", "confidence", "t", "p_value"]
    assert data["confidence"] == 0.9
    assert json.loads(json.dumps(data)) == data


def test_paired_comparison_refuses_mismatched_lengths():
    with pytest.raises(ValueError, match=r"len\(a\) = 3, len\(b\) = 2"):
        paired_comparison([0.1, 0.2, 0.3], [0.1, 0.2])


def test_paired_comparison_needs_two_seeds():
    with pytest.raises(ValueError, match=r"at least 2 values \(seeds\)"):
        paired_comparison([0.8], [0.7])


@pytest.mark.parametrize(
    ("a", "b", "name"), [([0.1, math.nan], [0.1, 0.2], "a"), ([0.1, 0.2], [math.inf, 0.2], "b")]
)
def test_paired_comparison_refuses_non_finite(a, b, name):
    with pytest.raises(ValueError, match=f"^{name} contains NaN or infinite"):
        paired_comparison(a, b)


def test_paired_comparison_refuses_bad_confidence():
    with pytest.raises(ValueError, match="confidence must be in"):
        paired_comparison([0.1, 0.2], [0.2, 0.4], confidence=95)


# --- holm_adjust -------------------------------------------------------------------------------


def test_holm_adjust_worked_example():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, max(0.06, 0.04*1) = 0.06
    assert holm_adjust([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_holm_adjust_caps_at_one_and_handles_trivial_inputs():
    assert holm_adjust([0.5, 0.6, 0.01]) == pytest.approx([1.0, 1.0, 0.03])
    assert holm_adjust([0.2]) == [0.2]
    assert holm_adjust([]) == []


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_holm_adjust_is_monotone_and_never_below_raw(seed):
    p = np.random.default_rng(seed).uniform(0, 0.2, size=12)
    adjusted = np.array(holm_adjust(p.tolist()))
    order = np.argsort(p)
    assert (np.diff(adjusted[order]) >= 0).all()
    assert (adjusted >= p).all()
    assert (adjusted <= 1).all()
    assert adjusted[order[0]] == pytest.approx(12 * p[order[0]])


def test_holm_adjust_ties_share_a_value():
    assert holm_adjust([0.02, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])


@pytest.mark.parametrize("bad", [math.nan, -0.1, 1.5])
def test_holm_adjust_refuses_invalid_p_values(bad):
    with pytest.raises(ValueError, match="p_values must all be in"):
        holm_adjust([0.01, bad])


# --- rank_correlation --------------------------------------------------------------------------


def test_rank_correlation_perfect_and_reversed_order():
    x = [0.1, 0.3, 0.2, 0.5, 0.4]
    same = rank_correlation(x, [10 * v for v in x], n_boot=200)
    assert same.kendall_tau == pytest.approx(1.0)
    assert same.spearman_rho == pytest.approx(1.0)
    assert same.tau_low == pytest.approx(1.0) and same.rho_low == pytest.approx(1.0)

    reversed_ = rank_correlation(x, [-v for v in x], n_boot=200)
    assert reversed_.kendall_tau == pytest.approx(-1.0)
    assert reversed_.spearman_rho == pytest.approx(-1.0)
    assert reversed_.tau_high == pytest.approx(-1.0) and reversed_.rho_high == pytest.approx(-1.0)


@pytest.mark.parametrize("seed", [0, 1])
def test_rank_correlation_matches_scipy_and_contains_estimate(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=25)
    y = x + rng.normal(size=25)
    result = rank_correlation(x.tolist(), y.tolist(), n_boot=500, seed=seed)
    assert result.kendall_tau == pytest.approx(scipy.stats.kendalltau(x, y).statistic, rel=1e-12)
    assert result.spearman_rho == pytest.approx(scipy.stats.spearmanr(x, y).statistic, rel=1e-12)
    assert result.tau_low <= result.kendall_tau <= result.tau_high
    assert result.rho_low <= result.spearman_rho <= result.rho_high
    assert result.tau_low < result.tau_high and result.rho_low < result.rho_high
    assert (result.n, result.n_boot, result.confidence) == (25, 500, 0.95)


def test_rank_correlation_matches_a_reference_bootstrap_with_ties():
    """Ties on both sides make some resamples constant; those are dropped before the quantiles."""
    x = np.array([1.0, 1.0, 2.0, 2.0, 3.0])
    y = np.array([0.2, 0.1, 0.1, 0.4, 0.3])
    n_boot, confidence = 300, 0.9
    taus, rhos = [], []
    for index in np.random.default_rng(7).integers(0, len(x), size=(n_boot, len(x))):
        xs, ys = x[index], y[index]
        if np.ptp(xs) > 0 and np.ptp(ys) > 0:
            taus.append(scipy.stats.kendalltau(xs, ys).statistic)
            rhos.append(scipy.stats.spearmanr(xs, ys).statistic)
    assert len(taus) < n_boot  # some were dropped
    quantiles = [(1 - confidence) / 2, (1 + confidence) / 2]

    result = rank_correlation(x, y, n_boot=n_boot, confidence=confidence, seed=7)
    assert (result.tau_low, result.tau_high) == pytest.approx(np.quantile(taus, quantiles))
    assert (result.rho_low, result.rho_high) == pytest.approx(np.quantile(rhos, quantiles))


def test_rank_correlation_interval_is_nan_when_every_resample_is_dropped():
    seed = next(
        s for s in range(100) if np.ptp(np.random.default_rng(s).integers(0, 3, size=(1, 3))) == 0
    )
    result = rank_correlation([1.0, 2.0, 3.0], [3.0, 1.0, 2.0], n_boot=1, seed=seed)
    assert not math.isnan(result.kendall_tau)
    assert all(
        math.isnan(v) for v in (result.tau_low, result.tau_high, result.rho_low, result.rho_high)
    )


def test_rank_correlation_is_deterministic_in_seed():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=15), rng.normal(size=15)
    first = rank_correlation(x, y, n_boot=300, seed=11)
    assert rank_correlation(x, y, n_boot=300, seed=11) == first
    assert rank_correlation(x, y, n_boot=300, seed=12) != first


def test_rank_correlation_default_n_boot_and_to_dict():
    x = [0.1, 0.4, 0.2, 0.6, 0.5, 0.3]
    data = rank_correlation(x, [0.2, 0.5, 0.1, 0.7, 0.6, 0.2]).to_dict()
    assert data["n_boot"] == 2000 and data["n"] == 6
    assert set(data) == {
        "kendall_tau",
        "tau_low",
        "tau_high",
        "spearman_rho",
        "rho_low",
        "rho_high",
        "n",
        "n_boot",
        "confidence",
    }
    assert json.loads(json.dumps(data)) == data


def test_rank_correlation_needs_three_pairs():
    with pytest.raises(ValueError, match="at least 3 pairs, got 2"):
        rank_correlation([0.1, 0.2], [0.3, 0.4])


def test_rank_correlation_refuses_mismatched_lengths():
    with pytest.raises(ValueError, match=r"len\(x\) = 3, len\(y\) = 4"):
        rank_correlation([0.1, 0.2, 0.3], [0.1, 0.2, 0.3, 0.4])


def test_rank_correlation_refuses_nan():
    with pytest.raises(ValueError, match="y contains NaN"):
        rank_correlation([0.1, 0.2, 0.3], [0.1, math.nan, 0.3])


def test_rank_correlation_refuses_constant_input():
    with pytest.raises(ValueError, match="constant"):
        rank_correlation([0.1, 0.2, 0.3], [0.5, 0.5, 0.5])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"confidence": 1.0}, "confidence"), ({"n_boot": 0}, "n_boot"), ({"n_boot": True}, "n_boot")],
)
def test_rank_correlation_refuses_bad_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        rank_correlation([0.1, 0.2, 0.3], [0.3, 0.1, 0.2], **kwargs)
