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
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from numbers import Integral

import numpy as np
import scipy.stats


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
