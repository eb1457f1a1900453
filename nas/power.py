"""Power by the noncentral t: how large a gain a test detects, and the seeds it needs.

* :func:`t_test_power`: the power of a two-sided t-test at a given critical value (Student-t's,
  Dunnett's or Bonferroni's), for a true mean difference over n paired seeds.
* :func:`detectable_effect`: the smallest true difference detected with a given power.
* :func:`seeds_for_power`: the fewest seeds that detect a difference with a given power, for a
  :class:`Design` (degrees of freedom and critical value at n seeds:
  :func:`nas.stats.dunnett_design`, :func:`nas.stats.bonferroni_design`). Dunnett's critical
  values are multivariate t integrations, so the search computes few of them.

:mod:`nas.stats` re-exports every name here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import scipy.optimize
import scipy.stats


def t_test_power(effect: float, sd: float, n: int, df: float, critical: float) -> float:
    """Power of a two-sided t-test rejecting where |t| > ``critical``, for a true mean
    difference ``effect`` measured over ``n`` pairs whose differences have SD ``sd``: the
    noncentral t with ``df`` degrees of freedom and noncentrality effect / (sd / sqrt(n))."""
    ncp = abs(effect) * math.sqrt(n) / sd
    # P(T > c) + P(T < -c), the lower tail as P(T' > c) at -ncp (scipy's nct.cdf far in the
    # lower tail returns NaN where nct.sf does not)
    upper = scipy.stats.nct.sf(critical, df, ncp)
    return float(upper + scipy.stats.nct.sf(critical, df, -ncp))


def detectable_effect(sd: float, n: int, df: float, critical: float, power: float = 0.8) -> float:
    """The smallest true difference the test of :func:`t_test_power` detects with ``power``."""
    high = sd / math.sqrt(n) * (critical + 3.0)
    while t_test_power(high, sd, n, df, critical) < power:  # few degrees of freedom: heavy tails
        high *= 2.0
    return float(
        scipy.optimize.brentq(lambda e: t_test_power(e, sd, n, df, critical) - power, 0.0, high)
    )


#: Numerical noise allowed in a design's critical values when :func:`seeds_for_power` bounds one
#: at n seeds by those computed at other seed counts: ten times the tolerance of
#: :func:`nas.stats.dunnett_critical`'s root search.
CRITICAL_NOISE = 1e-5


@dataclass(frozen=True)
class Design:
    """A test's (degrees of freedom, critical value) at n seeds: ``design(n)``, for
    :func:`seeds_for_power`. The critical values it computes are kept (``known``): the searches
    for the rows of one confirmation share them."""

    degrees: Callable[[int], float]
    critical_value: Callable[[int], float]
    known: dict[int, float] = field(default_factory=dict, compare=False, repr=False)

    def __call__(self, n: int) -> tuple[float, float]:
        return self.degrees(n), self.critical(n)

    def critical(self, n: int) -> float:
        if n not in self.known:
            self.known[n] = self.critical_value(n)
        return self.known[n]

    def bounds(self, n: int) -> tuple[float | None, float | None]:
        """Bounds of the critical value at n seeds from those already computed, which do not
        grow with the seeds (Student-t's and Dunnett's fall as the degrees of freedom grow) up
        to :data:`CRITICAL_NOISE`: (lower, upper); None where no seed count above (below) n has
        one. Exact where n has one."""
        if n in self.known:
            return self.known[n], self.known[n]
        above = [k for k in self.known if k > n]
        below = [k for k in self.known if k < n]
        lower = self.known[min(above)] - CRITICAL_NOISE if above else None
        upper = self.known[max(below)] + CRITICAL_NOISE if below else None
        return lower, upper


def _as_design(design: Callable[[int], tuple[float, float]]) -> Design:
    """Any ``n -> (degrees of freedom, critical value)`` as a :class:`Design`."""
    if isinstance(design, Design):
        return design
    return Design(lambda n: design(n)[0], lambda n: design(n)[1])


def seeds_for_power(
    effect: float,
    sd: float,
    design: Callable[[int], tuple[float, float]],
    power: float = 0.8,
    limit: int = 100_000,
) -> int | None:
    """The fewest seeds n >= 2 at which the test detects ``effect`` with ``power``, where
    ``design(n)`` gives its (degrees of freedom, critical value) at n seeds; None beyond
    ``limit`` (or where the normal approximation n = ((c + z_power) sd / effect)^2, with the
    smallest critical value c, is beyond it). Power grows with n.

    A critical value (Dunnett's: a multivariate t integration) costs far more than a power, so
    the search computes few: it starts where Student-t's quantile at the level of the critical
    value at ``limit`` reaches the power (within a seed of the answer in practice), and decides
    whether n seeds are enough from the critical values a :class:`Design` has computed at other
    seed counts (:meth:`Design.bounds`) where they settle it, computing the one at n where they
    do not. The answer is the same as that of a search computing every critical value it
    visits."""
    if effect == 0.0 or sd <= 0.0:
        return None if effect == 0.0 else 2
    effect = abs(effect)
    design = _as_design(design)
    at_limit = design.critical(limit)
    guess = ((at_limit + scipy.stats.norm.ppf(power)) * sd / effect) ** 2
    if guess > limit:
        return None

    def power_at(n: int, critical: float) -> float:
        return t_test_power(effect, sd, n, design.degrees(n), critical)

    def enough(n: int) -> bool:
        lower, upper = design.bounds(n)  # power falls as the critical value grows
        if upper is not None and power_at(n, upper) >= power:
            return True
        if lower is not None and power_at(n, lower) < power:
            return False
        return power_at(n, design.critical(n)) >= power

    level = float(scipy.stats.t.cdf(at_limit, design.degrees(limit)))

    def roughly_enough(n: int) -> bool:
        return power_at(n, float(scipy.stats.t.ppf(level, design.degrees(n)))) >= power

    start = _fewest(roughly_enough, max(2, math.ceil(guess)), limit) or limit
    return _fewest(enough, start, limit)


def _fewest(enough: Callable[[int], bool], start: int, limit: int) -> int | None:
    """The fewest n >= 2 for which ``enough(n)`` (true from some n on), searched from ``start``:
    its neighbours first, then steps doubling, then bisection; None where it is beyond
    ``limit``."""
    if enough(start):
        high, step = start, 1
        while True:
            if high == 2:
                return 2
            n = max(2, high - step)
            if not enough(n):
                low = n
                break
            high, step = n, 2 * step
    else:
        low, step = start, 1
        while True:
            if low >= limit:
                return None
            n = low + step
            if enough(n):
                high = n
                break
            low, step = n, 2 * step
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if enough(middle) else (middle, high)
    return high if high <= limit else None
