"""Mutation score of the engine's logic: how many small plausible bugs the test suite catches.

mutmut writes one mutant per small change of a function (an operator flipped, an argument
dropped, a constant changed) and runs the tests that call that function on it: a failing test
kills the mutant, a mutant no test notices survives. Each module is tested by the test files of
:data:`SELECTION` (its own tests and those of what is built directly on it), in a work folder
of its own under ``.mutation/`` (mutmut reads its settings from the working folder's
pyproject.toml). The score of a module is killed / (checked mutants - equivalent ones), where an
equivalent mutant (``benchmarks/mutation_equivalent.toml``, each with its reasoning) changes no
behaviour any caller can see; a timeout counts as killed.

    python benchmarks/mutation.py                       # run every module, then the table
    python benchmarks/mutation.py --modules nas/pareto.py nas/pruning.py
    python benchmarks/mutation.py --recheck --modules nas/pareto.py  # survivors, after new tests
    python benchmarks/mutation.py --render              # the table from what has run
    python benchmarks/mutation.py --sample 200 --modules nas/stats.py  # a random 200 of them
    python benchmarks/mutation.py --render --before OLD/benchmarks/results/mutation.json

mutmut keeps each mutant's result in the module's work folder, so an interrupted run resumes
where it stopped; those results are also kept in ``benchmarks/results/mutation_state/`` (committed,
restored into a new work folder), so a run resumes on a fresh clone too. mutmut checks again the
mutants of every function whose source has changed since. ``--before`` takes the figures of a
run on an older checkout (this script copied into it) as the "before" column, kept in
``benchmarks/results/mutation.json``.

``--sample N`` checks only N mutants of each module, drawn at random (a fixed ``--seed``): the
score of a sample estimates the module's, given with its 95% Wilson interval. A "before" run on an
older checkout's tests, where every mutant would take hours, is sampled this way.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
EQUIVALENT = ROOT / "benchmarks" / "mutation_equivalent.toml"
WORK = ROOT / ".mutation"
#: Each mutant's result (mutmut's ``.meta`` files), kept with the results so a run resumes anywhere.
STATE = RESULTS / "mutation_state"
#: Each module (or package), in the order they run, with the test files that exercise it.
SELECTION = {
    "nas/pareto.py": ["tests/nas/test_pareto.py", "tests/nas/test_verdicts.py"],
    "nas/pruning.py": ["tests/nas/test_pruning.py", "tests/nas/test_rungs.py"],
    "nas/journal.py": ["tests/nas/test_journal.py", "tests/nas/test_journal_lock.py"],
    "nas/confirm": [
        "tests/nas/test_confirm_frame.py",
        "tests/nas/test_confirm_resume_checks.py",
        "tests/nas/test_confirm_lines.py",
        "tests/nas/test_confirm.py",
        "tests/nas/test_retries.py",
    ],
    "nas/stats.py": ["tests/nas/test_stats.py", "tests/nas/test_verdicts.py"],
    "nas/report.py": [
        "tests/nas/test_report.py",
        "tests/nas/test_pareto.py",
        "tests/nas/test_verdicts.py",
        "tests/nas/test_stored_study_compat.py",
    ],
    "nas/export": [
        "tests/nas/test_export_card.py",
        "tests/nas/test_export.py",
        "tests/nas/test_cli_export.py",
    ],
    "search_spaces/spec.py": [
        "tests/search_spaces/test_spec.py",
        "tests/search_spaces/test_space.py",
    ],
    "search_spaces/supernet.py": [
        "tests/search_spaces/test_supernet_contract.py",
        "tests/search_spaces/test_supernet.py",
        "tests/nas/test_supernet_study.py",
    ],
}
MODULES = tuple(SELECTION)
#: What a module's work folder links to: the packages, and what the tests read.
LINKED = ("nas", "search_spaces", "attn_blocks", "benchmarks", "studies", "tests")
#: A mutant that makes a test loop is stopped after 3 x its tests' usual time + 5 s (mutmut's
#: default, 15 x, spent minutes on each).
MUTMUT_SETTINGS = """
[tool.mutmut]
source_paths = ["nas", "search_spaces"]
only_mutate = [{only}]
also_copy = ["attn_blocks", "benchmarks", "studies"]
pytest_add_cli_args = ["-p", "no:cacheprovider"]
pytest_add_cli_args_test_selection = [{tests}]
process_isolation = "forkserver"
timeout_multiplier = 3.0
timeout_constant = 5.0
"""
TARGET = 0.85
KILLED = {"killed", "timeout", "caught by type check"}
SURVIVED = ("survived", "no tests")
#: Lists every mutant mutmut makes of the files given (run in a work folder: mutmut reads its
#: settings there on import), from their source, with mutmut's own generator; nothing is run.
_LIST_MUTANTS = """
import io, json, sys
from pathlib import Path
from mutmut.__main__ import write_all_mutants_to_file
from mutmut.utils.format_utils import get_mutant_name
names = []
for file in sys.argv[1:]:
    path = Path(file)
    made = write_all_mutants_to_file(out=io.StringIO(), source=path.read_text(), filename=path)
    names += [get_mutant_name(path, name) for name in made.mutant_names]
print(json.dumps(names))
"""


def work_folder(module: str) -> Path:
    """The module's mutmut folder: links to the project and a pyproject.toml that adds the
    module's mutmut settings to the project's own (pytest's among them)."""
    folder = WORK / _folder_name(module)
    folder.mkdir(parents=True, exist_ok=True)
    restore_state(module, folder)
    for name in LINKED:
        if not (folder / name).is_symlink():
            (folder / name).symlink_to(ROOT / name)
    only = module if module.endswith(".py") else f"{module}/*"
    # An older checkout (a "before" run) may lack test files added since: it runs those it has.
    tests = [t for t in SELECTION[module] if (ROOT / t).is_file()]
    settings = MUTMUT_SETTINGS.format(
        only=json.dumps(only), tests=", ".join(json.dumps(t) for t in tests)
    )
    pyproject = (ROOT / "pyproject.toml").read_text() + settings
    target = folder / "pyproject.toml"
    if not target.is_file() or target.read_text() != pyproject:
        target.write_text(pyproject)
    return folder


def _folder_name(module: str) -> str:
    return module.removesuffix(".py").replace("/", "-")


def restore_state(module: str, folder: Path) -> None:
    """Copy the kept results of ``module`` into a work folder that has none (a fresh clone)."""
    kept = STATE / _folder_name(module)
    for meta in kept.rglob("*.meta") if kept.is_dir() else ():
        target = folder / "mutants" / meta.relative_to(kept)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(meta, target)


def keep_state(module: str) -> None:
    """Copy the work folder's results of ``module`` to :data:`STATE`, to be committed."""
    mutants = WORK / _folder_name(module) / "mutants"
    kept = STATE / _folder_name(module)
    for meta in _metas(mutants / module):
        target = kept / meta.relative_to(mutants)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(meta, target)


def mutant_names(module: str) -> list[str]:
    """Every mutant of ``module`` (a file or a package), by name, sorted."""
    base = ROOT / module
    files = [base] if base.is_file() else sorted(base.rglob("*.py"))
    listing = subprocess.run(
        [sys.executable, "-c", _LIST_MUTANTS, *(_relative(f) for f in files)],
        cwd=work_folder(module),
        capture_output=True,
        text=True,
        check=True,
    )
    return sorted(json.loads(listing.stdout))


def sample_of(names: list[str], size: int, seed: int) -> list[str]:
    """``size`` of ``names`` drawn at random: the first ``size`` of one seeded shuffle, so a
    larger sample of the same seed contains a smaller one."""
    shuffled = sorted(names)
    random.Random(seed).shuffle(shuffled)
    return shuffled[:size]


def run(
    modules: list[str], recheck: bool = False, sample: int | None = None, seed: int = 0
) -> None:
    """Run mutmut on each module in turn; it skips mutants it has already checked. ``recheck``:
    check the surviving ones not judged equivalent again (after new tests), nothing else.
    ``sample``: check only that many of each module's mutants (:func:`sample_of`)."""
    for module in modules:
        names = []
        if recheck:
            equivalent = equivalent_mutants()
            names = [
                n for n, s in statuses(module).items() if s in SURVIVED and n not in equivalent
            ]
        elif sample is not None:
            found = statuses(module)
            chosen = sample_of(mutant_names(module), sample, seed)
            names = [n for n in chosen if found.get(n, "not checked") == "not checked"]
        if (recheck or sample is not None) and not names:
            continue
        print(f"== {module}" + (f": {len(names)} mutants" if names else ""), flush=True)
        try:
            subprocess.run(
                [sys.executable, "-m", "mutmut", "run", *names], cwd=work_folder(module), check=True
            )
        finally:
            keep_state(module)


def statuses(module: str) -> dict[str, str]:
    """Each mutant of ``module`` with its status (killed, survived, no tests, ...)."""
    from mutmut.stats import status_by_exit_code

    found: dict[str, str] = {}
    for meta in _metas(work_folder(module) / "mutants" / module):
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        found.update({name: status_by_exit_code[code] for name, code in codes.items()})
    return found


def _metas(base: Path) -> list[Path]:
    """mutmut's result files of a module (one file) or a package (a folder)."""
    metas = sorted(base.rglob("*.py.meta")) if base.is_dir() else [Path(f"{base}.meta")]
    return [meta for meta in metas if meta.is_file()]


def equivalent_mutants() -> dict[str, str]:
    """Mutants judged equivalent, each with its reason."""
    if not EQUIVALENT.is_file():
        return {}
    return {name: entry["why"] for name, entry in tomllib.loads(EQUIVALENT.read_text()).items()}


def wilson_interval(successes: int, trials: int, z: float = 1.959964) -> tuple[float, float]:
    """The 95% Wilson score interval of a proportion (Wilson 1927): it stays inside [0, 1] and
    keeps its coverage near 0 and 1, where a mutation score lies."""
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z / (1 + z * z / trials) * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials**2))
    return centre - half, centre + half


def score(
    found: dict[str, str], equivalent: dict[str, str], sample: list[str] | None = None
) -> dict:
    """The counts of one module and its score over its non-equivalent checked mutants; with
    ``sample`` (names), over those only, with the score's 95% interval and the sample's size."""
    mutants = len(found)
    if sample is not None:
        found = {name: found.get(name, "not checked") for name in sample}
    counts = Counter(found.values())
    killed = sum(counts[s] for s in KILLED)
    equal = sum(1 for name, status in found.items() if name in equivalent and status in SURVIVED)
    checked = len(found) - counts["not checked"]
    scored = checked - equal
    figures = {
        "mutants": mutants,
        "checked": checked,
        "killed": killed,
        "survived": counts["survived"],
        "no_tests": counts["no tests"],
        "equivalent": equal,
        "score": round(killed / scored, 4) if scored else None,
    }
    if sample is not None and scored:
        low, high = wilson_interval(killed, scored)
        figures |= {"sample": len(sample), "interval": [round(low, 4), round(high, 4)]}
    return figures


def _git_show(commit: str, path: Path) -> str | None:
    """The text of ``path`` (under :data:`ROOT`) at ``commit``; None where it has none."""
    shown = subprocess.run(
        ["git", "show", f"{commit}:{_relative(path)}"], cwd=ROOT, capture_output=True, text=True
    )
    return shown.stdout if shown.returncode == 0 else None


def _relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def figures_at(commit: str, module: str, equivalent: dict[str, str]) -> dict:
    """The figures of ``module`` from the results committed at ``commit`` (a first run, before
    tests were written for its survivors), scored with today's equivalent mutants: its kept
    results where that commit has them, else its counts and survivors from that commit's table."""
    from mutmut.stats import status_by_exit_code

    kept = STATE / _folder_name(module)
    listing = subprocess.run(
        ["git", "ls-tree", "-r", "--name-only", commit, f"{_relative(kept)}/"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    found: dict[str, str] = {}
    for name in listing:
        codes = json.loads(_git_show(commit, ROOT / name) or "{}")["exit_code_by_key"]
        found.update({key: status_by_exit_code[code] for key, code in codes.items()})
    if found:
        return {**score(found, equivalent), "at": commit}
    table = _git_show(commit, RESULTS / "mutation.md") or ""
    figures = json.loads(_git_show(commit, RESULTS / "mutation.json") or "{}")
    if module not in figures:
        raise ValueError(f"commit {commit} has no mutation results of {module}")
    counts = figures[module]["now"]
    dotted = module.removesuffix(".py").replace("/", ".") + "."
    survivors = [n for n in re.findall(r"^- `([^`]+)`$", table, re.M) if n.startswith(dotted)]
    equal = len(set(survivors) & set(equivalent))
    scored = counts["checked"] - equal
    return {
        **counts,
        "equivalent": equal,
        "score": round(counts["killed"] / scored, 4) if scored else None,
        "at": commit,
    }


def render(
    modules: list[str],
    out: Path,
    command: str,
    before: tuple[Path, list[str]] | None = None,
    before_at: tuple[str, list[str]] | None = None,
    sample: tuple[int, int] | None = None,
) -> str:
    """Write the table (markdown) and the figures (JSON: "now", and "before" from the figures
    of an older checkout's run (``before``: its mutation.json and the modules to take), or of a
    first run committed earlier (``before_at``: commit and modules), kept once given); returns
    the markdown. ``sample`` (size, seed): score each module over that sample of its mutants."""
    equivalent = equivalent_mutants()
    figures_file = out.with_suffix(".json")
    figures = json.loads(figures_file.read_text()) if figures_file.is_file() else {}
    if before is not None:
        older, chosen = before
        entries = json.loads(older.read_text())
        for module in chosen:
            if module not in entries:
                raise ValueError(f"{older} has no figures of {module}")
            figures.setdefault(module, {})["before"] = entries[module]["now"]
    if before_at is not None:
        commit, chosen = before_at
        for module in chosen:
            figures.setdefault(module, {})["before"] = figures_at(commit, module, equivalent)
    lines = [
        "# Mutation score of the engine's logic",
        "",
        f"Command: `{command}` (mutmut; each module with the test files `SELECTION` names).",
        "Score: killed (timeouts included) / checked mutants that are not equivalent "
        f"(`benchmarks/mutation_equivalent.toml`); target {TARGET:.0%} per module. Before: the "
        "same run on an older checkout's tests (`--before`; which one: docs/development.md), "
        "or, where a commit is named, the module's first run as committed there (`--before-at`), "
        "before tests were written for its survivors. A module with fewer checked than mutants "
        "is still running (the command resumes).",
        "",
        "| module | mutants | checked | killed | survived | no tests | equivalent | score "
        "before | score now |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    survivors: list[str] = []
    for module in modules:
        keep_state(module)
        found = statuses(module)
        entry = figures.setdefault(module, {})
        if found or "now" not in entry:
            chosen = sample_of(list(found), *sample) if sample else None
            entry["now"] = score(found, equivalent, chosen)
            entry["survivors"] = sorted(
                name
                for name, status in found.items()
                if status in SURVIVED and name not in equivalent
            )
        # else: no results at hand (kept from before this script kept them): the figures stay.
        now = entry["now"]
        before = entry.get("before", {})
        at = f" ({before['at']})" if "at" in before else ""
        lines.append(
            f"| `{module}` | {now['mutants']} | {now['checked']} | {now['killed']} | "
            f"{now['survived']} | {now['no_tests']} | {now['equivalent']} | "
            f"{_figure(before)}{at} | {_figure(now)} |"
        )
        survivors += entry.get("survivors", [])
    lines += [
        "",
        f"## Surviving mutants ({len(survivors)})",
        "",
        "`mutmut show NAME`, run in the module's folder under `.mutation/`, shows one.",
        "",
    ]
    lines += [f"- `{name}`" for name in survivors] or ["none"]
    text = "\n".join(lines) + "\n"
    out.write_text(text)
    figures_file.write_text(json.dumps(figures, indent=1) + "\n")
    return text


def _figure(figures: dict) -> str:
    """A score, with its 95% interval and sample size where a sample gave it."""
    value = figures.get("score")
    if value is None:
        return "-"
    if "sample" not in figures:
        return f"{value:.1%}"
    low, high = figures["interval"]
    return f"{value:.1%} [{low:.1%}, {high:.1%}] (sample of {figures['sample']})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modules", nargs="+", default=list(MODULES))
    parser.add_argument("--render", action="store_true", help="only write the table")
    parser.add_argument(
        "--recheck", action="store_true", help="check the surviving mutants again (new tests)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "mutation.md")
    parser.add_argument("--before", type=Path, help="mutation.json of an older checkout's run")
    parser.add_argument(
        "--before-at",
        metavar="COMMIT",
        help="with --render: 'before' of --modules from the first run's results at COMMIT",
    )
    parser.add_argument(
        "--sample", type=int, metavar="N", help="check N mutants of each module, drawn at random"
    )
    parser.add_argument("--seed", type=int, default=0, help="of --sample's draw")
    args = parser.parse_args(argv)
    if args.before_at and not args.render:
        parser.error("--before-at goes with --render (it reads committed results, runs nothing)")
    if args.sample is not None and (args.sample < 1 or args.recheck):
        parser.error("--sample takes a positive number of mutants, and not with --recheck")
    if not args.render:
        run(args.modules, args.recheck, args.sample, args.seed)
    command = "python benchmarks/mutation.py" + (
        ""
        if args.modules == list(MODULES) or args.before_at or args.before
        else " --modules " + " ".join(args.modules)
    )
    before = (args.before, args.modules) if args.before else None
    before_at = (args.before_at, args.modules) if args.before_at else None
    sample = (args.sample, args.seed) if args.sample else None
    print(render(list(MODULES), args.out, command, before, before_at, sample))


if __name__ == "__main__":
    main()
