"""The ``nas`` command: search, worker, status, confirm, report, dashboard, export, train, blocks,
schema, doctor, table.

A thin layer: each sub-command parses its arguments and calls the engine (``nas.worker``,
``nas.study``, ``nas.confirm``, ``nas.report``, ``nas.export``, ``nas.retrain``); errors the
user can fix are printed as one line with exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

import attn_blocks


def build_parser() -> argparse.ArgumentParser:
    """The ``nas`` argument parser: one sub-command per job, each bound to its function."""
    parser = argparse.ArgumentParser(prog="nas", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for add in (
        _add_search,
        _add_worker,
        _add_status,
        _add_confirm,
        _add_report,
        _add_dashboard,
        _add_export,
        _add_train,
        _add_blocks,
        _add_schema,
        _add_doctor,
        _add_table,
    ):
        add(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .study import quiet_third_party_output
    from .worker import WorkerStopped

    quiet_third_party_output()
    try:
        return args.run(args)
    except (KeyboardInterrupt, WorkerStopped) as exc:
        why = "interrupted" if isinstance(exc, KeyboardInterrupt) else str(exc)
        print(
            f"\n{why}: completed trials are stored; re-run the same command to resume",
            file=sys.stderr,
        )
        return 130 if isinstance(exc, KeyboardInterrupt) else 143
    except (ValueError, RuntimeError, FileNotFoundError, ImportError) as exc:
        print(f"nas {args.command}: error: {exc}", file=sys.stderr)
        return 2


# -- the sub-commands' arguments ----------------------------------------------------------------

Commands = argparse._SubParsersAction


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


def _add_worker(commands: Commands) -> None:
    worker = commands.add_parser(
        "worker", help="join an existing study (its config is stored with it) from any machine"
    )
    worker.add_argument("--storage", required=True, help="the study's storage URL")
    worker.add_argument("--study", required=True, help="the study name")
    worker.add_argument("--workers", type=int, default=1, help="local worker processes")
    worker.add_argument("--no-progress", action="store_true", help="no progress bars")
    worker.set_defaults(run=_worker)


def _add_status(commands: Commands) -> None:
    status = commands.add_parser("status", help="trials so far and the current Pareto front")
    _study_arguments(status)
    status.add_argument("--all", action="store_true", help="list every trial, not just the last 20")
    status.set_defaults(run=_status)


def _add_confirm(commands: Commands) -> None:
    confirm = commands.add_parser(
        "confirm",
        help="retrain the best front architectures and the baselines with fresh seeds: "
        "intervals, paired tests against none, the confirmed front",
    )
    _study_arguments(confirm)
    confirm.add_argument(
        "--top", type=int, default=3, help="most accurate front architectures to repeat (3)"
    )
    confirm.add_argument("--seeds", type=int, default=5, help="seeds per architecture (5)")
    confirm.add_argument(
        "--name", help="the confirm study's name (default <study>-confirm, in the same storage)"
    )
    confirm.add_argument("--workers", type=int, default=1, help="local worker processes (1)")
    confirm.add_argument("--no-progress", action="store_true", help="no progress bars")
    confirm.set_defaults(run=_confirm)


def _add_report(commands: Commands) -> None:
    report = commands.add_parser(
        "report",
        help="trials table, Pareto front and hypervolume as CSV/JSON files",
    )
    _study_arguments(report)
    report.add_argument(
        "--out", type=Path, help="output folder (default: <runs_dir>/<study>/report/)"
    )
    _reference_argument(report)
    report.add_argument(
        "--html", action="store_true", help="also write the HTML dashboard (dashboard.html)"
    )
    report.set_defaults(run=_report)


def _add_dashboard(commands: Commands) -> None:
    dashboard = commands.add_parser(
        "dashboard",
        help="optuna-dashboard on the study's storage, or (--html) one offline HTML file",
    )
    _study_arguments(dashboard)
    dashboard.add_argument(
        "--html", type=Path, metavar="PATH", help="write the self-contained dashboard to PATH"
    )
    _reference_argument(dashboard)
    dashboard.add_argument("--host", default="127.0.0.1", help="optuna-dashboard host")
    dashboard.add_argument("--port", type=int, default=8080, help="optuna-dashboard port")
    dashboard.set_defaults(run=_dashboard)


def _add_export(commands: Commands) -> None:
    export = commands.add_parser(
        "export",
        help="write arch.json, weights, ONNX, TorchScript and a model card per architecture",
    )
    _study_arguments(export)
    chosen = export.add_mutually_exclusive_group(required=True)
    chosen.add_argument("--trial", type=int, action="append", help="a trial number; repeatable")
    chosen.add_argument(
        "--pareto",
        action="store_true",
        help="every architecture on the front: the confirmed front where `nas confirm` ran",
    )
    export.add_argument(
        "--arch-only",
        action="store_true",
        help="write only arch.json and config.json (any trial, also pruned or dominated ones), "
        "for `nas train`",
    )
    export.add_argument(
        "--search-front",
        action="store_true",
        help="with --pareto: the search's front even where `nas confirm` gave a confirmed one",
    )
    export.add_argument(
        "--out", type=Path, help="output folder (default: <runs_dir>/<study>/export/)"
    )
    export.set_defaults(run=_export)


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


def _add_blocks(commands: Commands) -> None:
    blocks = commands.add_parser("blocks", help="the attention blocks and their parameters")
    blocks.set_defaults(run=_blocks)


def _add_schema(commands: Commands) -> None:
    schema = commands.add_parser(
        "schema", help="the JSON schema of a study config (.toml), for editors and validators"
    )
    schema.add_argument("--out", type=Path, help="write it to this file (default: print it)")
    schema.set_defaults(run=_schema)


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


# -- the sub-commands ----------------------------------------------------------------------------


def _search(args: argparse.Namespace) -> int:
    import dataclasses

    from .config import StudyConfig
    from .worker import run_search

    cfg = StudyConfig.load(args.config)
    if args.n_trials is not None:
        cfg = dataclasses.replace(cfg, study=dataclasses.replace(cfg.study, n_trials=args.n_trials))
    print(
        f"study {cfg.study.name!r}: {cfg.study.n_trials} trials, space of "
        f"{cfg.space.size():,} architectures, objectives {cfg.objectives.names} "
        f"({', '.join(cfg.objectives.directions)})"
    )
    if cfg.search.strategy == "supernet":
        epochs = cfg.search.supernet_epochs or cfg.training.epochs
        print(
            f"strategy supernet: one supernet trained for {epochs} epochs "
            f"({cfg.search.sampling} paths), then every trial evaluated on it"
        )
    study = run_search(
        cfg, storage=args.storage, workers=args.workers, progress=not args.no_progress
    )
    _print_summary(study)
    return 0


def _worker(args: argparse.Namespace) -> int:
    from .worker import join_study

    study = join_study(
        args.storage, args.study, workers=args.workers, progress=not args.no_progress
    )
    _print_summary(study)
    return 0


def _study_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("study", help="a study config (.toml) or a study name")
    parser.add_argument(
        "--storage",
        help="Optuna storage URL (default: the config's, else studies/runs/<name>/journal.log)",
    )
    parser.add_argument(
        "--runs-dir",
        default="studies/runs",
        help="where studies named without a config live (default studies/runs)",
    )


def _reference_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--reference",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="hypervolume reference (worst) value of an objective, e.g. flops=5e6; repeatable "
        "(default: val_acc=0 and 1.1 x the largest cost measured)",
    )


def _reference_overrides(items: list[str]) -> dict[str, float]:
    overrides = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            overrides[name] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise ValueError(f"--reference {item!r}: use NAME=NUMBER, e.g. flops=5e6")
    return overrides


def _load_study(args: argparse.Namespace):
    """The study a ``study`` argument names, and its study section (runs_dir, name)."""
    import optuna

    from .config import StudyConfig, StudySection
    from .storage import open_storage, redact

    if args.study.endswith(".toml"):
        section = StudyConfig.load(args.study).study
    else:
        section = StudySection(name=args.study, runs_dir=args.runs_dir)
    url = args.storage or section.storage_url()
    try:
        study = optuna.load_study(
            study_name=section.name, storage=open_storage(url, must_exist=True)
        )
    except KeyError:
        raise ValueError(f"no study named {section.name!r} in {redact(url)}") from None
    return study, section


def _status(args: argparse.Namespace) -> int:
    study, _ = _load_study(args)
    _print_summary(study, all_trials=args.all)
    return 0


def _confirm(args: argparse.Namespace) -> int:
    from . import trial_schema as schema
    from .config import StudyConfig
    from .confirm import confirm_frame, prepare_confirm
    from .worker import run_search

    study, section = _load_study(args)
    given = StudyConfig.load(args.study) if args.study.endswith(".toml") else None
    url = args.storage or section.storage_url()
    confirm, cfg = prepare_confirm(
        study, url, top=args.top, seeds=args.seeds, given=given, name=args.name
    )
    plan = schema.confirm_plan(confirm)
    print(
        f"confirm study {confirm.study_name!r}: {len(plan['architectures'])} architectures x "
        f"{len(plan['seeds'])} seeds = {cfg.study.n_trials} trainings of "
        f"{cfg.training.epochs} epochs ({', '.join(plan['architectures'])})"
    )
    confirm = run_search(cfg, storage=url, workers=args.workers, progress=not args.no_progress)
    frame = confirm_frame(confirm, study)
    out = Path(section.runs_dir) / section.name / "report"
    out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out / "confirm.csv", index=False)
    _print_confirmation(frame)
    print(f"wrote {out / 'confirm.csv'}")
    return 0


def _table_build(args: argparse.Namespace) -> int:
    from .config import StudyConfig
    from .tabular import export_table, prepare_table
    from .worker import run_search

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
    from .tabular import export_table

    study, _ = _load_study(args)
    data = export_table(study, args.out)
    print(
        f"wrote {args.out}: {data['built']['runs']} runs of {len(data['architectures'])} "
        f"architectures (space of {data['space_size']}, {len(data['seeds'])} seeds)"
    )
    return 0


def _table_summary(args: argparse.Namespace) -> int:
    from .tabular import load_table, table_noise

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
        f"median run {noise['median_run_seconds']:.1f} s; the whole space x seeds projects to "
        f"{noise['projected_build_hours']:.2f} h on the machine that built it"
    )
    return 0


def _table_rebuild(args: argparse.Namespace) -> int:
    from .tabular import load_table, rebuild_run

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


def _print_confirmation(frame: pd.DataFrame) -> None:
    """The confirm table, accuracies in percent with their 95% intervals (beside the search's
    single run of each), and the verdict."""
    from .confirm import verdict

    def pct(row: pd.Series, mean_column: str, prefix: str) -> str:
        mean, low, high = row[mean_column], row[f"{prefix}_low"], row[f"{prefix}_high"]
        if pd.isna(mean):
            return "-"
        if pd.isna(low):
            return f"{100 * mean:.2f}"
        return f"{100 * mean:.2f} [{100 * low:.2f}, {100 * high:.2f}]"

    estimated = "search_estimate" in frame and (frame["search_estimate"] == "supernet").any()
    search_column = "supernet val_acc %" if estimated else "search val_acc %"
    rows = [
        {
            "architecture": row["architecture"],
            "seeds": row["seeds"],
            search_column: "-"
            if pd.isna(row["search_val_acc"])
            else f"{100 * row['search_val_acc']:.2f}",
            "val_acc % [95% CI]": pct(row, "val_acc_mean", "val_acc"),
            "test_acc % [95% CI]": pct(row, "test_acc_mean", "test_acc"),
            "gain vs none (points)": pct(row, "gain_vs_none", "gain_vs_none"),
            "p (Holm)": "-" if pd.isna(row["p_holm"]) else f"{row['p_holm']:.3g}",
            "vs none": row["vs_none"] or "-",
            "confirmed front": "yes" if row["on_confirmed_front"] else "",
            "summary": row["summary"],
        }
        for _, row in frame.iterrows()
    ]
    with pd.option_context("display.max_colwidth", 70, "display.width", 250):
        print(pd.DataFrame(rows).to_string(index=False))
    print(verdict(frame))


def _report(args: argparse.Namespace) -> int:
    import json

    from .report import Reference, write_report

    overrides = _reference_overrides(args.reference)
    study, section = _load_study(args)
    out = args.out or Path(section.runs_dir) / section.name / "report"
    paths = write_report(study, out, overrides)
    if args.html:
        from .dashboard import write_dashboard
        from .report import reference_point

        paths["dashboard"] = write_dashboard(
            study, out / "dashboard.html", reference_point(study, overrides)
        )
    facts = json.loads(paths["summary"].read_text())
    reference = Reference(**{k: tuple(v) for k, v in facts["reference"].items()})
    _print_summary(study)
    print(
        f"\nhypervolume {facts['hypervolume']:.6g} (normalised {facts['hypervolume_norm']:.4f}) "
        f"against the reference point {reference.describe()}; "
        f"{facts['epochs_spent']} training epochs spent"
    )
    for path in paths.values():
        print(f"wrote {path}")
    return 0


def _dashboard(args: argparse.Namespace) -> int:
    from .dashboard import serve_optuna_dashboard, write_dashboard
    from .report import reference_point

    overrides = _reference_overrides(args.reference)
    study, section = _load_study(args)
    if args.html:
        reference = reference_point(study, overrides)
        path = write_dashboard(study, args.html, reference)
        print(f"wrote {path} (self-contained: opens offline in any browser)")
        return 0
    print(f"optuna-dashboard at http://{args.host}:{args.port}/ (Ctrl-C stops it)")
    from .artifacts import open_artifact_store

    store = open_artifact_store(section.artifacts_url(), section.artifacts_endpoint)
    serve_optuna_dashboard(
        args.storage or section.storage_url(), host=args.host, port=args.port, artifact_store=store
    )
    return 0


def _export(args: argparse.Namespace) -> int:
    from .export import export_arch, export_confirmed_front, export_trials

    study, section = _load_study(args)
    out = args.out or Path(section.runs_dir) / section.name / "export"
    if args.arch_only:
        if args.pareto:
            raise ValueError("--arch-only takes --trial N (one or more), not --pareto")
        folders = [export_arch(study, number, out) for number in args.trial]
    elif (
        args.pareto and not args.search_front and (confirmed := export_confirmed_front(study, out))
    ):
        folders, what = confirmed
        print(f"exported {what}; --search-front exports the search's own front instead")
    else:
        folders = export_trials(study, out, trials=args.trial, pareto=args.pareto)
        if args.pareto:
            print(f"exported the search's Pareto front of {study.study_name!r} (single runs)")
    for folder in folders:
        print(f"wrote {folder}/ ({', '.join(sorted(p.name for p in folder.iterdir()))})")
    return 0


def _train(args: argparse.Namespace) -> int:
    from .config import StudyConfig
    from .retrain import retrain

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


def _print_summary(study, all_trials: bool = False) -> None:
    """Trials and front, accuracy with its binomial standard error (``± s.e.``); baselines
    and the trials tied with the front are named in ``note``; then the gain over ``none``."""
    from . import trial_schema as schema
    from .confirm import confirm_frame, find_confirm_study, verdict
    from .report import front_frame, gain_line, objective_names, trials_frame

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
    line = gain_line(study)
    if line:
        print(f"\n{line}")
    if schema.confirm_plan(study) is not None:
        print(f"\n{verdict(confirm_frame(study))}")
        return
    confirm = find_confirm_study(study)
    if confirm is not None:
        print(f"confirmation ({confirm.study_name!r}): {verdict(confirm_frame(confirm, study))}")


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


def _doctor(args: argparse.Namespace) -> int:
    import optuna

    from .config import StudyConfig, StudySection
    from .journal import repair_journal
    from .storage import is_database, open_storage, redact

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


def _schema(args: argparse.Namespace) -> int:
    import json

    from .config import json_schema

    text = json.dumps(json_schema(), indent=2) + "\n"
    if args.out is None:
        print(text, end="")
        return 0
    args.out.write_text(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
