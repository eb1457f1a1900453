"""The supernet yardstick nas confirm prints is what the committed results files measured."""

import json
from pathlib import Path

import pytest

from nas.supernet_rankings import TABLE_RANKINGS, yardstick_line

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("ranking", TABLE_RANKINGS, ids=lambda r: r.setting)
def test_table_rankings_are_the_committed_results(ranking):
    results = json.loads((ROOT / ranking.source).with_suffix(".json").read_text())
    rows = [
        r for r in results["supernets"] if r["setting"] == ranking.setting and r["calibration"] == 8
    ]
    measured = [round(r["all"]["kendall_tau"], 2) for r in sorted(rows, key=lambda r: r["seed"])]
    assert measured == list(ranking.kendall_taus)
    assert rows[0]["all"]["n"] == ranking.architectures


def test_yardstick_line_names_every_table():
    line = yardstick_line()
    assert all(r.table in line for r in TABLE_RANKINGS) and "Kendall tau" in line
