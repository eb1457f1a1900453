"""The ``nas table`` sub-commands: build, export, summarise and rebuild tabular benchmarks."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._common import Commands, _load_study, _study_arguments


def _add_table(commands: Commands) -> None:
    table = commands.add_parser(
        "table",
        help="tabular benchmark: train every architecture of a space x seeds, export, check",
    )
    jobs = table.add_subparsers(dest="table_command", required=True)
    build = jobs.add_parser(
        "build", help="train (or resume) every architecture of the config's space x seeds"
    )
    build.add_argument("config", type=Path, help="study config whose space the table covers")
    build.add_argument("--seeds", type=int, default=3, help="seeds per architecture (3)")
    build.add_argument(
        "--sample", type=int, help="a pilot: this many architectures drawn from the space"
    )
    build.add_argument("--storage", help="Optuna storage URL (default: the config's)")
    build.add_argument("--workers", type=int, default=1, help="local worker processes (1)")
    build.add_argument(
        "--out", type=Path, help="table file written at the end (default <runs_dir>/<name>.json)"
    )
    build.add_argument("--no-progress", action="store_true", help="no progress bars")
    build.set_defaults(run=_table_build)
    export = jobs.add_parser("export", help="write a table study's finished runs to a table file")
    _study_arguments(export)
    export.add_argument("--out", type=Path, required=True, help="the table file (.json)")
    export.set_defaults(run=_table_export)
    summary = jobs.add_parser("summary", help="what a table file holds and how noisy it is")
    summary.add_argument("table", type=Path, help="a table file")
    summary.set_defaults(run=_table_summary)
    rebuild = jobs.add_parser(
        "rebuild", help="train one architecture x seed of a table again and compare its curve"
    )
    rebuild.add_argument("table", type=Path, help="a table file")
    rebuild.add_argument("--arch", type=int, required=True, help="architecture index")
    rebuild.add_argument("--seed", type=int, default=0, help="seed repeat (0-based, default 0)")
    rebuild.add_argument("--data-root", help="where the table's data lies on this machine")
    rebuild.add_argument(
        "--threads", type=int, help="torch threads, where the table did not record the run's"
    )
    rebuild.set_defaults(run=_table_rebuild)


def _table_build(args: argparse.Namespace) -> int:
    from ..config import StudyConfig
    from ..tabular import export_table, prepare_table
    from ..worker import run_search

    cfg = StudyConfig.load(args.config)
    study, run_cfg = prepare_table(cfg, args.seeds, storage=args.storage, sample=args.sample)
    print(
        f"table study {cfg.study.name!r}: {run_cfg.study.n_trials} runs ({args.seeds} seeds x "
        f"{run_cfg.study.n_trials // args.seeds} of the space's {cfg.space.size():,} "
        f"architectures) of {cfg.training.epochs} epochs"
    )
    study = run_search(
        run_cfg, storage=args.storage, workers=args.workers, progress=not args.no_progress
    )
    out = args.out or Path(cfg.study.runs_dir) / f"{cfg.study.name}.json"
    data = export_table(study, out)
    print(
        f"wrote {out}: {data['built']['runs']} runs of {len(data['architectures'])} architectures"
    )
    return 0


def _table_export(args: argparse.Namespace) -> int:
    from ..tabular import export_table

    study, _ = _load_study(args)
    data = export_table(study, args.out)
    print(
        f"wrote {args.out}: {data['built']['runs']} runs of {len(data['architectures'])} "
        f"architectures (space of {data['space_size']}, {len(data['seeds'])} seeds)"
    )
    return 0


def _table_summary(args: argparse.Namespace) -> int:
    from ..tabular import load_table, table_noise

    table = load_table(args.table)
    noise = table_noise(table)
    print(
        f"table {table.name!r}: {noise['architectures']} of {table.space_size} architectures, "
        f"{noise['runs']} runs ({len(table.seeds)} seeds; complete: {table.complete}), "
        f"{table.epochs} epochs, objectives {table.objectives}, val_size {table.val_size}"
    )
    print(
        f"one run's seed sd {100 * noise['run_sd']:.2f} points; spread of the architectures' "
        f"seed means {100 * noise['spread_of_means']:.2f} points; ratio {noise['ratio']:.2f} "
        "(resolvable where >= 2)"
    )
    print(
        f"median run {noise['median_run_seconds']:.1f} s; the whole space x seeds is "
        f"{noise['projected_build_hours']:.2f} worker-hours at that speed (a worker per core "
        "divides it)"
    )
    return 0


def _table_rebuild(args: argparse.Namespace) -> int:
    from ..tabular import load_table, rebuild_run

    table = load_table(args.table)
    stored = next((a for a in table.architectures if a.index == args.arch), None)
    rebuilt = rebuild_run(
        table, args.arch, args.seed, data_root=args.data_root, threads=args.threads
    )
    run = (
        None if stored is None else next((r for r in stored.runs if r.replicate == args.seed), None)
    )
    if run is None:
        raise ValueError(
            f"table {table.name!r} holds no run of architecture {args.arch} seed {args.seed}"
        )
    same = (run.val_acc, run.test_acc) == (rebuilt.val_acc, rebuilt.test_acc)
    print(f"stored  val_acc {list(run.val_acc)} test_acc {run.test_acc}")
    print(f"rebuilt val_acc {list(rebuilt.val_acc)} test_acc {rebuilt.test_acc}")
    print("identical" if same else "DIFFERENT: the stored run does not reproduce here")
    return 0 if same else 1
