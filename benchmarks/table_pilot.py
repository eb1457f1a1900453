"""Pilot of the tabular benchmark: which problem size resolves the placement space in time?

A table is worth building only where its architectures differ by more than one run's seed noise:
the criterion here is that the spread (sd) of the architectures' seed means is at least twice one
run's seed-to-seed sd, and that the whole table (every architecture of the space x its seeds)
fits about 4 hours of the machine that builds it. Each candidate problem below trains a random
sample of ``--sample`` architectures of the space in ``studies/table_cifar10.toml`` with
``--seeds`` seeds, through the engine (``nas table build --sample``: a resumable table study),
and reports the two sds, their ratio and the projected build time.

    python benchmarks/table_pilot.py --candidate A --threads 1    # one process per candidate,
    python benchmarks/table_pilot.py --candidate B --threads 1    # resumable
    python benchmarks/table_pilot.py --report                     # the table of both

Candidates (the table config's data, backbone, space and recipe otherwise):
A: 150 training / 250 validation images per class, 5 epochs; B: 100 / 200, 8 epochs (about the
same compute per run, a longer curve for early-stopping studies).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

import torch

# Run as a script (``python benchmarks/table_pilot.py``) from a checkout that is not pip-installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._harness import RESULTS, ROOT, Session, command_line, markdown_table, write_results
from nas.config import StudyConfig
from nas.study import quiet_third_party_output
from nas.tabular import export_table, load_table, prepare_table, table_noise
from nas.worker import run_search

CONFIG = ROOT / "studies" / "table_cifar10.toml"
PILOT_DIR = ROOT / "benchmarks" / "tables" / "pilot"
DEFAULT_OUT = RESULTS / "table_pilot.md"
CANDIDATES: dict[str, dict[str, int]] = {
    "A": {"per_class": 150, "val_per_class": 250, "epochs": 5},
    "B": {"per_class": 100, "val_per_class": 200, "epochs": 8},
}
#: The pilot's criterion: spread of seed means / one run's seed sd.
MIN_RATIO = 2.0
#: Hours the whole build may take on the machine that builds it.
MAX_HOURS = 4.0


def candidate_config(name: str) -> StudyConfig:
    base = StudyConfig.load(CONFIG)
    c = CANDIDATES[name]
    data = dataclasses.replace(
        base.data, per_class=c["per_class"], val_per_class=c["val_per_class"]
    )
    training = dataclasses.replace(base.training, epochs=c["epochs"])
    study = dataclasses.replace(base.study, name=f"pilot-{name}", runs_dir=str(PILOT_DIR))
    return dataclasses.replace(base, data=data, training=training, study=study)


def table_path(name: str) -> Path:
    return PILOT_DIR / f"pilot-{name}.json"


def build(name: str, sample: int, seeds: int) -> None:
    cfg = candidate_config(name)
    study, run_cfg = prepare_table(cfg, seeds, sample=sample)
    study = run_search(run_cfg, progress=False)
    export_table(study, table_path(name))


def report(args: argparse.Namespace, command: str, session: Session) -> dict[str, Any]:
    rows, raw = [], {}
    for name, c in CANDIDATES.items():
        path = table_path(name)
        if not path.is_file():
            continue
        table = load_table(path)
        noise = table_noise(table, workers=len(CANDIDATES))
        raw[name] = {**c, **noise}
        resolves = noise["ratio"] >= MIN_RATIO
        fits = noise["projected_build_hours"] <= MAX_HOURS
        rows.append(
            [
                name,
                f"{c['per_class'] * 10:,} / {c['val_per_class'] * 10:,}",
                c["epochs"],
                f"{noise['architectures']} x {len(table.seeds)}",
                f"{100 * noise['run_sd']:.2f}",
                f"{100 * noise['spread_of_means']:.2f}",
                f"{noise['ratio']:.2f} ({'yes' if resolves else 'no'})",
                f"{noise['median_run_seconds']:.1f}",
                f"{noise['projected_build_hours']:.2f} ({'yes' if fits else 'no'})",
            ]
        )
    header = ["candidate", "train / val images", "epochs", "archs x seeds"]
    header += ["one run's seed sd (points)", "spread of seed means (points)", "ratio (>= 2?)"]
    header += ["median run s", "projected build h (<= 4?)"]
    body = [
        f"Criterion: spread of the architectures' seed means >= {MIN_RATIO:g} x one run's seed "
        f"sd, and the whole table ({candidate_config('A').space.size()} architectures x the "
        f"seeds) within {MAX_HOURS:g} h of this machine. Run seconds are wall-clock seconds of "
        "one training run in the process that trained it (the threads given below).",
        "",
        *markdown_table(header, "llrlrrrrr", rows, compact=True),
        "",
        "Built with `python benchmarks/table_pilot.py --candidate A --threads 1` and `... "
        "--candidate B --threads 1`, run at the same time; this table with `python "
        "benchmarks/table_pilot.py --report`.",
        "",
        decision(raw),
    ]
    write_results(
        args.out,
        title="Pilot of the CIFAR-10 placement table",
        command=command,
        info=session.machine(),
        load_note="the candidates ran as concurrent single-thread processes",
        body=body,
        raw={"candidates": raw},
    )
    print("\n".join(body))
    return raw


def decision(raw: dict[str, dict[str, Any]]) -> str:
    """The candidate the table is built with: of those meeting both criteria, the one whose
    ratio is largest (where equal, the longer curve serves early-stopping studies better)."""
    fit = {
        name: r
        for name, r in raw.items()
        if r["ratio"] >= MIN_RATIO and r["projected_build_hours"] <= MAX_HOURS
    }
    if not fit:
        return "Decision: no candidate meets both criteria; the table needs another problem size."
    name = max(fit, key=lambda n: (fit[n]["ratio"], fit[n]["epochs"]))
    r = fit[name]
    return (
        f"Decision: candidate {name} ({r['per_class'] * 10:,} training / "
        f"{r['val_per_class'] * 10:,} validation images, {r['epochs']} epochs): ratio "
        f"{r['ratio']:.2f}, projected {r['projected_build_hours']:.1f} h. With 12 architectures "
        "and 24 degrees of freedom for the sd, either estimate is uncertain by about 15-20%; "
        "the ratio is a go/no-go check, not a precise figure."
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--candidate", choices=sorted(CANDIDATES), help="build this candidate's pilot")
    p.add_argument("--report", action="store_true", help="write the table of the built pilots")
    p.add_argument("--sample", type=int, default=12, help="architectures per pilot (12)")
    p.add_argument("--seeds", type=int, default=3, help="seeds per architecture (3)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    session = Session()
    torch.set_num_threads(args.threads)
    quiet_third_party_output()
    command = command_line(__file__, argv, python="python")
    if args.candidate:
        start = time.perf_counter()
        build(args.candidate, args.sample, args.seeds)
        print(f"candidate {args.candidate}: {time.perf_counter() - start:.0f} s")
    if args.report:
        report(args, command, session)


if __name__ == "__main__":
    main()
