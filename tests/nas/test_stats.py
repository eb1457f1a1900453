"""nas.stats against scipy and hand-worked references, and every refusal it makes."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
import scipy.integrate
import scipy.linalg
import scipy.special
import scipy.stats

from nas.stats import (
    CRITICAL_NOISE,
    Interval,
    binomial_se,
    block_fit,
    bonferroni_design,
    correlation,
    detectable_effect,
    difference_se,
    dunnett_critical,
    dunnett_design,
    dunnett_pvalues,
    equal_variances_p,
    equicorrelated,
    holm_adjust,
    logit_interval,
    many_to_one,
    mean_interval,
    mean_intervals,
    paired_comparison,
    rank_correlation,
    seeds_for_power,
    t_test_power,
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


def test_holm_adjust_caps_a_scaled_p_value_above_one():
    """2 x 0.6 = 1.2 is capped at 1; the running maximum keeps the larger one at 1 too."""
    assert holm_adjust([0.6, 0.7]) == [1.0, 1.0]


def test_holm_adjust_takes_the_bounds_and_names_bad_input():
    assert holm_adjust([0.0, 1.0]) == [0.0, 1.0]
    with pytest.raises(ValueError) as refused:
        holm_adjust([[0.1, 0.2]])
    assert str(refused.value) == "p_values must be a 1-D sequence, got shape (1, 2)."
    with pytest.raises(ValueError) as refused:
        holm_adjust([0.1, 1.5])
    assert str(refused.value) == "p_values must all be in [0, 1] (no NaN), got [0.1, 1.5]."


def test_a_p_value_equal_to_alpha_is_not_significant():
    import dataclasses

    comparison = paired_comparison([0.9, 0.8, 0.85], [0.7, 0.75, 0.6])
    assert not dataclasses.replace(comparison, p_value=0.05).significant(0.05)
    assert dataclasses.replace(comparison, p_value=0.0499).significant(0.05)


def test_logit_interval_of_a_standard_error_of_one():
    """The formula by hand at mean 0.5 (logit 0, derivative 4): expit(+-4 t se)."""
    half = scipy.stats.t.ppf(0.975, 10) * 1.0
    low, high = logit_interval(0.5, 1.0, 10, 0.95)
    assert (low, high) == pytest.approx(
        (scipy.special.expit(-4 * half), scipy.special.expit(4 * half))
    )
    assert logit_interval(0.8, 0.0, 10) == (0.8, 0.8)


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


# --- pooled, paired statistics of an architectures x seeds table --------------------------------

#: ``nas confirm studies/quickstart.toml --top 3 --seeds 5``: correct validation images (of 719)
#: of none, se, eca, gct, cbam, coord, simam and three searched architectures, by seed.
QUICKSTART = (
    np.array(
        [
            [699, 675, 681, 689, 687],
            [684, 678, 689, 685, 681],
            [680, 676, 698, 683, 682],
            [695, 677, 690, 683, 692],
            [670, 662, 653, 677, 670],
            [643, 650, 623, 656, 656],
            [687, 678, 685, 693, 683],
            [682, 689, 684, 685, 692],
            [697, 686, 690, 683, 694],
            [692, 675, 701, 692, 690],
        ]
    )
    / 719
)


def _anova(y: np.ndarray) -> dict[str, float]:
    """The randomized complete block design by its textbook formulas (float64): residual mean
    square, seed (block) mean square and the Satterthwaite df of MS_B + (K-1) MSE."""
    k, s = y.shape
    residual = y - y.mean(1, keepdims=True) - y.mean(0, keepdims=True) + y.mean()
    mse = (residual**2).sum() / ((k - 1) * (s - 1))
    msb = k * ((y.mean(0) - y.mean()) ** 2).sum() / (s - 1)
    total = (msb + (k - 1) * mse) / k
    nu = (msb + (k - 1) * mse) ** 2 / (
        msb**2 / (s - 1) + ((k - 1) * mse) ** 2 / ((k - 1) * (s - 1))
    )
    return {"mse": mse, "total": total, "nu": nu, "residual": residual}


@pytest.mark.parametrize("shape", [(10, 5), (2, 4), (4, 2), (3, 7)])
def test_block_fit_of_a_complete_table_is_the_two_way_anova(shape):
    y = QUICKSTART if shape == (10, 5) else np.random.default_rng(7).normal(0.8, 0.02, shape)
    fit = block_fit(y)
    k, s = y.shape
    ref = _anova(y)
    assert fit.residual_df == (k - 1) * (s - 1)
    assert fit.residual_var == pytest.approx(ref["mse"], rel=1e-10)
    assert fit.gains == pytest.approx(y[1:].mean(1) - y[0].mean(), abs=1e-12)
    expected_cov = (np.ones((k - 1, k - 1)) + np.eye(k - 1)) / s  # 2/S, 1/S: correlation 1/2
    assert fit.gain_cov == pytest.approx(expected_cov, abs=1e-12)
    assert correlation(fit.gain_cov) == pytest.approx(equicorrelated(k - 1), abs=1e-12)
    assert fit.total_var == pytest.approx(ref["total"], rel=1e-10)
    assert fit.total_var == pytest.approx(y.var(axis=1, ddof=1).mean(), rel=1e-10)
    assert fit.total_df == pytest.approx(ref["nu"], rel=1e-10)
    assert k * (s - 1) + 1e-9 >= fit.total_df >= s - 1 - 1e-9
    for got, want in zip(fit.residuals, ref["residual"], strict=True):
        assert got == pytest.approx(want, abs=1e-12)


def test_block_fit_with_gaps_is_least_squares_of_the_additive_model():
    y = QUICKSTART.copy()
    y[3:, 3:] = np.nan  # a sequential design: later seeds for none, se and eca only
    y[1, 4] = np.nan  # and one failed run
    y[5, 1] = np.nan
    fit = block_fit(y)
    # Reference: an intercept and sum-to-zero (deviation) coding, solved by scipy's lstsq.
    rows, cols = np.nonzero(~np.isnan(y))
    k, b = y.shape
    x = np.zeros((len(rows), k + b - 1))
    x[:, 0] = 1.0
    for n, (i, j) in enumerate(zip(rows, cols, strict=True)):
        x[n, 1:k] = -1.0 if i == k - 1 else np.eye(k)[i, : k - 1]
        x[n, k:] = -1.0 if j == b - 1 else np.eye(b)[j, : b - 1]
    coef, sse, rank, _ = scipy.linalg.lstsq(x, y[rows, cols])
    assert rank == k + b - 1
    assert fit.residual_df == len(rows) - rank
    assert fit.residual_var == pytest.approx(sse / (len(rows) - rank), rel=1e-9)
    effects = np.append(coef[1:k], -coef[1:k].sum())
    assert fit.gains == pytest.approx(effects[1:] - effects[0], abs=1e-10)
    cov = np.linalg.inv(x.T @ x)[1:k, 1:k]
    full = np.vstack([np.eye(k - 1), -np.ones(k - 1)])  # effect_i, i < k, and effect_k
    contrast = full[1:] - full[0]
    assert fit.gain_cov == pytest.approx(contrast @ cov @ contrast.T, abs=1e-10)
    assert list(fit.counts) == list((~np.isnan(y)).sum(axis=1))


def test_block_fit_refusals():
    with pytest.raises(ValueError, match="2-D table of >= 2 rows"):
        block_fit([[0.5, 0.6]])
    with pytest.raises(ValueError, match="needs a run on a seed the reference ran"):
        block_fit([[0.5, 0.6, np.nan], [np.nan, np.nan, 0.7]])
    with pytest.raises(ValueError, match="no residual degree of freedom"):
        block_fit([[0.5], [0.6]])


def _one_way_equivalent(t: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Three-image groups whose one-way Dunnett statistics are ``t`` with pooled SD 1: the
    control is (-1, 0, 1), group i is t_i sqrt(2/3) + (-1, 0, 1)."""
    pattern = np.array([-1.0, 0.0, 1.0])
    return [ti * math.sqrt(2 / 3) + pattern for ti in t], pattern


def test_pooled_dunnett_of_a_complete_table_matches_scipy_dunnett():
    # 3 architectures x 4 seeds: df (3-1)(4-1) = 6 = that of three groups of 3 (3 x 2), both
    # with correlation 1/2, so scipy.stats.dunnett on the equivalent groups is the reference.
    y = QUICKSTART[[0, 4, 8], :4]
    result = many_to_one(y, "dunnett")
    ref = _anova(y)
    t = (y[1:].mean(1) - y[0].mean()) / np.sqrt(2 * ref["mse"] / 4)
    samples, control = _one_way_equivalent(t)
    expected = scipy.stats.dunnett(*samples, control=control, rng=0)
    assert expected.statistic == pytest.approx(t, rel=1e-12)
    assert result.model == "pooled" and result.rows == [1, 2]
    assert result.residual_df == 6
    assert result.p_adjusted == pytest.approx(expected.pvalue, abs=2e-4)
    assert result.p_value == pytest.approx(2 * scipy.stats.t.sf(np.abs(t), 6), rel=1e-9)
    # Simultaneous intervals: the critical value of scipy's intervals, times the gain's s.e.
    ci = expected.confidence_interval(0.95)
    critical = (ci.high[0] - ci.low[0]) / 2 / math.sqrt(2 / 3)
    half = critical * np.sqrt(2 * ref["mse"] / 4)
    assert result.high - result.gain == pytest.approx([half, half], rel=1e-3)
    assert result.gain - result.low == pytest.approx([half, half], rel=1e-3)
    assert dunnett_critical(6, equicorrelated(2), 0.05) == pytest.approx(critical, rel=1e-3)


@pytest.mark.parametrize("sizes", [(4, 4, 4, 4), (6, 3, 5, 4)])
def test_dunnett_pvalues_match_scipy_dunnett(sizes):
    rng = np.random.default_rng(3)
    control, *samples = [rng.normal(0.5 * i, 1.0, n) for i, n in enumerate(sizes)]
    expected = scipy.stats.dunnett(*samples, control=control, rng=1)
    n = np.array(sizes[1:], dtype=float)
    rho = 1 / np.sqrt(np.outer(sizes[0] / n + 1, sizes[0] / n + 1))
    np.fill_diagonal(rho, 1.0)
    got = dunnett_pvalues(expected.statistic, sum(sizes) - len(sizes), rho)
    assert got == pytest.approx(expected.pvalue, abs=2e-4)
    assert (got > 0).all() and (got < 1).all()


def test_dunnett_of_one_comparison_is_the_paired_t_test():
    # K = 2: the pooled model is the paired t-test, exactly.
    a, b = QUICKSTART[8], QUICKSTART[0]
    result = many_to_one(np.vstack([b, a]), "dunnett")
    expected = scipy.stats.ttest_rel(a, b)
    interval = expected.confidence_interval(0.95)
    assert result.model == "pooled" and result.residual_df == 4
    assert result.p_adjusted[0] == pytest.approx(expected.pvalue, rel=1e-12)
    assert result.p_value[0] == pytest.approx(expected.pvalue, rel=1e-12)
    assert (result.low[0], result.high[0]) == pytest.approx((interval.low, interval.high))
    assert result.sd_diff[0] == pytest.approx(np.std(a - b, ddof=1), rel=1e-12)
    assert result.variance_p == 1.0  # two rows' residuals are mirror images


def test_the_pooled_analysis_of_the_quickstart_repeats():
    result = many_to_one(QUICKSTART, "dunnett")
    ref = _anova(QUICKSTART)
    se = np.sqrt(2 * ref["mse"] / 5)
    t = (QUICKSTART[1:].mean(1) - QUICKSTART[0].mean()) / se
    assert result.model == "pooled" and result.residual_df == 36
    assert result.residual_sd == pytest.approx(math.sqrt(ref["mse"]))
    assert result.variance_p == pytest.approx(scipy.stats.bartlett(*ref["residual"][:]).pvalue)
    assert result.p_adjusted == pytest.approx(dunnett_pvalues(t, 36, equicorrelated(9)), abs=1e-12)
    # cbam and coord everywhere are worse than none; nothing else is told apart
    assert list(np.flatnonzero(result.p_adjusted < 0.05) + 1) == [4, 5]
    holm = many_to_one(QUICKSTART, "holm")
    assert holm.model == "per-row" and holm.note == ""
    raw = [scipy.stats.ttest_rel(row, QUICKSTART[0]).pvalue for row in QUICKSTART[1:]]
    assert holm.p_adjusted == pytest.approx(holm_adjust(raw), rel=1e-12)


def test_clearly_unequal_variances_fall_back_to_per_row_holm():
    rng = np.random.default_rng(0)
    y = 0.8 + rng.normal(0, 0.002, (4, 10))
    y[3] += rng.normal(0, 0.05, 10)  # one architecture far noisier than the rest
    fit = block_fit(y)
    bartlett = scipy.stats.bartlett(*fit.residuals).pvalue
    assert bartlett < 0.01
    assert equal_variances_p(fit.residuals) == pytest.approx(bartlett)
    result = many_to_one(y, "dunnett")
    assert result.model == "per-row" and result.method == "holm"
    assert "clearly unequal (Bartlett p" in result.note
    raw = [scipy.stats.ttest_rel(row, y[0]).pvalue for row in y[1:]]
    assert result.p_adjusted == pytest.approx(holm_adjust(raw), rel=1e-12)
    intervals = [scipy.stats.ttest_rel(row, y[0]).confidence_interval(0.95) for row in y[1:]]
    assert result.low == pytest.approx([c.low for c in intervals])
    assert result.high == pytest.approx([c.high for c in intervals])


def test_equal_variances_p_edge_cases():
    assert equal_variances_p([[1.0, 2.0]]) == 1.0  # one group: nothing to compare
    assert equal_variances_p([[1.0, 1.0], [2.0, 2.0]]) == 1.0  # nothing varies
    assert equal_variances_p([[1.0, 1.0], [2.0, 3.0]]) == 1.0  # a constant group is left out
    with_constant = [[1.0, 2.0, 4.0], [5.0, 5.0, 5.0], [0.0, 0.5, 0.2]]
    expected = scipy.stats.bartlett(with_constant[0], with_constant[2]).pvalue
    assert equal_variances_p(with_constant) == pytest.approx(expected)
    groups = [[1.0, 2.0, 4.0], [0.0, 0.5, 0.2], [3.0, 3.3, 2.0]]
    assert equal_variances_p(groups) == pytest.approx(scipy.stats.bartlett(*groups).pvalue)


def test_pooled_intervals_are_narrower_than_per_row_at_two_seeds():
    y = QUICKSTART[:, :2]
    pooled, per_row = many_to_one(y, "dunnett"), many_to_one(y, "holm")
    assert pooled.model == "pooled" and pooled.residual_df == 9
    assert ((pooled.high - pooled.low) < (per_row.high - per_row.low)).all()
    p_low, p_high = mean_intervals(y, pooled=True)
    r_low, r_high = mean_intervals(y, pooled=False)
    assert ((p_high - p_low) < (r_high - r_low)).all()
    assert (r_low >= 0).all() and (r_high <= 1).all()


def test_mean_intervals_are_logit_intervals_of_the_pooled_or_own_spread():
    y = QUICKSTART[:, :3]
    fit = block_fit(y)
    low, high = mean_intervals(y, pooled=True)
    for i, row in enumerate(y):
        se = math.sqrt(fit.total_var / 3)
        assert (low[i], high[i]) == pytest.approx(logit_interval(row.mean(), se, fit.total_df))
    low, high = mean_intervals(y, pooled=False)
    for i, row in enumerate(y):
        se = row.std(ddof=1) / math.sqrt(3)
        assert (low[i], high[i]) == pytest.approx(logit_interval(row.mean(), se, 2))
    gaps = y.copy()
    gaps[2] = np.nan
    gaps[3, 1:] = np.nan
    low, high = mean_intervals(gaps, pooled=False)
    assert np.isnan([low[2], high[2], low[3], high[3]]).all()  # no run; one run


@pytest.mark.parametrize(
    ("mean", "se", "df"), [(0.9569, 0.0153, 1), (0.5, 0.1, 4), (0.02, 0.03, 2)]
)
def test_logit_interval_stays_in_bounds_and_matches_the_delta_method(mean, se, df):
    low, high = logit_interval(mean, se, df)
    t = scipy.stats.t.ppf(0.975, df)
    centre, spread = scipy.special.logit(mean), t * se / (mean * (1 - mean))
    assert (low, high) == pytest.approx(scipy.special.expit([centre - spread, centre + spread]))
    assert 0.0 < low < mean < high < 1.0
    if mean == 0.5:  # symmetric at the centre, narrower than the linear interval elsewhere
        assert high - mean == pytest.approx(mean - low)


def test_logit_interval_at_the_bounds_and_without_spread():
    assert logit_interval(1.0, 0.01, 3) == pytest.approx(
        (1 - scipy.stats.t.ppf(0.975, 3) * 0.01, 1.0)
    )
    assert logit_interval(0.0, 0.01, 3)[0] == 0.0
    assert logit_interval(0.7, 0.0, 3) == (0.7, 0.7)
    with pytest.raises(ValueError, match="accuracy in"):
        logit_interval(1.2, 0.01, 3)


# --- power ---------------------------------------------------------------------------------------


def _power_by_integration(effect: float, sd: float, n: int, df: float, critical: float) -> float:
    """Reference power without the noncentral t: P(|Z + d| > c sqrt(W / df)), W ~ chi2(df),
    Z ~ N(0, 1), d = effect sqrt(n) / sd, integrated over W (all but 2e-14 of its mass) with
    scipy.integrate.quad."""
    d = effect * math.sqrt(n) / sd

    def given(w: float) -> float:
        c = critical * math.sqrt(w / df)
        return (scipy.stats.norm.sf(c - d) + scipy.stats.norm.cdf(-c - d)) * scipy.stats.chi2.pdf(
            w, df
        )

    low, high = scipy.stats.chi2.ppf(1e-14, df), scipy.stats.chi2.isf(1e-14, df)
    return scipy.integrate.quad(given, low, high, limit=200)[0]


@pytest.mark.parametrize(
    ("effect", "n", "df", "critical"), [(0.01, 5, 4, 2.776), (0.004, 8, 63, 2.6)]
)
def test_t_test_power_matches_an_integration(effect, n, df, critical):
    sd = 0.012
    got = t_test_power(effect, sd, n, df, critical)
    assert got == pytest.approx(_power_by_integration(effect, sd, n, df, critical), abs=1e-7)
    assert t_test_power(-effect, sd, n, df, critical) == pytest.approx(got)


def test_seeds_for_power_reproduces_the_textbook_paired_t_test():
    # A paired t-test at effect size 0.5 (two-sided alpha 0.05, 80% power) needs 34 pairs
    # (Cohen 1988; G*Power: actual power 0.808).
    design = bonferroni_design(1, 0.05)
    assert seeds_for_power(0.5, 1.0, design) == 34
    assert t_test_power(0.5, 1.0, 34, *design(34)) == pytest.approx(0.8078, abs=1e-4)
    assert t_test_power(0.5, 1.0, 33, *design(33)) < 0.8
    assert seeds_for_power(0.0, 1.0, design) is None
    assert seeds_for_power(1e-6, 1.0, design) is None  # beyond the limit


def _seeds_for_power_by_every_critical_value(effect, sd, design, power=0.8, limit=100_000):
    """The search :func:`seeds_for_power` made before it bounded critical values: every one it
    visits computed."""
    if effect == 0.0 or sd <= 0.0:
        return None if effect == 0.0 else 2
    effect = abs(effect)
    guess = ((design(limit)[1] + scipy.stats.norm.ppf(power)) * sd / effect) ** 2
    if guess > limit:
        return None

    def enough(k):
        return t_test_power(effect, sd, k, *design(k)) >= power

    low, high = 1, max(2, math.ceil(guess))
    if enough(high):
        while high > 2 and enough(high - 1):
            high -= 1
        return high
    while not enough(high):
        low, high = high, 2 * high
        if low >= limit:
            return None
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if enough(middle) else (middle, high)
    return high if high <= limit else None


@pytest.mark.parametrize(
    ("make", "dunnett"),
    [
        (lambda: dunnett_design(2, 0.05), True),
        (lambda: dunnett_design(3, 0.025), True),
        (lambda: bonferroni_design(4, 0.05), False),
    ],
)
def test_seeds_for_power_is_that_of_the_search_computing_every_critical_value(make, dunnett):
    rng = np.random.default_rng(3)
    effects = [
        3.0,
        0.5,
        -0.3,
        0.05,
        0.01,
        0.003,
        1e-3,
        3e-4,
        1e-4,
        *10 ** rng.uniform(-3.3, -0.5, 9),
    ]
    design = make()
    fast = [seeds_for_power(e, 0.03, design) for e in effects]
    assert fast == [_seeds_for_power_by_every_critical_value(e, 0.03, make()) for e in effects]
    assert fast[0] == 2 and fast[6] > 5000 and fast[8] is None  # 2 seeds to beyond the limit
    if dunnett:  # the rows share the (costly) critical values computed
        assert len(design.known) < len(effects)


def test_dunnett_critical_values_fall_with_the_seeds():
    # What seeds_for_power's bounds assume: a critical value computed at more seeds is never
    # above one at fewer by more than CRITICAL_NOISE (adjacent seed counts included).
    for m in (2, 3):
        design = dunnett_design(m, 0.05)
        values = [design(n)[1] for n in [*range(2, 30), 100, 101, 1258, 1259, 10_000, 100_000]]
        assert all(b <= a + CRITICAL_NOISE for a, b in itertools.pairwise(values))


def test_power_figures_of_the_pooled_quickstart_design():
    ref = _anova(QUICKSTART)
    sd = math.sqrt(2 * ref["mse"])
    design = dunnett_design(9, 0.05)
    df, critical = design(5)
    assert df == 36
    assert critical == pytest.approx(dunnett_critical(36, equicorrelated(9), 0.05))
    smallest = detectable_effect(sd, 5, df, critical)
    assert _power_by_integration(smallest, sd, 5, df, critical) == pytest.approx(0.8, abs=1e-6)
    gain = QUICKSTART[8].mean() - QUICKSTART[0].mean()  # the best observed, +0.53 points
    n = seeds_for_power(gain, sd, design)
    assert _power_by_integration(gain, sd, n, *design(n)) >= 0.8
    assert _power_by_integration(gain, sd, n - 1, *design(n - 1)) < 0.8
    # Dunnett's critical value lies between Student-t's and Bonferroni's
    assert scipy.stats.t.ppf(0.975, 36) < critical < scipy.stats.t.ppf(1 - 0.025 / 9, 36)


def _logit_t_interval(mean: float, se: float, df: float, confidence: float) -> tuple[float, float]:
    """The logit-scale t interval by hand (delta method), for the tests below."""
    half = scipy.stats.t.ppf((1 + confidence) / 2, df) * se / (mean * (1 - mean))
    centre = math.log(mean / (1 - mean))
    return scipy.special.expit(centre - half), scipy.special.expit(centre + half)


def test_mean_intervals_of_each_row_at_the_asked_confidence():
    """Unpooled: each row's own SD and n - 1 degrees of freedom at 90 %; a row of one run has
    no interval, and the rows after it still do."""
    table = np.array([[0.8, 0.85, 0.9], [0.7, np.nan, np.nan], [0.6, 0.65, 0.72]])
    low, high = mean_intervals(table, pooled=False, confidence=0.9)
    for i in (0, 2):
        row = table[i]
        expected = _logit_t_interval(row.mean(), row.std(ddof=1) / math.sqrt(3), 2, 0.9)
        assert (low[i], high[i]) == pytest.approx(expected)
    assert math.isnan(low[1]) and math.isnan(high[1])


def test_pooled_mean_intervals_cover_two_rows_and_a_row_of_one_run():
    """Pooled over two rows (the least that pools), and a third row of a single run gets an
    interval from the pooled variance, n = 1."""
    table = np.array([[0.8, 0.85, 0.9], [0.7, 0.72, 0.75]])
    fit = block_fit(table)
    low, high = mean_intervals(table, pooled=True)
    for i, row in enumerate(table):
        expected = _logit_t_interval(row.mean(), math.sqrt(fit.total_var / 3), fit.total_df, 0.95)
        assert (low[i], high[i]) == pytest.approx(expected)
    three = np.vstack([table, [0.6, np.nan, np.nan]])
    fit = block_fit(three)
    low, high = mean_intervals(three, pooled=True)
    assert (low[2], high[2]) == pytest.approx(
        _logit_t_interval(0.6, math.sqrt(fit.total_var), fit.total_df, 0.95)
    )


def test_pooled_mean_intervals_fall_back_to_each_row_when_nothing_pools():
    """One seed per row leaves no residual degree of freedom to pool: each row's own (absent)
    spread decides, so no row has an interval, and nothing fails."""
    low, high = mean_intervals(np.array([[0.8], [0.7]]), pooled=True)
    assert np.isnan(low).all() and np.isnan(high).all()


def _seeded_table() -> np.ndarray:
    """3 architectures x 5 seeds around 0.8; row 2 repeats the reference exactly."""
    table = 0.8 + 0.02 * np.random.default_rng(1).standard_normal((3, 5))
    table[2] = table[0]
    return table


def test_many_to_one_by_default_pools_and_tests_by_dunnett():
    table = _seeded_table()
    result = many_to_one(table)
    fit = block_fit(table)
    bartlett = scipy.stats.bartlett(*fit.residuals).pvalue
    assert (result.model, result.method, result.note) == ("pooled", "dunnett", "")
    assert result.rows == [1, 2] and list(result.n) == [5, 5] and result.confidence == 0.95
    assert result.variance_p == pytest.approx(bartlett)
    assert result.residual_df == 8  # (3 - 1) x (5 - 1)
    assert result.gain == pytest.approx(table[1:].mean(axis=1) - table[0].mean())
    assert result.p_value[1] == pytest.approx(1.0)  # no gain at all: t = 0
    assert result.low[1] == pytest.approx(-result.high[1])


def test_many_to_one_by_holm_is_paired_t_tests_on_the_shared_seeds():
    """Per-row paired t-tests against the reference on the seeds both ran (row 1 lacks seed
    4), Holm-adjusted, at 1 - alpha; no pooled variance."""
    table = _seeded_table()
    table[2] += [0.01, 0.03, -0.01, 0.02, 0.0]
    table[1, 4] = np.nan
    result = many_to_one(table, method="holm", alpha=0.1)
    assert (result.model, result.method, result.note) == ("per-row", "holm", "")
    assert math.isnan(result.variance_p) and math.isnan(result.residual_sd)
    assert math.isnan(result.residual_df) and result.confidence == 0.9
    assert list(result.n) == [4, 5] and result.rows == [1, 2]
    tests = [
        scipy.stats.ttest_rel(table[1, :4], table[0, :4]),
        scipy.stats.ttest_rel(table[2], table[0]),
    ]
    intervals = [t.confidence_interval(0.9) for t in tests]
    assert result.low == pytest.approx([i.low for i in intervals])
    assert result.high == pytest.approx([i.high for i in intervals])
    expected_p = [
        scipy.stats.ttest_rel(table[1, :4], table[0, :4]).pvalue,
        scipy.stats.ttest_rel(table[2], table[0]).pvalue,
    ]
    assert result.p_value == pytest.approx(expected_p)
    assert result.p_adjusted == pytest.approx(holm_adjust(expected_p))
    assert result.gain == pytest.approx(
        [np.mean(table[1, :4] - table[0, :4]), np.mean(table[2] - table[0])]
    )
    assert result.sd_diff == pytest.approx(
        [np.std(table[1, :4] - table[0, :4], ddof=1), np.std(table[2] - table[0], ddof=1)]
    )


def test_many_to_one_falls_back_to_holm_where_variances_differ():
    table = _seeded_table()
    bartlett = scipy.stats.bartlett(*block_fit(table).residuals).pvalue
    result = many_to_one(table, unequal=0.5)  # Bartlett's p (0.29) is below 0.5
    assert (result.model, result.method) == ("per-row", "holm")
    assert result.variance_p == pytest.approx(bartlett)
    assert result.note == (
        f"the architectures' residual variances are clearly unequal (Bartlett p = "
        f"{bartlett:.2g} < 0.5)"
    )
    with pytest.raises(ValueError) as refused:
        many_to_one(table, method="tukey")
    assert str(refused.value) == "method must be 'dunnett' or 'holm', got 'tukey'."


def test_a_constant_table_has_no_gain_and_nothing_significant():
    """Every run the same: zero variance everywhere; gains 0 with p = 1, and the pooled fit's
    degrees of freedom fall back to runs - rows (12 - 3)."""
    table = np.full((3, 4), 0.5)
    result = many_to_one(table)
    assert list(result.gain) == [0.0, 0.0] and list(result.p_value) == [1.0, 1.0]
    fit = block_fit(table)
    assert fit.total_var == 0.0 and fit.total_df == 9.0


def test_block_fit_of_two_architectures_on_two_seeds_has_one_degree_of_freedom():
    fit = block_fit(np.array([[0.5, 0.6], [0.7, 0.9]]))
    assert fit.residual_df == 1
    assert fit.gains == pytest.approx([0.25])  # (0.7 + 0.9 - 0.5 - 0.6) / 2


def test_dunnett_pvalues_at_the_extremes():
    assert list(dunnett_pvalues([np.inf, 0.0], 8, [[1.0, 0.5], [0.5, 1.0]])) == [0.0, 1.0]


def test_bartlett_keeps_groups_of_two_runs():
    groups = [[0.1, 0.3], [0.2, 0.25], [0.5, 0.9]]
    assert equal_variances_p(groups) == pytest.approx(scipy.stats.bartlett(*groups).pvalue)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: mean_interval([0.8]),
            "an interval needs at least 2 values (seeds), got 1: with one there is no spread to "
            "estimate.",
        ),
        (
            lambda: rank_correlation([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]),
            "x or y is constant: a rank correlation is undefined without an order.",
        ),
        (
            lambda: rank_correlation([1.0, math.nan], [1.0, 2.0]),
            "x contains NaN or infinite values: [1.0, nan].",
        ),
        (
            lambda: rank_correlation([1.0, 2.0], [1.0, 2.0], n_boot=0),
            "n_boot must be an integer >= 1, got 0.",
        ),
        (
            lambda: block_fit(np.array([[0.8, 0.9, np.nan], [np.nan, np.nan, 0.7]])),
            "every architecture (row) needs a run on a seed the reference ran.",
        ),
    ],
)
def test_statistics_refuse_bad_input_by_name(call, message):
    with pytest.raises(ValueError) as refused:
        call()
    assert str(refused.value) == message


def test_rank_correlation_draws_its_bootstrap_from_seed_0_by_default():
    x, y = [0.1, 0.4, 0.35, 0.8, 0.7, 0.2], [1.0, 3.0, 2.0, 6.0, 5.0, 1.5]
    assert rank_correlation(x, y) == rank_correlation(x, y, seed=0)
    assert rank_correlation(x, y) != rank_correlation(x, y, seed=1)


@pytest.mark.parametrize(
    ("x", "y"), [([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]), ([1.0, 2.0, 3.0], [4.0, 4.0, 4.0])]
)
def test_rank_correlation_refuses_a_constant_side_without_a_scipy_warning(x, y):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError) as refused:
            rank_correlation(x, y)
    assert str(refused.value) == (
        "x or y is constant: a rank correlation is undefined without an order."
    )


def test_rank_correlation_drops_resamples_constant_on_one_side_silently():
    """Ties on each side: some resamples are constant in x only, others in y only. Both are
    dropped without scipy's ConstantInputWarning, and the intervals are the reference's."""
    import warnings

    x, y = np.array([1.0, 1.0, 2.0, 3.0]), np.array([1.0, 2.0, 2.0, 3.0])
    index = np.random.default_rng(0).integers(0, 4, size=(200, 4))
    flat_x = np.ptp(x[index], axis=1) == 0
    flat_y = np.ptp(y[index], axis=1) == 0
    assert (flat_x & ~flat_y).any() and (flat_y & ~flat_x).any()
    kept = index[~flat_x & ~flat_y]
    taus = [scipy.stats.kendalltau(x[i], y[i]).statistic for i in kept]
    rhos = [scipy.stats.spearmanr(x[i], y[i]).statistic for i in kept]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = rank_correlation(x, y, n_boot=200, seed=0)
    assert (result.tau_low, result.tau_high) == pytest.approx(np.quantile(taus, [0.025, 0.975]))
    assert (result.rho_low, result.rho_high) == pytest.approx(np.quantile(rhos, [0.025, 0.975]))


def _two_seed_table() -> np.ndarray:
    """3 architectures x 2 seeds: every row's residuals are a pair (+e, -e)."""
    return np.array([[0.80, 0.82], [0.85, 0.83], [0.70, 0.90]])


def test_bartlett_on_the_pooled_residuals_counts_rows_of_two_seeds():
    """The residuals of a complete table, y - row mean - seed mean + grand mean, by hand; each
    row contributes its pair of residuals to Bartlett's test."""
    table = _two_seed_table()
    residuals = table - table.mean(1, keepdims=True) - table.mean(0, keepdims=True) + table.mean()
    expected = scipy.stats.bartlett(*residuals).pvalue
    assert expected < 0.9  # the rows' spreads (0.023, 0.043, 0.067) differ
    result = many_to_one(table)
    assert result.model == "pooled" and result.residual_df == 2
    assert result.variance_p == pytest.approx(expected, rel=1e-9)


def test_a_bartlett_p_value_equal_to_the_threshold_keeps_the_pooled_model():
    """Variances count as clearly unequal only where Bartlett's p is below ``unequal``."""
    table = _two_seed_table()
    p = many_to_one(table).variance_p
    at = many_to_one(table, unequal=p)
    assert (at.model, at.method, at.note) == ("pooled", "dunnett", "")
    above = many_to_one(table, unequal=float(np.nextafter(p, 1.0)))
    assert (above.model, above.method) == ("per-row", "holm")
