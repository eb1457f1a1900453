"""What every benchmark records about the machine and software it ran on.

Imported by the scripts in this folder (run as ``python benchmarks/<name>.py``, which puts this
folder on ``sys.path``; pytest adds it through ``pythonpath`` in ``pyproject.toml``).
"""

from __future__ import annotations

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
