"""Statistics for honest verdicts: per-trial noise, multi-seed confirmation and benchmarks.

* :func:`binomial_se`: the standard error of an accuracy measured on ``n`` independent images,
  ``sqrt(p (1 - p) / n)``. It is the measurement noise of the evaluation split only: it ignores
  seed-to-seed (training) noise, and it understates the noise at accuracies near 0 or 1, where
  the normal approximation behind it breaks down.
* :func:`difference_se`: the standard error of a difference of two independent estimates.
* :func:`mean_interval`: a Student-t confidence interval of a mean. Student-t, not normal,
  because the values are usually a handful of seeds.
* :func:`paired_comparison`: two architectures retrained with the same seeds, compared by a
  two-sided paired t-test and a Student-t interval of the mean difference. "Significant" means
  that test's p-value is below 0.05, after :func:`holm_adjust` across the compared
  architectures where the caller says so.
* :func:`holm_adjust`: Holm-Bonferroni step-down adjusted p-values (Holm, "A simple
  sequentially rejective multiple test procedure", Scand. J. Statist. 1979).
* :func:`rank_correlation`: Kendall's tau-b and Spearman's rho of two paired scores (say a
  proxy and the final accuracy), each with a percentile-bootstrap interval.

Several architectures retrained on the same seeds form a randomized block design (seeds are the
blocks):

* :func:`block_fit`: the additive model architecture + seed by least squares, its one residual
  variance (df (K-1)(S-1) for a complete table) and the pooled spread of a mean over seeds
  (Satterthwaite's df).
* :func:`many_to_one`: every architecture against the reference, by Dunnett's test on the
  pooled variance (:func:`dunnett_pvalues`, :func:`dunnett_critical`: the multivariate t, as
  ``scipy.stats.dunnett``), or per row by Holm-adjusted paired t-tests, the fallback where
  Bartlett's test (:func:`equal_variances_p`) finds the rows' variances clearly unequal.
* :func:`logit_interval`, :func:`mean_intervals`: intervals of mean accuracies that stay in
  [0, 1] (Student-t on the logit scale, delta method).
* :func:`t_test_power`, :func:`detectable_effect`, :func:`seeds_for_power`: power by the
  noncentral t (:mod:`nas.power`, re-exported here), for a design of :func:`dunnett_design` or
  :func:`bonferroni_design`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from numbers import Integral

import numpy as np
import scipy.optimize
import scipy.special
import scipy.stats

from .power import CRITICAL_NOISE as CRITICAL_NOISE
from .power import Design
from .power import detectable_effect as detectable_effect
from .power import seeds_for_power as seeds_for_power
from .power import t_test_power as t_test_power


def _check_count(value: object, name: str, minimum: int) -> int:
    """``value`` as an int, refusing bools, non-integers and values below ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def _check_confidence(confidence: float) -> float:
    """``confidence`` as a float strictly between 0 and 1."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}.")
    return float(confidence)


def _finite_array(values: Sequence[float], name: str) -> np.ndarray:
    """``values`` as a 1-D float64 array; NaN and infinities are refused."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D sequence of numbers, got shape {array.shape}.")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinite values: {array.tolist()}.")
    return array


def binomial_se(accuracy: float, n: int) -> float:
    """``sqrt(p (1 - p) / n)``: the standard error of an accuracy measured on ``n`` images."""
    n = _check_count(n, "n", 1)
    if not (math.isfinite(accuracy) and 0.0 <= accuracy <= 1.0):
        raise ValueError(f"accuracy must be a finite number in [0, 1], got {accuracy!r}.")
    return math.sqrt(accuracy * (1.0 - accuracy) / n)


def difference_se(se_a: float, se_b: float) -> float:
    """``sqrt(se_a**2 + se_b**2)``: the standard error of a difference of independent estimates."""
    return math.hypot(se_a, se_b)


@dataclass(frozen=True)
class Interval:
    """A confidence interval ``[low, high]`` of a mean of ``n`` values with sample SD ``sd``."""

    mean: float
    sd: float
    n: int
    low: float
    high: float
    confidence: float

    @property
    def half_width(self) -> float:
        """``(high - low) / 2``: the +- margin around the mean."""
        return (self.high - self.low) / 2.0

    def to_dict(self) -> dict[str, float | int]:
        """All fields as plain floats and ints, ready for JSON."""
        return asdict(self)


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> Interval:
    """Student-t interval of the mean: ``mean +- t_{(1+c)/2, n-1} * sd / sqrt(n)``.

    ``sd`` is the sample standard deviation (ddof=1). Values that are all equal give ``sd == 0``
    and ``low == high == mean`` exactly.
    """
    confidence = _check_confidence(confidence)
    array = _finite_array(values, "values")
    n = len(array)
    if n < 2:
        raise ValueError(
            f"an interval needs at least 2 values (seeds), got {n}: "
            "with one there is no spread to estimate."
        )
    if (array == array[0]).all():
        mean, sd, half = float(array[0]), 0.0, 0.0
    else:
        mean = float(array.mean())
        sd = float(array.std(ddof=1))
        half = float(scipy.stats.t.ppf((1.0 + confidence) / 2.0, n - 1)) * sd / math.sqrt(n)
    return Interval(mean, sd, n, mean - half, mean + half, confidence)


@dataclass(frozen=True)
class PairedComparison:
    """A paired t-test of ``a - b``: the interval of the mean difference, ``t`` and its p-value."""

    difference: Interval
    t: float
    p_value: float

    def significant(self, alpha: float = 0.05) -> bool:
        """Whether the two-sided p-value is below ``alpha``."""
        return self.p_value < alpha

    def to_dict(self) -> dict[str, float | int]:
        """The difference interval's fields plus ``t`` and ``p_value``, ready for JSON."""
        return {**self.difference.to_dict(), "t": self.t, "p_value": self.p_value}


def paired_comparison(
    a: Sequence[float], b: Sequence[float], confidence: float = 0.95
) -> PairedComparison:
    """Two-sided paired t-test of ``a`` against ``b``, paired by position (the same seed).

    It agrees with ``scipy.stats.ttest_rel(a, b)`` and its ``confidence_interval``. Where every
    difference is exactly equal the t-test is undefined (zero spread), so ``t`` is NaN and an
    exactly repeated difference is treated as certain: ``p_value`` is 1.0 when it is 0, else 0.0.
    """
    a_array = _finite_array(a, "a")
    b_array = _finite_array(b, "b")
    if len(a_array) != len(b_array):
        raise ValueError(
            f"a and b must be paired by seed: len(a) = {len(a_array)}, len(b) = {len(b_array)}."
        )
    difference = mean_interval(a_array - b_array, confidence)
    if difference.sd == 0.0:
        return PairedComparison(difference, math.nan, 1.0 if difference.mean == 0.0 else 0.0)
    t = difference.mean / (difference.sd / math.sqrt(difference.n))
    p_value = float(2.0 * scipy.stats.t.sf(abs(t), difference.n - 1))
    return PairedComparison(difference, t, p_value)


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input order.

    With the p-values sorted ascending, ``adj_(i) = max_{j<=i} min(1, (m - j + 1) p_(j))``;
    rejecting where the adjusted value is below alpha controls the family-wise error rate.
    """
    array = np.asarray(p_values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"p_values must be a 1-D sequence, got shape {array.shape}.")
    if np.isnan(array).any() or (array < 0.0).any() or (array > 1.0).any():
        raise ValueError(f"p_values must all be in [0, 1] (no NaN), got {array.tolist()}.")
    m = len(array)
    order = np.argsort(array, kind="stable")
    scaled = np.minimum(1.0, (m - np.arange(m)) * array[order])
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted.tolist()


@dataclass(frozen=True)
class RankCorrelation:
    """Kendall's tau-b and Spearman's rho of ``n`` pairs, each with a bootstrap interval."""

    kendall_tau: float
    tau_low: float
    tau_high: float
    spearman_rho: float
    rho_low: float
    rho_high: float
    n: int
    n_boot: int
    confidence: float

    def to_dict(self) -> dict[str, float | int]:
        """All fields as plain floats and ints, ready for JSON."""
        return asdict(self)


def _tau_rho(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Kendall's tau-b and Spearman's rho; NaN for both when either side is constant."""
    if (x == x[0]).all() or (y == y[0]).all():
        return math.nan, math.nan
    tau = float(scipy.stats.kendalltau(x, y).statistic)
    rho = float(scipy.stats.spearmanr(x, y).statistic)
    return tau, rho


def rank_correlation(
    x: Sequence[float],
    y: Sequence[float],
    *,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> RankCorrelation:
    """Kendall's tau-b and Spearman's rho of paired values, with percentile-bootstrap intervals.

    The pairs are resampled with replacement ``n_boot`` times from
    ``numpy.random.default_rng(seed)``, so the result is deterministic in ``seed``. Resamples in
    which either side is constant have no rank correlation and are dropped; each interval is the
    ``(1-c)/2`` and ``(1+c)/2`` quantiles of the rest (NaN if none is left).
    """
    confidence = _check_confidence(confidence)
    n_boot = _check_count(n_boot, "n_boot", 1)
    x_array = _finite_array(x, "x")
    y_array = _finite_array(y, "y")
    if len(x_array) != len(y_array):
        raise ValueError(
            f"x and y must be paired: len(x) = {len(x_array)}, len(y) = {len(y_array)}."
        )
    n = len(x_array)
    if n < 3:
        raise ValueError(f"a rank correlation needs at least 3 pairs, got {n}.")
    tau, rho = _tau_rho(x_array, y_array)
    if math.isnan(tau):
        raise ValueError("x or y is constant: a rank correlation is undefined without an order.")
    rng = np.random.default_rng(seed)
    samples = np.array([_tau_rho(x_array[i], y_array[i]) for i in rng.integers(0, n, (n_boot, n))])
    samples = samples[~np.isnan(samples).any(axis=1)]
    quantiles = [(1.0 - confidence) / 2.0, (1.0 + confidence) / 2.0]
    if len(samples):
        (tau_low, rho_low), (tau_high, rho_high) = np.quantile(samples, quantiles, axis=0)
    else:
        tau_low = rho_low = tau_high = rho_high = math.nan
    return RankCorrelation(
        kendall_tau=tau,
        tau_low=float(tau_low),
        tau_high=float(tau_high),
        spearman_rho=rho,
        rho_low=float(rho_low),
        rho_high=float(rho_high),
        n=n,
        n_boot=n_boot,
        confidence=confidence,
    )


# -- repeats of several architectures on shared seeds: a randomized block design ---------------


@dataclass(frozen=True)
class BlockFit:
    """The additive model ``y[i, j] = arch_i + seed_j + e[i, j]`` (two-way ANOVA without
    interaction; the seeds are the blocks of a paired design) fitted by least squares to an
    architectures x seeds table, row 0 the reference (``none``).

    ``residual_var`` (SSE / ``residual_df``, ``residual_df`` = N - K - B + 1, which is
    (K-1)(S-1) for a complete table) is the variance of one run around the model: a paired
    difference of two rows has variance 2 ``residual_var`` per seed. ``gains[i-1]`` estimates
    ``arch_i - arch_0``; its covariance is ``residual_var * gain_cov``. ``total_var`` is the
    pooled within-row variance (the seed effect included: a mean over seeds carries it), with
    Satterthwaite's degrees of freedom ``total_df`` (Satterthwaite, Biometrics Bull. 1946)."""

    gains: np.ndarray
    gain_cov: np.ndarray
    residual_var: float
    residual_df: int
    residuals: list[np.ndarray]
    total_var: float
    total_df: float
    counts: np.ndarray


def block_fit(values: np.ndarray | Sequence[Sequence[float]]) -> BlockFit:
    """Fit :class:`BlockFit` to ``values[i, j]`` (architecture i, seed j; NaN where that run is
    missing). Seeds without the reference's run are left out; every row needs a run and the
    fit at least one residual degree of freedom."""
    table = np.asarray(values, dtype=np.float64)
    if table.ndim != 2 or table.shape[0] < 2:
        raise ValueError(f"values must be a 2-D table of >= 2 rows, got shape {table.shape}.")
    table = table[:, ~np.isnan(table[0])]
    present = ~np.isnan(table)
    if not present.any(axis=1).all():
        raise ValueError("every architecture (row) needs a run on a seed the reference ran.")
    k, b = table.shape
    rows, cols = np.nonzero(present)
    y = table[present]
    x = np.zeros((len(y), k + b - 1))
    x[np.arange(len(y)), rows] = 1.0
    x[cols > 0, k + cols[cols > 0] - 1] = 1.0
    residual_df = len(y) - k - b + 1
    if residual_df < 1:
        raise ValueError(f"no residual degree of freedom: {len(y)} runs, {k} rows, {b} seeds.")
    inverse = np.linalg.inv(x.T @ x)
    beta = inverse @ x.T @ y
    residuals = y - x @ beta
    contrast = np.hstack([-np.ones((k - 1, 1)), np.eye(k - 1), np.zeros((k - 1, b - 1))])
    counts = present.sum(axis=1)
    row_means = np.nansum(table, axis=1) / counts
    sse = float(residuals @ residuals)
    ss_within = float(((y - row_means[rows]) ** 2).sum())
    ss_seeds = max(ss_within - sse, 0.0)
    parts = [(ss_seeds, b - 1), (sse, residual_df)]
    denominator = sum(ss**2 / df for ss, df in parts if df > 0)
    return BlockFit(
        gains=beta[1:k] - beta[0],
        gain_cov=contrast @ inverse @ contrast.T,
        residual_var=sse / residual_df,
        residual_df=residual_df,
        residuals=[residuals[rows == i] for i in range(k)],
        total_var=ss_within / (len(y) - k),
        total_df=ss_within**2 / denominator if denominator > 0 else float(len(y) - k),
        counts=counts,
    )


def equal_variances_p(groups: Sequence[Sequence[float]]) -> float:
    """Bartlett's test (``scipy.stats.bartlett``) that the groups share one variance: its
    p-value. Groups of fewer than two values, and constant ones (log 0: discrete accuracies
    repeat exactly by chance), are left out; 1.0 where fewer than two groups remain."""
    kept = [np.asarray(g, dtype=np.float64) for g in groups if len(g) >= 2]
    kept = [g for g in kept if float(np.var(g)) > 1e-24]
    if len(kept) < 2:
        return 1.0
    return float(scipy.stats.bartlett(*kept).pvalue)


def correlation(cov: np.ndarray) -> np.ndarray:
    """The correlation matrix of a covariance matrix."""
    sd = np.sqrt(np.diag(cov))
    return np.asarray(cov) / np.outer(sd, sd)


def _max_abs_t_cdf(c: float, df: float, corr: np.ndarray) -> float:
    """P(max_i |T_i| < c) for T multivariate t (``scipy.stats.multivariate_t``, Genz's
    quasi-Monte Carlo integration with a fixed seed, so the result is repeatable)."""
    m = len(corr)
    if m == 1:
        return float(1.0 - 2.0 * scipy.stats.t.sf(c, df))
    dist = scipy.stats.multivariate_t(shape=corr, df=df)
    bound = np.full(m, c)
    return float(dist.cdf(bound, lower_limit=-bound, random_state=np.random.default_rng(0)))


def dunnett_pvalues(t: Sequence[float], df: float, corr: np.ndarray) -> np.ndarray:
    """Dunnett's single-step two-sided adjusted p-values (Dunnett, JASA 1955): for each
    statistic, P(max_j |T_j| >= |t_i|) with T multivariate t with ``df`` degrees of freedom and
    the comparisons' correlation ``corr`` (0.5 off the diagonal for a complete table). As
    ``scipy.stats.dunnett`` computes it, for any correlation."""
    stats = np.abs(np.asarray(t, dtype=np.float64))
    corr = np.atleast_2d(np.asarray(corr, dtype=np.float64))
    return np.array([1.0 - _max_abs_t_cdf(s, df, corr) if s < np.inf else 0.0 for s in stats])


@functools.lru_cache(maxsize=1024)
def _dunnett_critical(df: float, corr: tuple[tuple[float, ...], ...], alpha: float) -> float:
    matrix = np.array(corr)
    m = len(matrix)
    low = float(scipy.stats.t.ppf(1.0 - alpha / 2.0, df))
    high = float(scipy.stats.t.ppf(1.0 - alpha / (2.0 * m), df))  # Bonferroni bounds it
    if m == 1:
        return low
    return float(
        scipy.optimize.brentq(
            lambda c: _max_abs_t_cdf(c, df, matrix) - (1.0 - alpha),
            low * 0.999,
            high * 1.001,
            xtol=1e-6,
        )
    )


def dunnett_critical(df: float, corr: np.ndarray, alpha: float) -> float:
    """The two-sided critical value c of Dunnett's test: P(max_i |T_i| < c) = 1 - alpha
    (simultaneous intervals gain +- c se); Student-t's quantile for one comparison."""
    matrix = np.atleast_2d(np.round(np.asarray(corr, dtype=np.float64), 12))
    return _dunnett_critical(float(df), tuple(map(tuple, matrix.tolist())), float(alpha))


def equicorrelated(m: int, rho: float = 0.5) -> np.ndarray:
    """The m x m correlation matrix with ``rho`` off the diagonal: the correlation of the m
    gains over a common reference in a complete table (rho = 1/2)."""
    return np.full((m, m), rho) + (1.0 - rho) * np.eye(m)


def logit_interval(
    mean: float, se: float, df: float, confidence: float = 0.95
) -> tuple[float, float]:
    """A Student-t interval of a mean accuracy that stays in [0, 1]: mean +- t se on the logit
    scale (delta method: se / (p (1 - p))), mapped back, so it is asymmetric near the bounds.
    At a mean of exactly 0 or 1 the linear interval is cut at the bound; with ``se`` 0 it is
    the mean."""
    confidence = _check_confidence(confidence)
    if not (math.isfinite(mean) and 0.0 <= mean <= 1.0):
        raise ValueError(f"mean must be an accuracy in [0, 1], got {mean!r}.")
    if se == 0.0:
        return mean, mean
    half = float(scipy.stats.t.ppf((1.0 + confidence) / 2.0, df)) * se
    if mean in (0.0, 1.0):
        return max(0.0, mean - half), min(1.0, mean + half)
    centre = math.log(mean / (1.0 - mean))
    spread = half / (mean * (1.0 - mean))
    return float(scipy.special.expit(centre - spread)), float(scipy.special.expit(centre + spread))


def dunnett_design(m: int, alpha: float) -> Design:
    """(degrees of freedom, critical value) at n seeds of Dunnett's test of ``m`` rows against
    a reference in a complete table of m + 1 rows: m (n - 1) and :func:`dunnett_critical` at
    correlation 1/2. For :func:`seeds_for_power`."""
    return Design(
        lambda n: m * (n - 1),
        lambda n: dunnett_critical(m * (n - 1), equicorrelated(m), alpha),
    )


def bonferroni_design(m: int, alpha: float) -> Design:
    """(degrees of freedom, critical value) at n seeds of a paired t-test of one of ``m``
    comparisons at ``alpha / m`` (where Holm's procedure starts): n - 1 and t(1 - alpha/(2m))."""
    return Design(
        lambda n: n - 1, lambda n: float(scipy.stats.t.ppf(1.0 - alpha / (2.0 * m), n - 1))
    )


@dataclass(frozen=True)
class ManyToOne:
    """Rows of an architectures x seeds table against row 0 (the reference), paired by seed.

    ``rows`` are the compared rows (two or more seeds shared with the reference); ``gain``,
    ``low``, ``high`` (an interval at ``confidence``: simultaneous for Dunnett), ``p_value``
    (unadjusted), ``p_adjusted``, ``sd_diff`` (the SD of one paired difference) and ``n``
    (seeds shared with the reference) are aligned with them. ``model`` is ``pooled`` (one
    residual variance, :func:`block_fit`, tested by Dunnett) or ``per-row`` (each row's own
    paired differences, Holm-adjusted paired t-tests); ``note`` says why a pooled request fell
    back to per-row; ``variance_p`` is Bartlett's p-value on the pooled residuals."""

    model: str
    method: str
    note: str
    variance_p: float
    residual_sd: float
    residual_df: float
    rows: list[int]
    gain: np.ndarray
    low: np.ndarray
    high: np.ndarray
    p_value: np.ndarray
    p_adjusted: np.ndarray
    sd_diff: np.ndarray
    n: np.ndarray
    confidence: float


def many_to_one(
    table: np.ndarray, method: str = "dunnett", alpha: float = 0.05, unequal: float = 0.01
) -> ManyToOne:
    """Compare every row of ``table`` (NaN: no run) with row 0. ``method="dunnett"`` pools one
    residual variance over the table (:func:`block_fit`) and tests by Dunnett's procedure,
    unless Bartlett's test on the residuals rejects equal variances at ``unequal`` (then, as for
    ``method="holm"``, per-row paired t-tests, Holm-adjusted). Intervals at 1 - ``alpha``."""
    table = np.asarray(table, dtype=np.float64)
    shared = [np.flatnonzero(~np.isnan(table[0]) & ~np.isnan(row)) for row in table]
    rows = [i for i in range(1, len(table)) if len(shared[i]) >= 2]
    if method not in ("dunnett", "holm"):
        raise ValueError(f"method must be 'dunnett' or 'holm', got {method!r}.")
    note, variance_p, fit = "", math.nan, None
    if method == "dunnett" and rows:
        try:
            fit = block_fit(table[[0, *rows]])
        except ValueError as exc:
            note = f"no pooled variance ({exc})"
        else:
            variance_p = equal_variances_p([r for r in fit.residuals if len(r) >= 2])
            if variance_p < unequal:
                note = (
                    f"the architectures' residual variances are clearly unequal (Bartlett "
                    f"p = {variance_p:.2g} < {unequal:g})"
                )
                fit = None
    if fit is not None:
        return _dunnett(fit, rows, alpha, variance_p)
    return _holm(table, rows, shared, alpha, note, variance_p)


def _dunnett(fit: BlockFit, rows: list[int], alpha: float, variance_p: float) -> ManyToOne:
    """Dunnett's test and simultaneous intervals of the gains of a :class:`BlockFit`."""
    se = np.sqrt(fit.residual_var * np.diag(fit.gain_cov))
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(fit.gains == 0.0, 0.0, fit.gains / se)
    corr = correlation(fit.gain_cov)
    critical = dunnett_critical(fit.residual_df, corr, alpha)
    sd = math.sqrt(fit.residual_var)
    return ManyToOne(
        model="pooled",
        method="dunnett",
        note="",
        variance_p=variance_p,
        residual_sd=sd,
        residual_df=fit.residual_df,
        rows=rows,
        gain=fit.gains,
        low=fit.gains - critical * se,
        high=fit.gains + critical * se,
        p_value=2.0 * scipy.stats.t.sf(np.abs(t), fit.residual_df),
        p_adjusted=dunnett_pvalues(t, fit.residual_df, corr),
        sd_diff=np.full(len(rows), math.sqrt(2.0) * sd),
        n=fit.counts[1:],
        confidence=1.0 - alpha,
    )


def _holm(
    table: np.ndarray,
    rows: list[int],
    shared: list[np.ndarray],
    alpha: float,
    note: str,
    variance_p: float,
) -> ManyToOne:
    """Per-row paired t-tests (:func:`paired_comparison`), Holm-adjusted."""
    tests = [paired_comparison(table[i, shared[i]], table[0, shared[i]], 1.0 - alpha) for i in rows]
    pick = lambda field: np.array([getattr(c.difference, field) for c in tests])  # noqa: E731
    p_value = np.array([c.p_value for c in tests])
    return ManyToOne(
        model="per-row",
        method="holm",
        note=note,
        variance_p=variance_p,
        residual_sd=math.nan,
        residual_df=math.nan,
        rows=rows,
        gain=pick("mean"),
        low=pick("low"),
        high=pick("high"),
        p_value=p_value,
        p_adjusted=np.array(holm_adjust(p_value)),
        sd_diff=pick("sd"),
        n=np.array([len(shared[i]) for i in rows]),
        confidence=1.0 - alpha,
    )


def mean_intervals(
    table: np.ndarray, pooled: bool, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Intervals of each row's mean accuracy that stay in [0, 1] (:func:`logit_interval`):
    with ``pooled``, from :func:`block_fit`'s pooled within-row variance (the seed effect
    included) and its Satterthwaite degrees of freedom, else from each row's own SD and n - 1
    (NaN for a row with fewer than two runs)."""
    table = np.asarray(table, dtype=np.float64)
    counts = (~np.isnan(table)).sum(axis=1)
    means = np.array([np.nanmean(r) if c else math.nan for r, c in zip(table, counts, strict=True)])
    low, high = np.full(len(table), math.nan), np.full(len(table), math.nan)
    fit, present = None, np.flatnonzero(counts)
    if pooled and len(present) >= 2 and present[0] == 0:
        try:
            fit = block_fit(table[present])
        except ValueError:  # too few runs to pool
            fit = None
    for i, (mean, n) in enumerate(zip(means, counts, strict=True)):
        if fit is not None and n >= 1:
            se, df = math.sqrt(fit.total_var / n), fit.total_df
        elif n >= 2:
            values = table[i][~np.isnan(table[i])]
            se, df = float(values.std(ddof=1)) / math.sqrt(n), n - 1
        else:
            continue
        low[i], high[i] = logit_interval(float(mean), se, df, confidence)
    return low, high
