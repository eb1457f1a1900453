"""What every benchmark records about the machine and software it ran on.

Imported by the scripts in this folder (run as ``python benchmarks/<name>.py``, which puts this
folder on ``sys.path``; pytest adds it through ``pythonpath`` in ``pyproject.toml``).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
from pathlib import Path
from typing import Any

import torch


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


def write_results(
    path: Path,
    *,
    title: str,
    command: str,
    info: dict[str, Any],
    load_note: str,
    body: list[str],
    raw: dict[str, Any],
) -> None:
    """``path`` (Markdown: title, command, date, machine, load average, then ``body``) and its
    ``.json`` twin with ``raw``; ``info`` is :func:`describe` plus ``load_average`` (start, end)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    head = [
        f"# {title}",
        "",
        f"Command: `{command}`  ",
        f"Date: {date}  ",
        f"Machine: {info['platform']}, {info['cpu']}, {info['cores']} cores (torch threads "
        f"{info['torch_threads']}); Python {info['python']}, torch {info['torch']}, lightning "
        f"{info['lightning']}, optuna {info['optuna']}  ",
        f"1-minute load average at start / end: {info['load_average'][0]} / "
        f"{info['load_average'][1]} ({load_note})",
        "",
    ]
    path.write_text("\n".join(head + body) + "\n")
    raw = {"command": command, "date": date, "machine": info, **raw}
    path.with_suffix(".json").write_text(json.dumps(raw, indent=1) + "\n")
