"""Sub-commands that review what a study found: confirm, report, dashboard, export."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from ._common import (
    Commands,
    _load_study,
    _reference_argument,
    _reference_overrides,
    _study_arguments,
)
from .running import _print_summary


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
    confirm.add_argument(
        "--seeds",
        type=_seeds,
        default=5,
        help="seeds per architecture (5), or auto: looks in rounds up to --max-seeds, adding "
        "seeds only to the architectures whose verdict against none is undecided",
    )
    confirm.add_argument(
        "--max-seeds",
        type=int,
        help="the budget of a sequential design: seeds per architecture at most (--seeds N "
        "--max-seeds M starts with N; --seeds auto with 3)",
    )
    confirm.add_argument(
        "--comparison",
        choices=("dunnett", "holm"),
        help="dunnett (default): one residual variance pooled over architectures x seeds, "
        "Dunnett's many-to-one test against none; holm: per-architecture intervals and "
        "Holm-adjusted paired t-tests",
    )
    confirm.add_argument(
        "--name", help="the confirm study's name (default <study>-confirm, in the same storage)"
    )
    confirm.add_argument("--workers", type=int, default=1, help="local worker processes (1)")
    confirm.add_argument("--no-progress", action="store_true", help="no progress bars")
    confirm.set_defaults(run=_confirm)


def _seeds(value: str) -> int | str:
    """``--seeds``: an int, or ``auto``."""
    if value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"an int >= 2 or auto, got {value!r}") from None


def _confirm(args: argparse.Namespace) -> int:
    from .. import trial_schema as schema
    from ..config import StudyConfig
    from ..confirm import (
        confirm_frame,
        gave_up,
        gave_up_message,
        prepare_confirm,
        run_confirm,
        unfinished,
        write_table,
    )
    from ..worker import run_search

    study, section = _load_study(args)
    given = StudyConfig.load(args.study) if args.study.endswith(".toml") else None
    url = args.storage or section.storage_url()
    confirm, cfg = prepare_confirm(
        study,
        url,
        top=args.top,
        seeds=args.seeds,
        max_seeds=args.max_seeds,
        comparison=args.comparison,
        given=given,
        name=args.name,
    )
    plan = schema.confirm_plan(confirm)
    looks = plan["looks"]
    design = (
        f"{looks[0]} seeds"
        if len(looks) == 1
        else f"{looks[0]} seeds, then more for the undecided up to {looks[-1]} (looks at "
        f"{', '.join(map(str, looks))} seeds)"
    )
    print(
        f"confirm study {confirm.study_name!r}: {len(plan['architectures'])} architectures x "
        f"{design}: {cfg.study.n_trials} trainings of {cfg.training.epochs} epochs queued "
        f"({', '.join(plan['architectures'])})"
    )

    def run(cfg):
        return run_search(cfg, storage=url, workers=args.workers, progress=not args.no_progress)

    confirm, why = run_confirm(confirm, cfg, url, run)
    if stuck := gave_up(confirm):
        raise RuntimeError(gave_up_message(confirm.study_name, stuck))
    frame = confirm_frame(confirm, study)
    path = Path(section.runs_dir) / section.name / "report" / "confirm.csv"
    left = len(unfinished(confirm))
    if left:
        print(f"partial table: {left} planned run(s) are unfinished (held by another worker?)")
    _print_confirmation(frame, looks)
    if why:
        print(f"stopped: {why}")
    if left:  # a partial table never replaces a complete one
        print(f"{path} not written (partial); run the same command again once they finish")
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    print(f"wrote {write_table(frame, path)}")
    return 0


def _print_confirmation(frame: pd.DataFrame, looks: list[int] | None = None) -> None:
    """The confirm table, accuracies in percent with their 95% intervals (beside the search's
    single run of each), the verdict, the model and the seed figures."""
    from ..confirm import model_line, power_line, verdict

    if frame.empty:
        print("no complete repeat yet")
        return

    def pct(row: pd.Series, mean_column: str, prefix: str) -> str:
        mean, low, high = row[mean_column], row[f"{prefix}_low"], row[f"{prefix}_high"]
        if pd.isna(mean):
            return "-"
        if pd.isna(low):
            return f"{100 * mean:.2f}"
        return f"{100 * mean:.2f} [{100 * low:.2f}, {100 * high:.2f}]"

    estimated = "search_estimate" in frame and (frame["search_estimate"] == "supernet").any()
    search_column = "supernet val_acc %" if estimated else "search val_acc %"
    confidence = frame["gain_confidence"].dropna()
    gain_ci = f"{100 * confidence.iloc[0]:.3g}% CI" if len(confidence) else "95% CI"
    method = "Dunnett" if (frame["comparison"] == "dunnett").any() else "Holm"
    rows = [
        {
            "architecture": row["architecture"],
            "seeds": row["seeds"],
            search_column: "-"
            if pd.isna(row["search_val_acc"])
            else f"{100 * row['search_val_acc']:.2f}",
            "val_acc % [95% CI]": pct(row, "val_acc_mean", "val_acc"),
            "test_acc % [95% CI]": pct(row, "test_acc_mean", "test_acc"),
            f"gain vs none, points [{gain_ci}]": pct(row, "gain_vs_none", "gain_vs_none"),
            f"p ({method})": "-" if pd.isna(row["p_adjusted"]) else f"{row['p_adjusted']:.3g}",
            "vs none": row["vs_none"] or "-",
            "confirmed front": "yes" if row["on_confirmed_front"] else "",
            "summary": row["summary"],
        }
        for _, row in frame.iterrows()
    ]
    with pd.option_context("display.max_colwidth", 70, "display.width", 250):
        print(pd.DataFrame(rows).to_string(index=False))
    print(verdict(frame))
    for line in (model_line(frame, looks), power_line(frame)):
        if line:
            print(line)


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


def _report(args: argparse.Namespace) -> int:
    import json

    from ..report import Reference, write_report

    overrides = _reference_overrides(args.reference)
    study, section = _load_study(args)
    out = args.out or Path(section.runs_dir) / section.name / "report"
    paths = write_report(study, out, overrides)
    facts = json.loads(paths["summary"].read_text())
    reference = Reference(**{k: tuple(v) for k, v in facts["reference"].items()})
    if args.html:
        from ..dashboard import write_dashboard

        paths["dashboard"] = write_dashboard(study, out / "dashboard.html", reference, facts)
    _print_summary(study, facts=facts)
    print(
        f"\nhypervolume {facts['hypervolume']:.6g} (normalised {facts['hypervolume_norm']:.4f}) "
        f"against the reference point {reference.describe()}; "
        f"{facts['epochs_spent']} training epochs spent"
    )
    for path in paths.values():
        print(f"wrote {path}")
    if left := facts.get("confirm", {}).get("unfinished_runs"):
        print(
            f"confirm.csv not written: {left} run(s) of {facts['confirm']['study']!r} are "
            "unfinished (nas confirm resumes them)"
        )
    return 0


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


def _dashboard(args: argparse.Namespace) -> int:
    from ..dashboard import serve_optuna_dashboard, write_dashboard
    from ..report import reference_point

    overrides = _reference_overrides(args.reference)
    study, section = _load_study(args)
    if args.html:
        reference = reference_point(study, overrides)
        path = write_dashboard(study, args.html, reference)
        print(f"wrote {path} (self-contained: opens offline in any browser)")
        return 0
    print(f"optuna-dashboard at http://{args.host}:{args.port}/ (Ctrl-C stops it)")
    from ..artifacts import open_artifact_store

    store = open_artifact_store(section.artifacts_url(), section.artifacts_endpoint)
    serve_optuna_dashboard(
        args.storage or section.storage_url(), host=args.host, port=args.port, artifact_store=store
    )
    return 0


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


def _export(args: argparse.Namespace) -> int:
    from ..export import export_arch, export_confirmed_front, export_trials

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
