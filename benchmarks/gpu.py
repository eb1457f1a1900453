"""The GPU check: what a first user with a CUDA device runs, end to end, and how fast.

    python benchmarks/gpu.py                      # on a machine with CUDA: every check
    python benchmarks/gpu.py --smoke --out -      # anywhere: the same checks, tiny, on the CPU

Each check runs on its own and is timed; one that raises is reported (its error's first line)
and the others go on, so a single run says everything that breaks:

* ``quickstart``: ``studies/quickstart.toml`` as the README runs it (its trials and epochs);
* ``confirm``: ``nas confirm`` of that study, top 2 with 2 seeds;
* ``supernet``: ``studies/quickstart_supernet.toml`` (the supernet, then its sub-networks);
* ``stream``: the streaming loader over a folder of JPEG files written for the check (CIFAR-size,
  two worker processes), its batches moved to the device;
* ``resnet20``: one CIFAR-10 ResNet-20 trial per training setting (precision, channels-last,
  and with both on, compiled per unit and as a whole model),
  on the CIFAR-10 JPEG copy where ``$ATTN_NAS_DATA`` (or ``../shared/data``) holds it, else on
  random CIFAR-size images (then only its speed means anything).

The table (seconds, images per second: the ResNet-20 trials' of their last epoch, after the
warm-up; what each check produced) goes to
``benchmarks/results/gpu.md`` with the command and the machine; ``docs/benchmarks.md`` says when
to run it.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from lightning.pytorch.callbacks import Callback

from benchmarks._harness import (
    RESULTS,
    ROOT,
    Session,
    cifar_archive,
    command_line,
    machine_line,
    markdown_table,
    provenance,
    results_head,
    start_session,
    tomllib,
    utc_now,
    write_markdown,
)

#: Training settings of the ResNet-20 trial: (precision, channels_last, compile scope or None).
#: The compiled ones are left out of ``--smoke`` (tests/nas/test_compiling.py covers them on the
#: CPU).
SETTINGS = (
    ("32", False, None),
    ("32", True, None),
    ("bf16-mixed", False, None),
    ("bf16-mixed", True, None),
    ("bf16-mixed", True, "units"),
    ("bf16-mixed", True, "model"),
)


@dataclasses.dataclass
class Check:
    """One check's outcome: its name, settings, seconds, images per second and what it made
    (or why it failed)."""

    name: str
    settings: str
    seconds: float | None = None
    images_per_s: float | None = None
    result: str = ""
    status: str = "ok"

    def row(self) -> list[str]:
        seconds = "-" if self.seconds is None else f"{self.seconds:.1f}"
        rate = "-" if self.images_per_s is None else f"{self.images_per_s:,.0f}"
        return [self.name, self.settings, seconds, rate, self.result, self.status]


@contextlib.contextmanager
def timed(check: Check) -> Iterator[None]:
    """Time the block into ``check``; an exception becomes its status (its first line) and the
    traceback goes to stderr, so the next check runs."""
    start = time.perf_counter()
    try:
        yield
    except Exception as exc:  # the point of the script: report every failure, go on
        check.status = f"FAILED: {type(exc).__name__}: {str(exc).strip().splitlines()[0][:160]}"
        traceback.print_exc(file=sys.stderr)
    finally:
        check.seconds = time.perf_counter() - start


def study_config(name: str, runs_dir: Path, smoke: bool) -> dict[str, Any]:
    """``studies/<name>.toml`` in ``runs_dir``; with ``smoke`` 3 trials of 1 epoch."""
    data = tomllib.loads((ROOT / "studies" / f"{name}.toml").read_text())
    data["study"]["runs_dir"] = str(runs_dir)
    if smoke:
        data["study"].update(n_trials=3, population_size=2)
        data["training"]["epochs"] = 1
        data["data"]["per_class"] = 10
        data["evaluation"] = {"baselines": False}
        data["pruning"] = {"pruner": "none"}
        if data.get("search", {}).get("strategy") == "supernet":
            data["search"]["supernet_epochs"] = 2
    return data


def search_check(name: str, runs_dir: Path, smoke: bool) -> tuple[Check, Any]:
    """Run the study ``name`` and report its trials and front."""
    from nas.config import StudyConfig
    from nas.pareto import front_trials
    from nas.worker import run_search

    check = Check(name, "as studies/" + name + ".toml" + (" (smoke)" if smoke else ""))
    study = None
    with timed(check):
        study = run_search(
            StudyConfig.from_dict(study_config(name, runs_dir, smoke)), progress=False
        )
        done = [t for t in study.trials if t.state.name == "COMPLETE"]
        check.result = (
            f"{len(done)} complete of {len(study.trials)}, front of {len(front_trials(study))}"
        )
    return check, study


def confirm_check(study: Any, runs_dir: Path) -> Check:
    """``nas confirm`` of the searched study: top 2, 2 seeds; its verdict line."""
    from nas.cli import main

    check = Check("confirm", "top 2, seeds 2")
    with timed(check):
        if study is None:
            raise RuntimeError("the quickstart search did not run")
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = main(
                ["confirm", study.study_name, "--runs-dir", str(runs_dir), "--top", "2",
                 "--seeds", "2", "--no-progress"]
            )  # fmt: skip
        if code != 0:
            raise RuntimeError(f"nas confirm exited {code}")
        verdict = next(
            (line for line in out.getvalue().splitlines() if "gain over none" in line), ""
        )
        check.result = verdict[:120]
    return check


def write_jpeg_folder(root: Path, per_class: int, classes: int = 10, side: int = 32) -> Path:
    """``root/train/<class>/<i>.jpg`` and ``root/test/...`` of random CIFAR-size images."""
    from torchvision.io import encode_jpeg

    generator = torch.Generator().manual_seed(0)
    for split, count in (("train", per_class), ("test", max(2, per_class // 5))):
        for c in range(classes):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(count):
                image = torch.randint(
                    0, 256, (3, side, side), dtype=torch.uint8, generator=generator
                )
                (folder / f"{i}.jpg").write_bytes(encode_jpeg(image).numpy().tobytes())
    return root


def stream_check(folder: Path, device: torch.device, smoke: bool) -> Check:
    """One epoch of the streaming loader's training batches, moved to ``device``."""
    from nas.config import DataConfig
    from nas.data import build_datamodule

    check = Check("stream", f"imagefolder JPEG, loader stream, 2 workers, to {device.type}")
    with timed(check):
        cfg = DataConfig(
            name="imagefolder", root=folder, loader="stream", num_workers=2, batch_size=128,
            augment="flip_crop", image_size=(32, 32),
        )  # fmt: skip
        dm = build_datamodule(cfg, device=device, seed=0)
        dm.setup("fit")
        start, images = time.perf_counter(), 0
        for x, _ in dm.train_dataloader():
            x = x.to(device, non_blocking=True)
            images += x.shape[0]
        if device.type == "cuda":
            torch.cuda.synchronize()
        check.images_per_s = images / (time.perf_counter() - start)
        check.result = f"{images} images, batch dtype {x.dtype}"
    return check


def cifar_datamodule(device: torch.device, smoke: bool) -> tuple[Any, str]:
    """CIFAR-10 (the JPEG copy, in memory) or random CIFAR-size tensors, and which."""
    from nas.config import DataConfig
    from nas.data import build_datamodule
    from nas.data.memory import TensorDataModule
    from nas.data.splits import Split

    archive = cifar_archive()
    per_class = 20 if smoke else 500
    if archive is not None:
        cfg = DataConfig(
            name="imagefolder", root=archive, per_class=per_class, val_per_class=per_class // 5,
            batch_size=128, augment="flip_crop",
        )  # fmt: skip
        return build_datamodule(cfg, device=device, seed=0), "CIFAR-10 JPEG copy"
    generator = torch.Generator().manual_seed(0)

    def split(n: int) -> Split:
        images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=generator)
        return Split(images, torch.randint(0, 10, (n,), generator=generator))

    dm = TensorDataModule(
        split(10 * per_class), split(2 * per_class), split(2 * per_class),
        class_names=[str(c) for c in range(10)], batch_size=128, device=device,
    )  # fmt: skip
    return dm, "random CIFAR-size images"


class EpochClock(Callback):
    """Seconds of each training epoch (validation excluded), the device synchronised."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        _synchronize()
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        _synchronize()
        self.seconds.append(time.perf_counter() - self.start)


def _synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def resnet20_checks(device: torch.device, smoke: bool) -> list[Check]:
    """One ResNet-20 trial (SE everywhere, 2 epochs) per training setting."""
    from nas.training import ClassifierModule, TrainingConfig, build_trainer
    from search_spaces.spec import ArchSpec, BlockChoice

    checks = []
    sites = {
        f"stage{s}.{u}": BlockChoice("se", {"reduction": 8}) for s in (1, 2, 3) for u in (0, 1, 2)
    }
    for precision, channels_last, compiled in SETTINGS:
        if compiled and smoke:
            continue
        settings = (
            f"precision {precision}, channels_last {str(channels_last).lower()}, "
            f"compile {compiled or 'false'}"
        )
        check = Check("resnet20", settings)
        with timed(check):
            dm, source = cifar_datamodule(device, smoke)
            spec = ArchSpec("resnet20", {}, in_channels=3, num_classes=10, sites=sites)
            cfg = TrainingConfig(
                epochs=1 if smoke else 2, precision=precision, channels_last=channels_last
            )
            module = ClassifierModule(spec, config=cfg, seed=0)
            module.compile_scope = compiled
            accelerator = "gpu" if device.type == "cuda" else "cpu"
            clock = EpochClock()
            trainer = build_trainer(cfg, seed=0, accelerator=accelerator, callbacks=[clock])
            trainer.fit(module, datamodule=dm)
            # The last epoch's rate: the first pays the warm-up (compiling, cuDNN autotuning),
            # which the check's seconds include.
            check.images_per_s = dm.split_sizes["train"] / clock.seconds[-1]
            val_acc = module.val_history[-1]["val_acc"]
            check.result = f"val_acc {val_acc:.3f} after {cfg.epochs} epochs ({source})"
        checks.append(check)
    return checks


def run_checks(device: torch.device, smoke: bool, work: Path) -> list[Check]:
    """Every check in turn (a failing one does not stop the next)."""
    runs = work / "runs"
    quickstart, study = search_check("quickstart", runs, smoke)
    checks = [quickstart, confirm_check(study, runs)]
    checks.append(search_check("quickstart_supernet", runs, smoke)[0])
    folder = write_jpeg_folder(work / "jpeg", per_class=20 if smoke else 500)
    checks.append(stream_check(folder, device, smoke))
    checks += resnet20_checks(device, smoke)
    return checks


def report(checks: list[Check], command: str, session: Session) -> list[str]:
    """The results file: command, machine (with the GPU), the table, and how many failed."""
    info = session.machine()
    facts = provenance(command, utc_now(), info, "other processes slow the timings")
    facts[2] = machine_line(info, gpu=True)
    failed = sum(c.status != "ok" for c in checks)
    return [
        *results_head("GPU check", facts),
        *markdown_table(
            ["check", "settings", "seconds", "images/s", "result", "status"],
            "llrrll",
            [c.row() for c in checks],
        ),
        "",
        f"{failed} of {len(checks)} checks failed." if failed else f"All {len(checks)} checks ran.",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (any machine)")
    parser.add_argument(
        "--out", default=str(RESULTS / "gpu.md"), help="results .md; '-': print only"
    )
    args = parser.parse_args(argv)
    device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if device.type != "cuda" and not args.smoke:
        print("no CUDA device: run on a machine with one, or --smoke for the CPU", file=sys.stderr)
        return 2
    session = start_session(threads=torch.get_num_threads())
    with tempfile.TemporaryDirectory(prefix="nas-gpu-check-") as work:
        checks = run_checks(device, args.smoke, Path(work))
    lines = report(checks, command_line(__file__, argv), session)
    print("\n".join(lines))
    if args.out != "-":
        write_markdown(Path(args.out), lines)
    return 1 if any(c.status != "ok" for c in checks) else 0


if __name__ == "__main__":
    raise SystemExit(main())
