"""A pruner that stops a trial only when its deficit is larger than the noise of measuring it.

Successive halving (Li et al., "A System for Massively Parallel Hyperparameter Tuning", MLSys
2020) stops every trial outside the top ``1 / eta`` at a rung, however small the gap: on a
validation split of a few hundred images two architectures a point apart are a coin flip, and on
the quickstart's digits problem the accuracies after a few epochs rank the final ones no better
than chance (``nas.rungs``). :class:`NoiseAwarePruner` keeps ASHA's rungs and cut but decides
with two checks of its own:

* **the gap**: a trial is stopped only where the rung's cut (the top ``1 / eta`` of the values
  at the rung, among the trials that cost no more) exceeds its value by more than ``z`` standard
  errors of the difference. The noise of one value is the split's binomial error,
  ``p (1 - p) / n_val``, plus the curve's epoch-to-epoch jitter measured on the study's completed
  curves from the rung on (:func:`curve_jitter`: the values the decision and the final one rest
  on, not the first epochs' swings);
* **the rung**: it decides only at a rung whose values rank the completed trials' final values
  better than chance (Spearman's interval above zero, :func:`nas.rungs.epoch_rankings`); until
  ``n_min_trials`` trials have completed, or at a rung that ranks like chance, nothing is pruned.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from . import trial_schema as schema
from .config import asha_rungs
from .pareto import TIE_STANDARD_ERRORS
from .pruning import _CostAwarePruner, trial_costs
from .rungs import MIN_TRIALS, epoch_rankings


def curve_jitter(curves: Sequence[Sequence[float]], start: int = 0) -> float:
    """The standard deviation of one epoch's value around its neighbours' mean, pooled over
    ``curves`` from step ``start`` on: for independent noise of variance ``s^2`` on a locally
    straight curve, ``v[i] - (v[i-1] + v[i+1]) / 2`` has variance ``1.5 s^2``, so ``s`` is its
    root mean square over ``sqrt(1.5)``. 0 where no curve has three epochs from ``start``."""
    residuals = [
        curve[i] - (curve[i - 1] + curve[i + 1]) / 2
        for curve in curves
        for i in range(start + 1, len(curve) - 1)
    ]
    if not residuals:
        return 0.0
    return float(np.sqrt(np.mean(np.square(residuals)) / 1.5))


def binomial_variance(p: float, n_val: int | None) -> float:
    """Variance of an accuracy ``p`` measured on ``n_val`` images (0 where unknown)."""
    return 0.0 if not n_val else p * (1.0 - p) / n_val


def gap_standard_error(value: float, cut: float, jitter: float, n_val: int | None) -> float:
    """Standard error of ``cut - value``: both carry the jitter and their binomial error."""
    return math.sqrt(
        2 * jitter**2 + binomial_variance(value, n_val) + binomial_variance(cut, n_val)
    )


def _curve(trial: FrozenTrial) -> list[float]:
    """A trial's intermediate values in step order."""
    return [trial.intermediate_values[step] for step in sorted(trial.intermediate_values)]


class NoiseAwarePruner(_CostAwarePruner):
    """ASHA's rungs and cut, deciding only on gaps beyond their noise and at rungs that rank.

    Args:
        min_epochs: epochs trained at the first rung (``r``); rung ``k`` sits at
            ``r * eta ** k`` epochs while ``r * eta ** (k + 1) <= max_epochs``.
        reduction_factor: ``eta``; the top ``1 / eta`` at a rung set the cut.
        max_epochs: epochs of a complete trial (``None``: rungs go on geometrically).
        cost_names: costs (``nas.trial_schema.cost``) under which a trial is compared only with
            trials that cost no more on each; ``()`` compares with all.
        n_val: validation images behind each value, for the binomial error; ``None`` reads it
            from the completed trials' ``val_size`` (the engine records it) where they have one.
        z: standard errors the gap must exceed (default: the front's tie rule, 2).
        n_min_trials: completed trials needed before a rung's ranking is trusted.
        direction: ``"maximize"`` (accuracy) or ``"minimize"``.
    """

    def __init__(
        self,
        min_epochs: int = 1,
        reduction_factor: int = 3,
        *,
        max_epochs: int | None = None,
        cost_names: Sequence[str] = (),
        n_val: int | None = None,
        z: float = TIE_STANDARD_ERRORS,
        n_min_trials: int = MIN_TRIALS,
        direction: str = "maximize",
    ) -> None:
        if min_epochs < 1 or reduction_factor < 2:
            raise ValueError(
                f"min_epochs={min_epochs} must be >= 1 and reduction_factor={reduction_factor} >= 2"
            )
        if z < 0 or n_min_trials < 4:
            raise ValueError(f"z={z} must be >= 0 and n_min_trials={n_min_trials} >= 4")
        super().__init__(cost_names, direction)
        self.min_epochs, self.reduction_factor = min_epochs, reduction_factor
        self.max_epochs = max_epochs
        self.n_val, self.z, self.n_min_trials = n_val, z, n_min_trials

    def is_rung(self, epochs: int) -> bool:
        """Whether a trial that has trained ``epochs`` epochs stands at a rung (unbounded: every
        rung up to ``epochs`` is one that still promotes)."""
        bound = self.max_epochs or epochs * self.reduction_factor
        return epochs in asha_rungs(self.min_epochs, self.reduction_factor, bound)

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        if step is None or not self.is_rung(step + 1):
            return False
        value = trial.intermediate_values[step]
        if math.isnan(value):
            return True
        completed = [
            t
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.values and step in t.intermediate_values
        ]
        if not self._rung_ranks(completed, step + 1):
            return False
        peers = self._peers(study, trial, step)
        if len(peers) + 1 < self.reduction_factor:
            return False
        values = self._sign() * np.array([value, *peers])
        cut = self._sign() * float(np.quantile(values, 1.0 - 1.0 / self.reduction_factor))
        jitter = curve_jitter([_curve(t) for t in completed], start=step)
        gap = self._sign() * (cut - value)
        return gap > self.z * gap_standard_error(value, cut, jitter, self._n_val(completed))

    def _rung_ranks(self, completed: list[FrozenTrial], epochs: int) -> bool:
        if len(completed) < self.n_min_trials:
            return False
        curves = [t.intermediate_values for t in completed]
        (ranking,) = epoch_rankings(curves, [t.values[0] for t in completed], [epochs])
        return ranking.better_than_chance  # the same metric early and late: a positive rho

    def _peers(self, study: optuna.Study, trial: FrozenTrial, step: int) -> list[float]:
        """Values at ``step`` of the other trials that reached it and cost no more."""
        states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
        costs = trial_costs(trial, self.cost_names) if self.cost_names else None
        return [
            t.intermediate_values[step]
            for t in study.get_trials(deepcopy=False, states=states)
            if t.number != trial.number
            and step in t.intermediate_values
            and (costs is None or (trial_costs(t, self.cost_names) <= costs).all())
        ]

    def _n_val(self, completed: list[FrozenTrial]) -> int | None:
        """``n_val``, or the validation size the completed trials recorded."""
        if self.n_val is not None:
            return self.n_val
        return next((schema.VAL_SIZE.get(t) for t in completed if schema.VAL_SIZE.has(t)), None)
