"""Does a study's pruning rung rank trials better than chance? Measured on its own trials.

A rung (the epoch at which a pruner first compares trials) is only worth its saved epochs when
the accuracies there order the trials as their final accuracies do. :func:`rung_rankings` gives,
for each epoch asked, Spearman's rho between the trials' validation accuracy after that many
epochs and their final one, over the trials that completed (a pruned trial has no final value,
so these are the survivors: a rung that pruned hard is judged on a narrowed range, which lowers
rho), with a 95% interval. :func:`rung_warning` turns the first rung of a study's pruner into
one plain sentence where that interval does not exclude zero, with the earliest epoch that does
rank better than chance as the suggested first rung; ``nas status``, ``nas report`` and the
dashboard print it. :class:`AutoRungPruner` (``pruning.min_epochs = "auto"``) acts on the same
evidence: it prunes nothing until the study's completed trials show such an epoch, then puts the
first rung there.

The interval is Fisher's z with the variance Bonett & Wright (2000, Psychometrika 65:23-28) give
for Spearman's rho, ``(1 + rho^2 / 2) / (n - 3)``: instant, so status can afford it.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import optuna
import scipy.stats
from optuna.trial import TrialState

from . import trial_schema as schema
from .config import StudyConfig, asha_rungs

#: Fewer completed trials than this: no verdict on a rung (its interval would span everything).
MIN_TRIALS = 8
CONFIDENCE = 0.95


@dataclass(frozen=True)
class EpochRanking:
    """How the accuracy after ``epochs`` epochs ranks the final accuracy over ``n`` trials."""

    epochs: int
    n: int
    spearman_rho: float
    low: float
    high: float

    @property
    def better_than_chance(self) -> bool:
        """The interval excludes zero from above: the rung orders trials better than a coin."""
        return self.low > 0.0

    def describe(self) -> str:
        return (
            f"Spearman {self.spearman_rho:+.2f} [{self.low:+.2f}, {self.high:+.2f}] over "
            f"{self.n} completed trials"
        )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "better_than_chance": self.better_than_chance}


def spearman_interval(
    x: Sequence[float], y: Sequence[float], confidence: float = CONFIDENCE
) -> tuple[float, float, float]:
    """Spearman's rho of paired values and its Fisher-z interval (Bonett-Wright variance).

    NaN interval below 4 pairs (``n - 3`` must be positive); NaN rho where a side is constant.
    """
    if len(x) != len(y):
        raise ValueError(f"x and y must be paired: {len(x)} and {len(y)} values")
    n = len(x)
    if n < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return math.nan, math.nan, math.nan
    rho = float(scipy.stats.spearmanr(x, y).statistic)
    if n < 4:
        return rho, math.nan, math.nan
    clipped = min(max(rho, -0.999999), 0.999999)  # z is infinite at |rho| = 1
    half_width = scipy.stats.norm.ppf(0.5 + confidence / 2) * math.sqrt(
        (1.0 + rho**2 / 2.0) / (n - 3)
    )
    z = math.atanh(clipped)
    return rho, math.tanh(z - half_width), math.tanh(z + half_width)


def epoch_rankings(
    curves: Sequence[Mapping[int, float]], finals: Sequence[float], epochs: Iterable[int]
) -> list[EpochRanking]:
    """For each of ``epochs`` (epochs trained, 1-based): rho between ``curve[epochs - 1]`` (the
    value recorded at that 0-based step) and the final value, over the curves holding that step."""
    if len(curves) != len(finals):
        raise ValueError(f"{len(curves)} curves but {len(finals)} final values")
    rankings = []
    for epoch in epochs:
        rows = [(c[epoch - 1], f) for c, f in zip(curves, finals, strict=True) if epoch - 1 in c]
        early = [float(v) for v, _ in rows]
        final = [float(f) for _, f in rows]
        rankings.append(EpochRanking(epoch, len(rows), *spearman_interval(early, final)))
    return rankings


def rung_rankings(study: optuna.Study, epochs: Iterable[int]) -> list[EpochRanking]:
    """:func:`epoch_rankings` over the study's completed trials (their first objective)."""
    completed = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.intermediate_values and t.values and np.isfinite(t.values[0])
    ]
    return epoch_rankings(
        [t.intermediate_values for t in completed], [t.values[0] for t in completed], epochs
    )


def auto_first_rung(
    study: optuna.Study, candidates: Iterable[int], min_rho: float = 0.0
) -> EpochRanking | None:
    """The earliest of ``candidates`` (epochs trained) whose accuracy ranks the completed trials'
    final ones with an interval above ``min_rho`` (0: better than chance), once
    :data:`MIN_TRIALS` completed trials hold it; None before, or where none does yet."""
    rankings = rung_rankings(study, candidates)
    return next((r for r in rankings if r.n >= MIN_TRIALS and r.low > min_rho), None)


class AutoRungPruner(optuna.pruners.BasePruner):
    """``pruning.min_epochs = "auto"``: let the study's own trials choose the first rung.

    Until :func:`auto_first_rung` finds an epoch among ``candidates`` that ranks the completed
    trials with an interval above ``min_rho`` (0: better than chance), no trial is pruned (the
    trials that run to the end are the evidence). From then on every decision is
    ``build(epoch)``'s, a pruner whose first rung is that epoch. The epoch is chosen once and
    stored on the study (user attr ``auto_first_rung``, with its Spearman interval), so later
    evidence does not move the rungs under trials already compared there, and every worker and
    resumed run uses the same ones. The chosen pruner starts its rungs empty: the trials that
    completed before the choice did not record values there.
    """

    def __init__(
        self,
        build: Callable[[int], optuna.pruners.BasePruner],
        candidates: Iterable[int],
        min_rho: float = 0.0,
    ) -> None:
        if not 0.0 <= min_rho < 1.0:
            raise ValueError(f"min_rho must be in [0, 1), got {min_rho!r}")
        self.candidates = list(candidates)
        self.min_rho = min_rho
        if not self.candidates:
            raise ValueError("AutoRungPruner needs at least one candidate epoch for its rung")
        self._build = build
        self._pruners: dict[int, optuna.pruners.BasePruner] = {}

    def first_rung(self, study: optuna.Study) -> int | None:
        """The chosen first rung's epoch (choosing it now where the evidence allows)."""
        stored = schema.auto_first_rung(study)
        if stored is not None:
            return int(stored["epochs"])
        chosen = auto_first_rung(study, self.candidates, self.min_rho)
        if chosen is None:
            return None
        study.set_user_attr(schema.AUTO_FIRST_RUNG, chosen.to_dict())
        return chosen.epochs

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        epoch = self.first_rung(study)
        if epoch is None:
            return False
        if epoch not in self._pruners:
            self._pruners[epoch] = self._build(epoch)
        return self._pruners[epoch].prune(study, trial)


def with_first_rung(cfg: StudyConfig, epoch: int) -> StudyConfig:
    """``cfg`` with its pruner's first rung at ``epoch`` epochs trained (Optuna's ``asha``
    counts 0-based steps, so its ``min_epochs`` is one less)."""
    min_epochs = epoch - 1 if cfg.pruning.pruner == "asha" else epoch
    return dataclasses.replace(cfg, pruning=dataclasses.replace(cfg.pruning, min_epochs=min_epochs))


def decision_epochs(cfg: StudyConfig) -> list[int]:
    """Epochs trained at which the configured pruner decides for the first time at each rung,
    before the last epoch: ASHA's rungs for ``moasha`` and ``noise``; for Optuna's ``asha``,
    whose ``min_resource`` counts 0-based steps, one epoch later (``min_epochs * eta ** k + 1``,
    unbounded as in Optuna); for ``pareto``, ``median`` and ``percentile``, which compare at
    every epoch after their warm-up, the first epoch they may stop a trial."""
    p, epochs = cfg.pruning, cfg.training.epochs
    if p.pruner in ("moasha", "noise"):
        return asha_rungs(p.min_epochs, p.reduction_factor, epochs)
    if p.pruner == "asha":
        steps = (p.min_epochs * p.reduction_factor**k for k in range(epochs))
        return list(itertools.takewhile(lambda epoch: epoch < epochs, (s + 1 for s in steps)))
    if p.pruner in ("pareto", "median", "percentile"):
        return [p.n_warmup_epochs + 1] if p.n_warmup_epochs + 1 < epochs else []
    return []


def _last_first_rung(cfg: StudyConfig) -> int:
    """The latest epoch a first rung can sit at and still decide: our ASHA rungs need room for
    one promotion (``r * eta <= R``), Optuna's unbounded ``asha`` and the warm-up pruners one
    epoch after it."""
    p, epochs = cfg.pruning, cfg.training.epochs
    return epochs // p.reduction_factor if p.pruner in ("moasha", "noise") else epochs - 1


def _setting(cfg: StudyConfig, epoch: int) -> str:
    """The config line that moves the first rung to ``epoch``."""
    if cfg.pruning.pruner in ("moasha", "noise"):
        return f"pruning.min_epochs = {epoch}"
    if cfg.pruning.pruner == "asha":
        return f"pruning.min_epochs = {epoch - 1}"  # Optuna's steps: decides one epoch later
    return f"pruning.n_warmup_epochs = {epoch - 1}"


def pruning_diagnosis(study: optuna.Study) -> dict[str, Any] | None:
    """The rankings at the stored config's pruning rungs, and the warning where the first is no
    better than chance; None for a study without a stored config or without pruning."""
    from .study import stored_as_this_release  # nas.study builds the pruners, which use this

    stored = schema.stored_config(study)
    if stored is None:
        return None
    cfg = StudyConfig.from_dict(stored_as_this_release(stored))
    note = None
    if cfg.pruning.min_epochs == "auto" and cfg.pruning.pruner != "none":
        chosen = schema.auto_first_rung(study)
        if chosen is None:
            done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
            note = (
                'pruning.min_epochs = "auto": no trial is pruned until the completed trials show '
                f"an epoch that ranks them with Spearman above {cfg.pruning.auto_min_rho:g} "
                f"(95% interval; from {MIN_TRIALS} completed trials on; {done} so far)"
            )
            return {"pruner": cfg.pruning.pruner, "rungs": [], "warning": None, "note": note}
        cfg = with_first_rung(cfg, int(chosen["epochs"]))
        note = (
            f'pruning.min_epochs = "auto" put the first rung at epoch {chosen["epochs"]}: '
            f"Spearman {chosen['spearman_rho']:+.2f} [{chosen['low']:+.2f}, "
            f"{chosen['high']:+.2f}] over the {chosen['n']} trials completed then"
        )
    rungs = decision_epochs(cfg)
    if not rungs:
        return None
    rankings = rung_rankings(study, rungs)
    return {
        "pruner": cfg.pruning.pruner,
        "rungs": [r.to_dict() for r in rankings],
        "warning": _warning(study, cfg, rankings[0]),
        "note": note,
    }


def pruning_lines(diagnosis: Mapping[str, Any] | None) -> list[str]:
    """What ``nas status`` and ``nas report`` print of a :func:`pruning_diagnosis`: the
    automatic rung's state and the warning, where there are any."""
    if diagnosis is None:
        return []
    return [line for line in (diagnosis.get("note"), diagnosis["warning"]) if line]


def _warning(study: optuna.Study, cfg: StudyConfig, first: EpochRanking) -> str | None:
    if first.n < MIN_TRIALS or math.isnan(first.low) or first.better_than_chance:
        return None
    later = rung_rankings(study, range(first.epochs + 1, _last_first_rung(cfg) + 1))
    better = next((r for r in later if r.n >= MIN_TRIALS and r.better_than_chance), None)
    advice = (
        f"consider {_setting(cfg, better.epochs)} (epoch {better.epochs}: {better.describe()}), "
        "or no pruning"
        if better is not None
        else 'consider pruning.pruner = "none": no epoch early enough for a first rung ranks '
        "better than chance here"
    )
    return (
        f"pruning at epoch {first.epochs} ranks trials at {first.describe()}: it is close to "
        f"random here; {advice}"
    )


def rung_warning(study: optuna.Study) -> str | None:
    """One sentence where the study's first pruning rung ranks its trials no better than chance
    (see :func:`pruning_diagnosis`); None where it ranks well, has too few trials to tell, or the
    study does not prune."""
    diagnosis = pruning_diagnosis(study)
    return None if diagnosis is None else diagnosis["warning"]
