"""Compiled training (``training.compile``): each residual unit compiled on its own.

A network of this project is a stem, residual units (its insertion sites, each with its attention
block) and a head. Compiling per unit (PyTorch's regional compilation: ``module.compile()`` on
each, in place, so the weights keep their names) lets the many small element-wise and pooling
ops of an attention block fuse, and makes a unit's compiled code a function of its own type and
shapes only: a second architecture made of units already seen loads their code from the inductor
cache (:func:`use_compile_cache`: one folder shared by every trial, worker and ``nas confirm`` run
of a study) instead of compiling them again. The stem and the head stay eager.

Compiling costs a warm-up before the first step (tens of seconds per unit type with an empty
cache, a few seconds with it warm: ``benchmarks/speed.py``), so ``"auto"`` compiles only on the
devices where compiled units train faster (:data:`AUTO_COMPILE_DEVICES`) and where the trial's
expected training time (:func:`expected_training_s`, from its FLOPs and the device) is at least
:data:`PAYOFF` times that warm-up. A unit the compiler cannot handle runs eager (dynamo's own
fallback, with its warning); a platform with no working compiler trains eager and says so once.

Every unit runs the same ``forward``, and dynamo compiles a function once per variant (unit
shapes, training or evaluation, grad mode) and past ``recompile_limit`` (8 by default) runs it
eager for the rest of the process: one ResNet-20 (5 unit shapes x train / eval) reaches that, and a
worker's trials accumulate variants. :func:`compiled_units_scope` therefore starts each compiled
run from a clean dynamo state (the model's units come back from the on-disk cache) with a limit
that fits the model.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from torch import nn

if TYPE_CHECKING:
    from .config import StudyConfig

#: The environment variable inductor reads for its cache folder.
CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"
#: Expected training must be this many times the warm-up for ``"auto"`` to compile.
PAYOFF = 10.0
#: Device types on which ``"auto"`` compiles: those where units compiled one by one train
#: faster than eager. Not the CPU: there a ResNet-20 step with its units compiled ran 0.84-1.11x
#: eager and 0.74-0.97x channels-last eager (``benchmarks/speed.py --regional``, results in
#: ``benchmarks/results/speed.md``), although the whole model compiled ran 1.1-1.5x eager; each
#: region boundary costs (``--scopes``: per stage 0.91-1.12x, the whole model 1.10-1.27x the
#: channels-last eager step). A CUDA GPU is assumed to gain until ``benchmarks/gpu.py`` measures it.
AUTO_COMPILE_DEVICES = frozenset({"cuda"})
#: Seconds of warm-up expected with an empty cache (per trial: its unit types compiled): assumed
#: for a GPU, not yet measured (no GPU has run ``benchmarks/gpu.py``); a CPU took 15-49 s for a
#: ResNet-20 step (``benchmarks/speed.py --regional``).
COLD_WARMUP_S = {"cuda": 60.0}
#: Sustained FLOP/s of a small CNN's training step (forward and backward: 3 x the forward FLOPs)
#: per device type, for :func:`expected_training_s`: one CPU core (a ResNet-20 step at batch 128
#: runs ~500 images/s there, ~1.2e11 FLOP/s; smaller models use the core less well), and a
#: data-centre GPU.
TRAINING_FLOPS = {"cpu": 5e10, "cuda": 5e12}
#: Compiled variants allowed per unit in one run: training and evaluation, each possibly again
#: with a dynamic batch size (an epoch's smaller last batch).
VARIANTS_PER_UNIT = 4


@dataclass(frozen=True)
class CompileDecision:
    """Whether a trial's units are compiled, and why (the log line)."""

    compile: bool
    why: str


def compiler_missing(device_type: str) -> str | None:
    """Why ``torch.compile`` cannot work on ``device_type`` here, or None where it can: inductor
    needs a C++ compiler for the CPU and Triton for a GPU, and supports neither on Windows."""
    if sys.platform == "win32":
        return "torch.compile's inductor does not run on Windows"
    if device_type == "cuda" and importlib.util.find_spec("triton") is None:
        return "Triton is not installed (pip install triton)"
    if device_type == "cpu" and not any(shutil.which(cc) for cc in ("g++", "c++", "clang++")):
        return "no C++ compiler on PATH (install g++ or clang)"
    return None


def expected_training_s(
    flops_per_sample: float, samples_per_epoch: int, epochs: int, device_type: str
) -> float:
    """Rough seconds of a trial's training: 3 x forward FLOPs per sample (backward ~ 2x the
    forward), over every sample of every epoch, at :data:`TRAINING_FLOPS` of the device."""
    flops = 3.0 * flops_per_sample * samples_per_epoch * epochs
    return flops / TRAINING_FLOPS.get(device_type, TRAINING_FLOPS["cpu"])


def decide(setting: bool | str, expected_s: float, device_type: str) -> CompileDecision:
    """``training.compile`` for one trial: ``false`` never, ``true`` always and ``"auto"`` on
    :data:`AUTO_COMPILE_DEVICES` where the expected training is at least :data:`PAYOFF` x the
    cold warm-up; never where :func:`compiler_missing` says the platform cannot."""
    if setting is False:
        return CompileDecision(False, "training.compile = false")
    missing = compiler_missing(device_type)
    if missing is not None:
        return CompileDecision(False, f"no working compiler ({missing}); training runs eager")
    if setting is True:
        return CompileDecision(True, "training.compile = true")
    if device_type not in AUTO_COMPILE_DEVICES:
        return CompileDecision(
            False,
            f"compiled units train slower than eager on the {device_type} "
            "(benchmarks/results/speed.md); training.compile = true forces them",
        )
    warmup = COLD_WARMUP_S[device_type]
    pays = expected_s >= PAYOFF * warmup
    return CompileDecision(
        pays,
        f"expected training ~{expected_s:.0f} s per trial, "
        f"{'at least' if pays else 'below'} {PAYOFF:g} x the ~{warmup:.0f} s a cold compile "
        "takes",
    )


def compile_regions(model: nn.Module, paths: Sequence[str]) -> list[str]:
    """Compile the modules at ``paths`` (the residual units) in place; returns the paths. The
    compiled code is made at their first call, and found in the cache where a unit of the same
    type and shapes was compiled before."""
    for path in paths:
        model.get_submodule(path).compile()
    return list(paths)


@contextlib.contextmanager
def compiled_units_scope(n_units: int) -> Iterator[None]:
    """One run (fit, validate, test) of a model with ``n_units`` compiled units: dynamo's
    in-process code dropped first, so no earlier model's variants count against the limit (this
    model's come back from the inductor cache, warm), and ``recompile_limit`` raised to
    :data:`VARIANTS_PER_UNIT` per unit for the run, then restored."""
    import torch._dynamo

    torch._dynamo.reset()
    limit = max(torch._dynamo.config.recompile_limit, VARIANTS_PER_UNIT * n_units)
    with torch._dynamo.config.patch(recompile_limit=limit):
        yield


def use_compile_cache(folder: str | os.PathLike) -> Path:
    """Make ``folder`` inductor's cache for this process (and the workers it starts); a folder
    that cannot be created or written is refused with its path."""
    path = Path(folder).expanduser().resolve()
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise ValueError(
            f"training.compile_cache: {path} is not a writable folder ({exc.strerror or exc}); "
            "choose another folder, or set training.compile = false"
        ) from None
    os.environ[CACHE_ENV] = str(path)
    return path


def compile_cache_dir(cfg: StudyConfig, searched: str | None = None) -> Path:
    """``training.compile_cache``, else ``<runs_dir>/<study>/compile-cache``, where ``<study>``
    is ``searched`` for a confirm or table study of that study: one folder for every trial,
    worker and ``nas confirm`` run of a search."""
    default = Path(cfg.study.runs_dir) / (searched or cfg.study.name) / "compile-cache"
    return Path(cfg.training.compile_cache or default)
