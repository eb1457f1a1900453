"""Sub-commands that run or describe searches: search, worker, status, train, blocks, schema,
doctor."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

import attn_blocks

from ._common import Commands, _load_study, _study_arguments


def _add_search(commands: Commands) -> None:
    search = commands.add_parser("search", help="run or resume the study a TOML config describes")
    search.add_argument("config", type=Path, help="study config, e.g. studies/quickstart.toml")
    search.add_argument(
        "--storage",
        help="Optuna storage URL (default: the config's, else a "
        "journal file under studies/runs/<name>/)",
    )
    search.add_argument("--workers", type=int, default=1, help="local worker processes (default 1)")
    search.add_argument("--n-trials", type=int, help="override study.n_trials")
    search.add_argument("--no-progress", action="store_true", help="no progress bars")
    search.set_defaults(run=_search)


def _search(args: argparse.Namespace) -> int:
    import dataclasses

    from ..config import StudyConfig
    from ..worker import run_search

    cfg = StudyConfig.load(args.config)
    if args.n_trials is not None:
        cfg = dataclasses.replace(cfg, study=dataclasses.replace(cfg.study, n_trials=args.n_trials))
    print(
        f"study {cfg.study.name!r}: {cfg.study.n_trials} trials, space of "
        f"{cfg.space.size():,} architectures, objectives {cfg.objectives.names} "
        f"({', '.join(cfg.objectives.directions)})"
    )
    if cfg.search.strategy == "supernet":
        from ..config import supernet_epochs

        epochs = supernet_epochs(cfg)
        print(
            f"strategy supernet: one supernet trained for {epochs} epochs "
            f"({cfg.search.sampling} paths), then every trial evaluated on it"
        )
    study = run_search(
        cfg, storage=args.storage, workers=args.workers, progress=not args.no_progress
    )
    _print_summary(study)
    return 0


def _add_worker(commands: Commands) -> None:
    worker = commands.add_parser(
        "worker", help="join an existing study (its config is stored with it) from any machine"
    )
    worker.add_argument("--storage", required=True, help="the study's storage URL")
    worker.add_argument("--study", required=True, help="the study name")
    worker.add_argument("--workers", type=int, default=1, help="local worker processes")
    worker.add_argument("--no-progress", action="store_true", help="no progress bars")
    worker.set_defaults(run=_worker)


def _worker(args: argparse.Namespace) -> int:
    from ..worker import join_study

    study = join_study(
        args.storage, args.study, workers=args.workers, progress=not args.no_progress
    )
    _print_summary(study)
    return 0


def _add_status(commands: Commands) -> None:
    status = commands.add_parser("status", help="trials so far and the current Pareto front")
    _study_arguments(status)
    status.add_argument("--all", action="store_true", help="list every trial, not just the last 20")
    status.set_defaults(run=_status)


def _status(args: argparse.Namespace) -> int:
    study, _ = _load_study(args)
    _print_summary(study, all_trials=args.all)
    return 0


def _print_summary(study, all_trials: bool = False, facts: dict | None = None) -> None:
    """Trials and front, accuracy with its binomial standard error (``± s.e.``); baselines
    and the trials tied with the front are named in ``note``; then the gain over ``none`` and
    the pruning diagnosis (from ``facts``, the report's summary, where the caller has it)."""
    from .. import trial_schema as schema
    from ..confirm import confirm_frame, find_confirm_study, verdict
    from ..report import front_frame, gain_line, objective_names, trials_frame
    from ..rungs import pruning_diagnosis, pruning_lines

    trials = trials_frame(study)
    counts = trials["state"].value_counts().to_dict() if len(trials) else {}
    print(
        f"\nstudy {study.study_name!r}: {len(trials)} trials "
        + ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items()))
    )
    record = schema.supernet_record(study)
    if record is not None:
        print(
            f"supernet: {record['epochs']} epochs of {record['train_images']:,} training images "
            f"({record['image_epochs']:,} image-epochs, {record['steps']:,} steps, "
            f"{record['seconds']:,.0f} s), {record['sampling']} path sampling. Trial values are "
            "its estimates (shared weights, BatchNorm re-estimated per architecture): `nas "
            "confirm` trains the front stand-alone"
        )
    names = objective_names(study)
    if len(trials):
        trials["note"] = [
            "; ".join(
                part
                for part in (
                    f"baseline {row.baseline}" if row.baseline else "",
                    "tied with the front" if row.tied_with_front else "",
                    row.note,
                )
                if part
            )
            for row in trials.itertuples()
        ]
    shown_columns = ["trial", "state", "summary", names[0], "val_acc_se", *names[1:]]
    trials = trials[[*shown_columns, "epochs", "note"]].rename(columns={"val_acc_se": "± s.e."})
    shown = trials if all_trials else trials.tail(20)
    with pd.option_context("display.max_colwidth", 90, "display.width", 200):
        if len(shown):
            print(shown.to_string(index=False, float_format=lambda v: f"{v:,.4g}"))
        front = front_frame(study)
        front = front[[c for c in (*shown_columns, "epochs") if c in front.columns]]
        print(f"\nPareto front ({len(front)} architectures):")
        if len(front):
            front = front.rename(columns={"val_acc_se": "± s.e."})
            print(front.to_string(index=False, float_format=lambda v: f"{v:,.4g}"))
    diagnosis = facts["pruning"] if facts else pruning_diagnosis(study)
    for line in (gain_line(study), *pruning_lines(diagnosis)):
        if line:
            print(f"\n{line}")
    if schema.confirm_plan(study) is not None:
        print(f"\n{verdict(confirm_frame(study))}")
        return
    confirm = find_confirm_study(study)
    if confirm is not None:
        print(f"confirmation ({confirm.study_name!r}): {verdict(confirm_frame(confirm, study))}")


def _add_train(commands: Commands) -> None:
    train = commands.add_parser(
        "train",
        help="retrain an exported architecture on the full train split and report test accuracy",
    )
    train.add_argument("arch", type=Path, help="an exported arch.json (or its folder)")
    train.add_argument("--epochs", type=int, help="training epochs (default: the study's)")
    train.add_argument(
        "--config",
        type=Path,
        help="a study config (.toml) for data and training settings (default: the config.json "
        "exported next to arch.json)",
    )
    train.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    train.add_argument("--out", type=Path, help="output folder (default: <arch folder>/retrained/)")
    train.add_argument(
        "--accelerator", default="auto", help="cpu, gpu or auto (default: gpu when available)"
    )
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(run=_train)


def _train(args: argparse.Namespace) -> int:
    from ..config import StudyConfig
    from ..retrain import retrain

    config = StudyConfig.load(args.config) if args.config else None
    metrics = retrain(
        args.arch,
        epochs=args.epochs,
        config=config,
        seed=args.seed,
        out_dir=args.out,
        accelerator=args.accelerator,
        progress=not args.no_progress,
    )
    print(
        f"test accuracy {metrics['test_acc']:.4f} (test loss {metrics['test_loss']:.4f}) on "
        f"{metrics['test_size']:,} held-out test images after {metrics['epochs']} epochs on "
        f"{metrics['train_size']:,} training images"
    )
    arch_dir = args.arch if args.arch.is_dir() else args.arch.parent
    print(f"wrote {args.out or arch_dir / 'retrained'}/ (weights.pt, metrics.json)")
    return 0


def _add_blocks(commands: Commands) -> None:
    blocks = commands.add_parser("blocks", help="the attention blocks and their parameters")
    blocks.set_defaults(run=_blocks)


def _blocks(args: argparse.Namespace) -> int:
    rows = []
    for name in attn_blocks.available():
        info = attn_blocks.info(name)
        params = ", ".join(
            f"{p.name}={p.default!r}" + (f" (search {list(p.search)})" if p.search else "")
            for p in info.params
        )
        rows.append(
            {"block": name, "family": info.family, "parameters": params or "-", "paper": info.paper}
        )
    with pd.option_context("display.max_colwidth", 80, "display.width", 220):
        print(pd.DataFrame(rows).to_string(index=False))
    return 0


def _add_schema(commands: Commands) -> None:
    schema = commands.add_parser(
        "schema", help="the JSON schema of a study config (.toml), for editors and validators"
    )
    schema.add_argument("--out", type=Path, help="write it to this file (default: print it)")
    schema.set_defaults(run=_schema)


def _schema(args: argparse.Namespace) -> int:
    import json

    from ..config import json_schema

    text = json.dumps(json_schema(), indent=2) + "\n"
    if args.out is None:
        print(text, end="")
        return 0
    args.out.write_text(text)
    print(f"wrote {args.out}")
    return 0


def _add_doctor(commands: Commands) -> None:
    doctor = commands.add_parser(
        "doctor",
        help="check a study's journal file and repair a damaged one (keeps a backup)",
    )
    doctor.add_argument("study", help="a study config (.toml), a study name, or a journal file")
    doctor.add_argument(
        "--runs-dir",
        default="studies/runs",
        help="where studies named without a config live (default studies/runs)",
    )
    doctor.set_defaults(run=_doctor)


def _doctor(args: argparse.Namespace) -> int:
    import optuna

    from ..config import StudyConfig, StudySection
    from ..journal import repair_journal
    from ..storage import is_database, open_storage, redact

    if args.study.endswith(".toml"):
        url = StudyConfig.load(args.study).study.storage_url()
    elif is_database(args.study) or Path(args.study).is_file():
        url = args.study
    else:
        url = StudySection(name=args.study, runs_dir=args.runs_dir).storage_url()
    if is_database(url):
        raise ValueError(
            f"{redact(url)} is a database: `nas doctor` repairs journal files; check a "
            "database with its own tools"
        )
    print(f"{url}: {repair_journal(url).describe()}")
    storage = open_storage(url, must_exist=True)
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        print(f"study {summary.study_name!r}: {summary.n_trials} trials, readable")
    return 0
