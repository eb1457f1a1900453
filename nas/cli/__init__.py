"""The ``nas`` command: search, worker, status, confirm, report, dashboard, export, train, blocks,
schema, doctor, table.

A thin layer: each sub-command parses its arguments and calls the engine (``nas.worker``,
``nas.study``, ``nas.confirm``, ``nas.report``, ``nas.export``, ``nas.retrain``); errors the
user can fix, operating-system errors included (a full disk, a read-only place), are printed as
one line with exit code 2.
"""

from __future__ import annotations

import argparse
import errno
import sys

from .reviewing import _add_confirm, _add_dashboard, _add_export, _add_report
from .running import (
    _add_blocks,
    _add_doctor,
    _add_schema,
    _add_search,
    _add_status,
    _add_train,
    _add_worker,
)
from .tables import _add_table

# The docstring above is `nas --help`'s description. Modules: running (search, worker, status,
# train, blocks, schema, doctor), reviewing (confirm, report, dashboard, export), tables.


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
    from ..study import quiet_third_party_output
    from ..worker import USER_ERRORS, WorkerStopped

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
    except USER_ERRORS as exc:
        from ..data import error_message

        print(f"nas {args.command}: error: {error_message(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk, a read-only place, a file where a folder should be
        print(f"nas {args.command}: error: {os_error_line(exc)}", file=sys.stderr)
        return 2


#: What to do about an operating-system error, by errno.
_OS_FIXES = {
    errno.ENOSPC: "free space there, or point --out / study.runs_dir at another disk; what was "
    "stored before stays",
    errno.EDQUOT: "free space within your quota, or point --out / study.runs_dir elsewhere",
    errno.EACCES: "choose a place you can write (--out, study.runs_dir) or fix its permissions",
    errno.EPERM: "choose a place you can write (--out, study.runs_dir) or fix its permissions",
    errno.EROFS: "the file system is read-only: choose another place (--out, study.runs_dir)",
    errno.ENOTDIR: "a file stands where a folder is needed: choose another path or move the file",
    errno.EEXIST: "it exists already: choose another path or remove it",
    errno.EISDIR: "a folder stands where a file is needed: choose another path",
}


def os_error_line(exc: OSError) -> str:
    """One line for an OS error: what failed, on which path, and the fix."""
    path = exc.filename if exc.filename2 is None else f"{exc.filename} -> {exc.filename2}"
    what = exc.strerror or type(exc).__name__
    where = f" ({path})" if path else ""
    fix = _OS_FIXES.get(exc.errno, "check the path and its disk")
    return f"{what}{where}; {fix}"
