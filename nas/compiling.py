"""Compiled training (``training.compile``): the whole model, or each residual unit on its own.

A network of this project is a stem, residual units (its insertion sites, each with its attention
block) and a head. ``training.compile_scope`` says what is compiled (``module.compile()`` in
place, so the weights keep their names):

* ``"units"``, each residual unit (PyTorch's regional compilation): the small element-wise and
  pooling ops of an attention block fuse, and a unit's compiled code is a function of its own type
  and shapes only, so a second architecture made of units already seen loads their code from the
  inductor cache (:func:`use_compile_cache`: one folder shared by every trial, worker and
  ``nas confirm`` run of a study) instead of compiling them again. The stem and head stay eager.
* ``"model"``, the whole network as one graph: every architecture compiles its own graph (found
  in the cache by its other seeds and confirm repeats), and no tensor crosses a region boundary.
  On the CPU this is what pays: there each boundary costs more than the fusion inside it gains
  (:data:`AUTO_SCOPE`).
* ``"blocks"``, each candidate attention block of a supernet on its own (not a config value: a
  supernet's path changes every step, so its units and whole graph would be traced again for
  each path).

Compiling costs a warm-up before the first step (tens of seconds with an empty cache, a few with
it warm: ``benchmarks/speed.py``), so ``"auto"`` compiles only where the scope trains faster than
eager on the device (:data:`AUTO_COMPILES`) and the trial's expected training time
(:func:`expected_training_s`, from its FLOPs and the device) is at least :data:`PAYOFF` times
that warm-up. A region the compiler fails on runs eager from then on, and dynamo says so once
with its error (:func:`compiled_regions_scope`); a platform with no working compiler trains eager
and says so once.

Every unit runs the same ``forward``, and dynamo compiles a function once per variant (unit
shapes, training or evaluation, grad mode) and past ``recompile_limit`` (8 by default) runs it
eager for the rest of the process: one ResNet-20 (5 unit shapes x train / eval) reaches that, and a
worker's trials accumulate variants. :func:`compiled_regions_scope` therefore starts each compiled
run from a clean dynamo state (the model's code comes back from the on-disk cache) with a limit
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
#: What ``compile_scope = "auto"`` compiles per device type (else ``"units"``). The CPU compiles
#: the whole model: there a ResNet-20 step with its units compiled ran 0.73-0.95x the
#: channels-last eager step, per stage 0.91-1.12x, and the whole model 1.10-1.27x
#: (``benchmarks/speed.py --scopes``, results in ``benchmarks/results/speed.md``): each region
#: boundary costs. A GPU compiles units, so that architectures share their compiled regions.
AUTO_SCOPE = {"cpu": "model"}
#: (device type, scope) that ``compile = "auto"`` compiles: on the CPU the one measured faster
#: than eager (a supernet's candidate blocks compiled ran 1.11x [1.04, 1.22] its eager step on
#: one thread, 1.08x [0.90, 1.19] on two: not shown faster, ``speed.py --supernet``), and on a
#: CUDA GPU every scope, assumed until ``benchmarks/gpu.py`` measures them.
AUTO_COMPILES = frozenset(
    {("cpu", "model"), ("cuda", "units"), ("cuda", "model"), ("cuda", "blocks")}
)
#: Seconds of warm-up expected with an empty cache (per trial: its graphs compiled). The CPU's is
#: measured: a CIFAR-10 ResNet-20 trial's first epoch, with its training, evaluation and
#: last-batch graphs compiled whole, took a median 58 and 70 s more than its later ones in two
#: float32 runs and 92 s under bfloat16 autocast, which ``precision = "auto"`` chooses for it on
#: a CPU with native bfloat16 (2 threads, ``benchmarks/trial_speed.py``; the float32 runs are in
#: the history of ``benchmarks/results/trial_speed_resnet20.md``). A GPU's is assumed (no
#: GPU has run ``benchmarks/gpu.py``).
COLD_WARMUP_S = {"cpu": 90.0, "cuda": 60.0}
#: Sustained FLOP/s of a small CNN's training step (forward and backward: 3 x the forward FLOPs)
#: per device type, for :func:`expected_training_s`: one CPU core (a ResNet-20 step at batch 128
#: runs ~500 images/s there, ~1.2e11 FLOP/s; smaller models use the core less well), and a
#: data-centre GPU.
TRAINING_FLOPS = {"cpu": 5e10, "cuda": 5e12}
#: Compiled variants allowed per region in one run: training and evaluation, each possibly again
#: with a dynamic batch size (an epoch's smaller last batch).
VARIANTS_PER_REGION = 4
#: What a scope compiles, for the log line.
SCOPE_WORDS = {
    "units": "each residual unit",
    "model": "the whole model",
    "blocks": "each candidate block",
}


@dataclass(frozen=True)
class CompileDecision:
    """What a run compiles (``"units"``, ``"model"``, ``"blocks"``, or None: eager), and why
    (the log line)."""

    scope: str | None
    why: str

    def line(self, context: str = "") -> str:
        """The log line: ``compile: on|off (<context><why>)``."""
        return f"compile: {'on' if self.compile else 'off'} ({context}{self.why})"

    @property
    def compile(self) -> bool:
        return self.scope is not None


def resolve_scope(setting: str, device_type: str) -> str:
    """``training.compile_scope``: as written, or for ``"auto"`` the device's
    :data:`AUTO_SCOPE` (``"units"`` where it names none)."""
    return AUTO_SCOPE.get(device_type, "units") if setting == "auto" else setting


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


def decide(
    setting: bool | str, expected_s: float, device_type: str, scope_setting: str = "auto"
) -> CompileDecision:
    """``training.compile`` for one trial, in the scope :func:`resolve_scope` gives: ``false``
    never, ``true`` always and ``"auto"`` where :data:`AUTO_COMPILES` has the device and scope
    and the expected training is at least :data:`PAYOFF` x the cold warm-up; never where
    :func:`compiler_missing` says the platform cannot."""
    if setting is False:
        return CompileDecision(None, "training.compile = false")
    missing = compiler_missing(device_type)
    if missing is not None:
        return CompileDecision(None, f"no working compiler ({missing}); training runs eager")
    scope = resolve_scope(scope_setting, device_type)
    if setting is True:
        return CompileDecision(scope, f"training.compile = true, {SCOPE_WORDS[scope]}")
    if (device_type, scope) not in AUTO_COMPILES:
        return CompileDecision(
            None,
            f"{SCOPE_WORDS[scope]} compiled is not measured faster than eager on the {device_type} "
            "(benchmarks/results/speed.md); training.compile = true forces it",
        )
    warmup = COLD_WARMUP_S[device_type]  # every device of AUTO_COMPILES has one
    pays = expected_s >= PAYOFF * warmup
    return CompileDecision(
        scope if pays else None,
        f"{SCOPE_WORDS[scope]}: expected training ~{expected_s:.0f} s per trial, "
        f"{'at least' if pays else 'below'} {PAYOFF:g} x the ~{warmup:.0f} s a cold compile "
        "takes",
    )


def compile_regions(model: nn.Module, paths: Sequence[str]) -> list[str]:
    """Compile the modules at ``paths`` (the residual units, or ``""``: the model itself) in
    place; returns the paths. The compiled code is made at their first call, and found in the
    cache where a region of the same code and shapes was compiled before."""
    for path in paths:
        model.get_submodule(path).compile()
    return list(paths)


@contextlib.contextmanager
def compiled_regions_scope(n_regions: int) -> Iterator[None]:
    """One run (fit, validate, test) of a model with ``n_regions`` compiled regions: dynamo's
    in-process code dropped first, so no earlier model's variants count against the limit (this
    model's come back from the inductor cache, warm), ``recompile_limit`` raised to
    :data:`VARIANTS_PER_REGION` per region and ``suppress_errors`` on (a region whose compiling
    fails runs eager, with dynamo's warning, instead of failing the trial), then restored."""
    import torch._dynamo

    torch._dynamo.reset()
    limit = max(torch._dynamo.config.recompile_limit, VARIANTS_PER_REGION * n_regions)
    with torch._dynamo.config.patch(recompile_limit=limit, suppress_errors=True):
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


def with_cache(decision: CompileDecision, folder: str | os.PathLike) -> CompileDecision:
    """``decision`` once its cache ``folder`` is in use; where the folder cannot be written, eager
    and why (a folder asked for explicitly was refused before anything started)."""
    if not decision.compile:
        return decision
    try:
        use_compile_cache(folder)
    except ValueError as exc:
        return CompileDecision(None, f"{exc}; training runs eager")
    return decision


def compile_cache_dir(cfg: StudyConfig, searched: str | None = None) -> Path:
    """``training.compile_cache``, else ``<runs_dir>/<study>/compile-cache``, where ``<study>``
    is ``searched`` for a confirm or table study of that study: one folder for every trial,
    worker and ``nas confirm`` run of a search."""
    default = Path(cfg.study.runs_dir) / (searched or cfg.study.name) / "compile-cache"
    return Path(cfg.training.compile_cache or default)
