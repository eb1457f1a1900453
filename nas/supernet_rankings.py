"""How well supernets of the default setting ranked every architecture of the tabular benchmarks.

A study's own confirmation compares the supernet's estimates with stand-alone training over a
handful of architectures, so its Kendall tau has a wide interval. These figures, measured by
``benchmarks/supernet_table.py`` over all 343 placements of each table (the default setting:
uniform paths, as many supernet epochs as a stand-alone training, 8 calibration batches; one
value per supernet seed), are the yardstick ``nas confirm`` prints beside it.
``tests/test_supernet_rankings.py`` checks them against the committed results files.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TableRanking:
    """Kendall tau of a default-setting supernet's estimates against a table's truth (the
    architectures' seed-mean accuracy), one value per supernet seed."""

    table: str
    architectures: int
    setting: str  #: the setting's name in the results file (``uniform:E``)
    kendall_taus: tuple[float, ...]
    source: str

    def describe(self) -> str:
        taus = ", ".join(f"{tau:+.2f}" for tau in self.kendall_taus)
        seeds = f"{len(self.kendall_taus)} supernet seeds"
        return f"{taus} on {self.table} ({self.architectures} architectures, {seeds})"


TABLE_RANKINGS = (
    TableRanking(
        table="the CIFAR-10 placement table",
        architectures=343,
        setting="uniform:8",
        kendall_taus=(0.43, 0.73, 0.37, 0.56),
        source="benchmarks/results/supernet_cifar10.md",
    ),
    TableRanking(
        table="the digits placement table",
        architectures=343,
        setting="uniform:12",
        kendall_taus=(0.00, 0.29),
        source="benchmarks/results/supernet_digits.md",
    ),
)


def yardstick_line() -> str:
    """One sentence: the default supernet's measured ranking on the tables."""
    parts = "; ".join(r.describe() for r in TABLE_RANKINGS)
    return (
        f"for comparison, supernets of the default setting ranked all architectures of the "
        f"tabular benchmarks at Kendall tau {parts} (benchmarks/results/supernet_*.md)"
    )
