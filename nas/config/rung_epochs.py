"""The epochs at which rung-based pruners decide: pure arithmetic on the config's numbers, which
the config validates against and the pruners use."""

from __future__ import annotations


def asha_rungs(
    min_epochs: int, reduction_factor: int, max_epochs: int, min_early_stopping_rate: int = 0
) -> list[int]:
    """Epochs after which ASHA decides, for trials of ``max_epochs``: ``r * eta ** (s + k)`` for
    each ``k`` with ``r * eta ** (s + k + 1) <= R`` (Li et al., Algorithm 2). Empty where the
    budget leaves no rung: a trial promoted from the first would need more than ``R`` epochs."""
    rungs = []
    epochs = min_epochs * reduction_factor**min_early_stopping_rate
    while epochs * reduction_factor <= max_epochs:
        rungs.append(epochs)
        epochs *= reduction_factor
    return rungs


def first_rung_candidates(pruner: str, reduction_factor: int, max_epochs: int) -> list[int]:
    """Epochs trained at which ``pruning.min_epochs = "auto"`` may put the first rung: room for
    one promotion after it for ``moasha`` and ``noise`` (``r * eta <= R``); for Optuna's ``asha``
    (``min_resource = epoch - 1 >= 1``) any epoch from 2 before the last; none for other pruners."""
    if pruner in ("moasha", "noise"):
        return list(range(1, max_epochs // reduction_factor + 1))
    if pruner == "asha":
        return list(range(2, max_epochs))
    return []
