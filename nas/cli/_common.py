"""What several sub-commands share: the study arguments, the reference point, loading a study."""

from __future__ import annotations

import argparse

Commands = argparse._SubParsersAction


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
        "(default: val_acc of the worst complete baseline, or of the worst complete trial, "
        "and 1.1 x the largest cost measured; val_acc=0 gives the old, absolute reference)",
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

    from ..config import StudyConfig, StudySection
    from ..storage import open_storage, redact

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
