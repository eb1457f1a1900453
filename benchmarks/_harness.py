"""What every benchmark script shares, so that a script holds only its problem and its measures.

* data: the shared data folder, the CIFAR-10 JPEG copy's ``data`` section, the quickstart study;
* the machine: CPU, versions, load average, how many cores other processes took, and which
  samples ran while the machine was quiet;
* a run's :class:`Session`: progress lines, total seconds and the machine facts of its results;
* the command line: the command a results file cites, presets, ``--out`` and ``--render``;
* Markdown: tables, and numbers with a mark where a value is missing;
* tests over seeds: paired t-tests Holm-adjusted over a family, and their table cells;
* results files: the Markdown report (title, command, date, machine, load) and its JSON twin;
* the run log that makes a benchmark resumable (:mod:`benchmarks._runlog`: ``read_runs``,
  ``run_log``).

Scripts are run as ``python benchmarks/<name>.py``, which puts only this folder on ``sys.path``:
each one first puts the repository root there and then imports ``benchmarks._harness``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import multiprocessing
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from benchmarks._runlog import read_runs as read_runs
from benchmarks._runlog import run_log as run_log
from benchmarks._runlog import runs_file as runs_file
from nas.stats import holm_adjust, paired_comparison
from nas.study import quiet_third_party_output
from nas.tabular import Table, load_table

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
CIFAR_ARCHIVE = "cifar10-jpeg.tar.gz"
#: Confidence of the intervals and level of the tests over seeds.
CONFIDENCE = 0.95
ALPHA = 0.05
#: What a family of tests, or a list of samples, holds.
Key = TypeVar("Key")

# --- data --------------------------------------------------------------------------------------


def data_dir() -> Path:
    """The shared data folder: ``$ATTN_NAS_DATA``, else ``../shared/data`` beside the checkout."""
    return Path(os.environ.get("ATTN_NAS_DATA", ROOT.parent / "shared" / "data"))


def cifar_archive() -> Path | None:
    """The CIFAR-10 JPEG archive, or None when the shared data folder does not hold it."""
    path = data_dir() / CIFAR_ARCHIVE
    return path if path.is_file() else None


def cifar10_data() -> dict[str, Any]:
    """The ``data`` section that reads the CIFAR-10 JPEG copy (batch 128, flip and crop); exits
    with where to put the archive when it is missing."""
    archive = cifar_archive()
    if archive is None:
        raise SystemExit(
            f"--data cifar10 needs {data_dir() / CIFAR_ARCHIVE} (set ATTN_NAS_DATA to the "
            "folder holding it), or run with --data digits"
        )
    return {"name": "imagefolder", "root": str(archive), "batch_size": 128, "augment": "flip_crop"}


def quickstart_study(name: str, runs_dir: str, trials: int, epochs: int) -> dict[str, Any]:
    """``studies/quickstart.toml`` as a dict, named ``name`` in ``runs_dir``, running ``trials``
    sampled trials (random sampler, no pruning, no baselines) of ``epochs`` epochs: every trial
    trains the full budget, as in the committed runs."""
    data = tomllib.loads((ROOT / "studies" / "quickstart.toml").read_text())
    data["study"].update(name=name, runs_dir=runs_dir, n_trials=trials, sampler="random")
    data["training"]["epochs"] = epochs
    data["pruning"] = {"pruner": "none"}
    data["evaluation"] = {"baselines": False}
    return data


# --- the machine -------------------------------------------------------------------------------


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def load_average() -> float | None:
    """The 1-minute load average: above the threads in use, other processes shared the CPU."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def describe() -> dict[str, Any]:
    """Platform, CPU, cores, torch threads, GPU and the versions that shape the timings."""
    import lightning
    import optuna

    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "optuna": optuna.__version__,
    }


def machine_line(info: Mapping[str, Any], *, gpu: bool = False) -> str:
    """The ``Machine:`` line of a results file from :func:`describe`'s ``info`` (with the GPU,
    or ``none``, where ``gpu``)."""
    shown_gpu = f", GPU: {info['gpu'] or 'none'}" if gpu else ""
    return (
        f"Machine: {info['platform']}, {info['cpu']}, {info['cores']} cores (torch threads "
        f"{info['torch_threads']}){shown_gpu}; Python {info['python']}, torch {info['torch']}, "
        f"lightning {info['lightning']}, optuna {info['optuna']}"
    )


#: A CPU snapshot: (wall s, busy CPU s of the whole machine or None, CPU s of this process).
Snapshot = tuple[float, float | None, float]


def cpu_snapshot() -> Snapshot:
    """Wall clock, the machine's busy CPU seconds (``/proc/stat``; None where unreadable) and
    this process's CPU seconds, for :func:`others_cores`."""
    busy: float | None = None
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
        # user nice system idle iowait irq softirq steal (guest time is already in user)
        busy = (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        pass
    return time.perf_counter(), busy, time.process_time()


def others_cores(start: Snapshot, end: Snapshot) -> float | None:
    """Cores that other processes (and the hypervisor, as steal) took between two snapshots:
    the machine's busy CPU time minus this process's, per wall second. None where unknown."""
    wall = end[0] - start[0]
    if start[1] is None or end[1] is None or wall <= 0:
        return None
    return max(0.0, (end[1] - start[1] - (end[2] - start[2])) / wall)


#: A sample during which other processes took this many cores or more is "contended": on a
#: 2-core machine torch's threads then wait on each other and an epoch can take 10-30x longer.
QUIET_CORES = 0.25
#: Fewer quiet samples than this: use all of them and say the result is contended.
MIN_QUIET = 3


def quiet_samples(values: list[Key], others: list[float | None]) -> tuple[list[Key], bool]:
    """The samples taken while the machine was quiet (other processes took under
    :data:`QUIET_CORES`, or unknown), and False; or, when fewer than ``MIN_QUIET`` (or not all,
    for a handful) were, every sample and True (contended). ``others``: the cores other
    processes took during each sample (:func:`others_cores`)."""
    quiet = [v for v, o in zip(values, others, strict=True) if o is None or o < QUIET_CORES]
    if quiet and len(quiet) >= min(MIN_QUIET, len(values)):
        return quiet, False
    return values, True


class Session:
    """One benchmark run: its clock and the load average at its start, for progress lines, the
    total run time and the machine facts its results file states."""

    def __init__(self) -> None:
        self.load_start = load_average()
        self.started = time.perf_counter()

    def seconds(self) -> float:
        """Wall-clock seconds since the run started."""
        return time.perf_counter() - self.started

    def log(self, text: str) -> None:
        """A progress line on stderr, stamped with the minutes since the start."""
        print(f"[{self.seconds() / 60:5.1f} min] {text}", file=sys.stderr, flush=True)

    def machine(self, **overrides: Any) -> dict[str, Any]:
        """:func:`describe` with the load average at the start and now (and ``overrides``,
        e.g. the torch threads the measured part ran with)."""
        return {**describe(), "load_average": [self.load_start, load_average()], **overrides}


def start_session(threads: int) -> Session:
    """Quiet the third-party logs, give torch ``threads`` intra-op threads and start the run."""
    quiet_third_party_output()
    torch.set_num_threads(threads)
    return Session()


# --- the command line --------------------------------------------------------------------------


def command_line(script: str, argv: Sequence[str] | None, python: str = ".venv/bin/python") -> str:
    """The command a results file cites: ``python benchmarks/<script's name>`` and the arguments
    (``argv``, or the process's own where None), quoted for a shell."""
    args = sys.argv[1:] if argv is None else argv
    return shlex.join([python, f"benchmarks/{Path(script).name}", *args])


def apply_preset(args: argparse.Namespace, preset: Mapping[str, Any]) -> None:
    """Give each option of ``preset`` that the command line left unset (None) its preset value."""
    for name, value in preset.items():
        if getattr(args, name) is None:
            setattr(args, name, value)


def add_output_arguments(
    parser: argparse.ArgumentParser, default: Path, beside: str, render: str | None = None
) -> None:
    """``--out``: the results .md (``beside``: what is written next to it; ``-`` prints only).
    Where ``render`` names what a JSON rewrites, also ``--render JSON``, and ``--out`` is left
    None for the script to resolve: ``default``, or with ``--render`` the .md beside the JSON."""
    parser.add_argument(
        "--out",
        default=str(default) if render is None else None,
        help=f"results .md ({beside} beside it; default {default}); '-': print only",
    )
    if render is not None:
        parser.add_argument(
            "--render",
            metavar="JSON",
            help=f"run nothing: rewrite {render} from a results .json of this script (default "
            "--out: the .md beside it)",
        )


def table_parser(doc: str) -> argparse.ArgumentParser:
    """The arguments every benchmark read off a table shares: ``--table``, ``--n-boot`` (the
    bootstrap resamples of its intervals) and ``--out``; described by ``doc``'s first line."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--table", type=Path, required=True, help="a table file")
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--out", type=Path, required=True, help="results file (.md and .json)")
    return parser


def start_table_benchmark(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None, script: str
) -> tuple[argparse.Namespace, str, Session, Table]:
    """Parse ``argv``, cite the command, start a one-thread session and load ``--table``."""
    args = parser.parse_args(argv)
    command = command_line(script, argv)
    session = start_session(threads=1)
    return args, command, session, load_table(args.table)


def results_path(args: argparse.Namespace, default: Path) -> Path | None:
    """Where a script with :func:`add_output_arguments` writes: ``--out``, else the .md beside
    ``--render``'s JSON (where it has ``--render``), else ``default``; None for ``--out -``."""
    if args.out == "-":
        return None
    if args.out:
        return Path(args.out)
    render = getattr(args, "render", None)
    return Path(render).with_suffix(".md") if render else default


# --- Markdown ----------------------------------------------------------------------------------


def fmt(value: float | None, spec: str, missing: str = "-") -> str:
    """``value`` in the format ``spec``, or ``missing`` where it is None, NaN or infinite."""
    if value is None or not math.isfinite(value):
        return missing
    return format(value, spec)


def markdown_row(cells: Iterable[object]) -> str:
    """One table line: ``| a | b |``."""
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def markdown_rule(align: str, *, compact: bool = False) -> str:
    """The line under a table's header, one column per letter of ``align`` (``l``: left,
    ``r``: right); ``compact`` writes ``|---|---:|`` instead of ``| --- | ---: |``."""
    if set(align) - {"l", "r"}:
        raise ValueError(f"align takes only 'l' and 'r', got {align!r}")
    marks = ["---:" if a == "r" else "---" for a in align]
    return "|" + "|".join(marks) + "|" if compact else markdown_row(marks)


def markdown_table(
    header: Sequence[object],
    align: str,
    rows: Iterable[Sequence[object]],
    *,
    compact: bool = False,
) -> list[str]:
    """A Markdown table: the header, the rule (see :func:`markdown_rule`) and one line per row;
    raises ``ValueError`` where a row or the header has another number of cells than ``align``."""
    rows = list(rows)
    for cells in (header, *rows):
        if len(cells) != len(align):
            raise ValueError(f"{len(align)} columns, got a row of {len(cells)}: {list(cells)}")
    return [markdown_row(header), markdown_rule(align, compact=compact), *map(markdown_row, rows)]


# --- tests over seeds --------------------------------------------------------------------------


def holm_by_key(p_values: Mapping[Key, float]) -> dict[Key, float]:
    """The Holm-adjusted p-value of each test of a family, by the test's key."""
    adjusted = holm_adjust(list(p_values.values())) if p_values else []
    return dict(zip(p_values, adjusted, strict=True))


def compare_over_seeds(
    pairs: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    confidence: float = CONFIDENCE,
    alpha: float = ALPHA,
) -> dict[str, dict[str, Any]]:
    """For each name, ``a - b`` over the seeds: mean, its Student-t interval, the two-sided paired
    t-test's p-value and that p-value Holm-adjusted over every name with a test (two seeds or
    more); ``differs`` is ``p_adj < alpha``, or None where one seed allows no test (then only the
    one difference is given) or no seed was paired."""
    rows: dict[str, dict[str, Any]] = {}
    tested = {}
    for name, (a, b) in pairs.items():
        n = len(a)
        row: dict[str, Any] = {"n": n, "mean": None, "sd": None, "low": None, "high": None}
        row.update(confidence=confidence, t=None, p_value=None, p_adj=None, differs=None)
        row["family"] = None
        if n == 1:
            row["mean"] = float(a[0]) - float(b[0])
        elif n >= 2:
            comparison = paired_comparison(a, b, confidence)
            row.update(comparison.to_dict())
            row["t"] = None if math.isnan(comparison.t) else comparison.t
            tested[name] = comparison.p_value
        rows[name] = row
    for name, p_adj in holm_by_key(tested).items():
        rows[name].update(p_adj=p_adj, differs=bool(p_adj < alpha), family=len(tested))
    return rows


NO_TEST = "n/a (one seed: no test possible)"


def comparison_cells(test: Mapping[str, Any], shift: float = 0.0, spec: str = "+.4f") -> list[str]:
    """Table cells of one :func:`compare_over_seeds` row: seeds, mean, interval, t, p, p_adj and
    whether it differs (``shift`` added to the mean and the interval, shown in ``spec``)."""

    def show(value: float | None) -> str:
        return "-" if value is None else fmt(value + shift, spec)

    interval = "-" if test["low"] is None else f"[{show(test['low'])}, {show(test['high'])}]"
    if test["n"] < 2:
        differs = NO_TEST if test["n"] == 1 else "n/a (no seed paired)"
    else:
        differs = "yes" if test["differs"] else "no"
    return [
        str(test["n"]),
        show(test["mean"]),
        interval,
        fmt(test["t"], ".2f"),
        fmt(test["p_value"], ".3f"),
        fmt(test["p_adj"], ".3f"),
        differs,
    ]


def undefined_t_note(tests: Iterable[Mapping[str, Any]]) -> list[str]:
    """A note under a table of :func:`compare_over_seeds` rows where some test had no spread."""
    if not any(t["n"] >= 2 and t["t"] is None for t in tests):
        return []
    return [
        "",
        "t `-` with two seeds or more: the difference is the same on every seed, so the t-test "
        "is undefined; p is taken as 1 for a zero difference (identical results), 0 otherwise.",
    ]


# --- results files -----------------------------------------------------------------------------


def utc_now() -> str:
    """The date a results file states: UTC, to the minute."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def results_head(title: str, facts: Sequence[str]) -> list[str]:
    """A results file's title and its facts (command, date, machine, ...), one per line (a
    Markdown hard break after each but the last), then a blank line."""
    return [f"# {title}", "", *(f"{fact}  " for fact in facts[:-1]), facts[-1], ""]


def provenance(command: str, date: str, info: Mapping[str, Any], load_note: str) -> list[str]:
    """The usual facts: command, date, machine and the load average at start / end (``info``:
    :meth:`Session.machine`), with ``load_note`` saying what that load means here."""
    start, end = info["load_average"]
    return [
        f"Command: `{command}`",
        f"Date: {date}",
        machine_line(info),
        f"1-minute load average at start / end: {start} / {end} ({load_note})",
    ]


def _json_value(value: Any) -> Any:
    """NumPy numbers as Python numbers, anything else JSON does not know (paths) as text."""
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return str(value)


def write_markdown(path: Path, lines: Sequence[str]) -> None:
    """``lines`` as a file (its folder made where missing), with a final newline."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def run_jobs(
    function: Callable[[Any], dict[str, Any]], jobs: Sequence[Any], workers: int, chunksize: int = 1
) -> Iterator[dict[str, Any]]:
    """``function`` of each job as it finishes: in this process, or in ``workers`` spawned ones
    (``function`` must then be importable: a module-level function of the script)."""
    if workers <= 1:
        yield from map(function, jobs)
        return
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        yield from pool.imap_unordered(function, jobs, chunksize=chunksize)


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """``data`` as indented JSON (its folder made where missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, default=_json_value) + "\n")


def results_record(
    command: str, date: str, info: Mapping[str, Any], raw: Mapping[str, Any]
) -> dict[str, Any]:
    """What a results JSON holds: the command, date and machine, then the script's ``raw``."""
    return {"command": command, "date": date, "machine": info, **raw}


def write_results(
    path: Path,
    *,
    title: str,
    command: str,
    info: Mapping[str, Any],
    load_note: str,
    body: Sequence[str],
    raw: Mapping[str, Any],
) -> tuple[Path, Path]:
    """``path`` (Markdown: :func:`results_head` with :func:`provenance`, then ``body``) and its
    ``.json`` twin (:func:`results_record` of ``raw``), dated now; returns both paths."""
    date = utc_now()
    write_markdown(path, [*results_head(title, provenance(command, date, info, load_note)), *body])
    json_path = path.with_suffix(".json")
    write_json(json_path, results_record(command, date, info, raw))
    return path, json_path
