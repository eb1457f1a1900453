"""Images per second of the streaming image-folder loader against the in-memory one, beside the
training step it feeds.

Two image folders, each read by both paths of ``nas.data.build_datamodule`` in the same process:

* ``cifar10``: the JPEG copy of CIFAR-10 (``cifar10-jpeg.tar.gz`` in ``$ATTN_NAS_DATA`` or
  ``../shared/data``) read as ``DataConfig(name="imagefolder", root=<archive>)``, which extracts
  it once into the cache folder (and the memory path decodes it once into a cached tensor file);
  ``--per-class`` training images per class, batch 128, ``augment="flip_crop"``, 32 px.
* ``generated``: ``--images`` photo-like JPEGs of 256-400 px sides in 4 classes, written to a
  temporary folder, read at ``image_size=224`` (batch 32): the memory path resizes every image
  once at decode time, the stream path random-resized-crops each one per epoch.

For each: images per second the training loader delivers (the first batch, which pays worker
start-up, is timed apart) with the in-memory path (``loader="memory"``, the baseline of the ratios)
and the stream path with 0 and 2 worker processes; then the training step alone (a ResNet-8 on
CIFAR-10, a ResNet-18 at 224 px: forward + backward + SGD step on the CPU, 1 torch thread, batches
of the loader's size), and the training step fed by each loader, which is what a CPU trial with 2
workers runs: the share of the step's own speed it keeps says whether the loader is the bottleneck.

    .venv/bin/python benchmarks/data.py                       # about 2-3 minutes on 2 cores
    .venv/bin/python benchmarks/data.py --quick --out -       # smoke run, writes nothing

Results go to ``benchmarks/results/data.md`` (and ``.json`` beside it) unless ``--out`` says
otherwise (``-``: print only).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

# Run as a script (``python benchmarks/data.py``) from a checkout that is not pip-installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
import torch.nn.functional as F
from torchvision.io import encode_jpeg

from benchmarks._harness import (
    CIFAR_ARCHIVE,
    RESULTS,
    Session,
    add_output_arguments,
    cifar_archive,
    command_line,
    data_dir,
    markdown_table,
    results_path,
    write_results,
)
from nas.data import DataConfig, build_datamodule
from search_spaces.build import build_model
from search_spaces.spec import ArchSpec

DEFAULT_OUT = RESULTS / "data.md"
CLASSES = 4


def write_generated_folder(root: Path, count: int) -> None:
    """``count`` JPEGs (quality 90) of random sizes with smooth random content, in classes."""
    generator = torch.Generator().manual_seed(0)
    for i in range(count):
        height, width = torch.randint(256, 401, (2,), generator=generator).tolist()
        coarse = torch.rand(1, 3, 8, 8, generator=generator)
        image = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False)
        image = image + 0.05 * torch.randn(1, 3, height, width, generator=generator)
        pixels = (image[0].clamp(0, 1) * 255).to(torch.uint8)
        folder = root / "train" / f"class{i % CLASSES}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i:05d}.jpg").write_bytes(encode_jpeg(pixels, quality=90).numpy().tobytes())


def loader_rate(loader: Any, batches: int) -> dict[str, float]:
    """Seconds to the first batch, then images per second over the next ``batches`` (epochs
    repeat as needed; persistent workers stay up)."""
    start = time.perf_counter()
    iterator = iter(loader)
    first = next(iterator)[0].shape[0]
    first_s = time.perf_counter() - start
    images, start = 0, time.perf_counter()
    for _ in range(batches):
        try:
            batch = next(iterator)
        except StopIteration:
            iterator = iter(loader)
            batch = next(iterator)
        images += batch[0].shape[0]
    seconds = time.perf_counter() - start
    return {"first_batch_s": first_s, "images": images + first, "per_s": images / seconds}


def train_rate(model: torch.nn.Module, batches: Any, steps: int) -> float:
    """Images per second of ``steps`` SGD steps on ``batches`` (an iterator, after one warm-up
    step), loading included: the loader's time shows where it cannot keep up."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step(images: torch.Tensor, labels: torch.Tensor) -> None:
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step(*next(batches))
    images, start = 0, time.perf_counter()
    for _ in range(steps):
        batch = next(batches)
        step(*batch)
        images += batch[0].shape[0]
    return images / (time.perf_counter() - start)


def endless(dm: Any):
    """The training batches of ``dm``, epoch after epoch, as the model takes them (a stream's
    uint8 batches scaled and normalised, as the Trainer does after moving them)."""
    loader = dm.train_dataloader()
    while True:
        for batch in loader:
            yield dm.on_after_batch_transfer(batch, 0)


def measure(name: str, cfg: DataConfig, backbone: str, batches: int, steps: int) -> dict[str, Any]:
    """Every loader of ``cfg``'s folder, the training step alone and fed by each loader."""
    result: dict[str, Any] = {"name": name, "backbone": backbone, "batch_size": cfg.batch_size}
    modules: dict[str, Any] = {}
    variants = {
        "memory": replace(cfg, loader="memory"),
        "stream, 0 workers": replace(cfg, loader="stream", num_workers=0),
        "stream, 2 workers": replace(cfg, loader="stream", num_workers=2),
    }
    rows = []
    for label, variant in variants.items():
        start = time.perf_counter()
        dm = build_datamodule(variant, seed=0)
        dm.setup("fit")
        build_s = time.perf_counter() - start
        modules[label] = dm
        rows.append(
            {"loader": label, "build_s": build_s, **loader_rate(dm.train_dataloader(), batches)}
        )
        print(f"# {name} {label}: {rows[-1]['per_s']:.0f} images/s", flush=True)
    dm = modules["memory"]
    result["input_shape"] = list(dm.input_shape)
    result["train_images"] = dm.split_sizes["train"]
    spec = ArchSpec(backbone, {}, in_channels=dm.in_channels, num_classes=dm.num_classes, sites={})
    model = build_model(spec, seed=0)
    fixed = next(iter(dm.train_dataloader()))
    result["train_step_per_s"] = train_rate(model, iter(lambda: fixed, None), steps)
    print(f"# {name} {backbone} step alone: {result['train_step_per_s']:.1f} images/s", flush=True)
    for row in rows:
        row["fed_step_per_s"] = train_rate(model, endless(modules[row["loader"]]), steps)
        print(f"# {name} step fed by {row['loader']}: {row['fed_step_per_s']:.1f}", flush=True)
    result["rows"] = rows
    return result


def table(result: dict[str, Any]) -> list[str]:
    base = result["rows"][0]
    step = result["train_step_per_s"]
    lines = [
        f"Training split {result['train_images']} images of {tuple(result['input_shape'])}, batch "
        f"{result['batch_size']}; {result['backbone']} training step alone (1 thread, batches "
        f"already in memory): **{step:.1f} images/s**.",
        "",
    ]
    header = ["loader", "build s", "first batch s", "loader images/s", "vs memory"]
    header += ["step fed by it, images/s", "share of the step alone"]
    cells = []
    for row in result["rows"]:
        loader = [f"{row['build_s']:.2f}", f"{row['first_batch_s']:.3f}", f"{row['per_s']:.0f}"]
        fed = [f"{row['fed_step_per_s']:.1f}", f"{row['fed_step_per_s'] / step:.0%}"]
        cells.append([row["loader"], *loader, f"{row['per_s'] / base['per_s']:.3f}x", *fed])
    return lines + markdown_table(header, "lrrrrrr", cells)


def reading(result: dict[str, Any]) -> str:
    step = result["train_step_per_s"]
    memory, _, stream = result["rows"]
    bound = "is not" if stream["per_s"] > step else "is"
    return (
        f"{result['name']}: the stream loader with 2 workers delivers {stream['per_s']:.0f} "
        f"images/s on its own, {stream['per_s'] / step:.1f}x what the {result['backbone']} step "
        f"consumes ({step:.1f}/s), so it {bound} the bottleneck of a CPU trial; fed by it the step "
        f"keeps {stream['fed_step_per_s'] / step:.0%} of its own speed, against "
        f"{memory['fed_step_per_s'] / step:.0%} fed from memory (on 2 cores the workers and the "
        "training thread share the CPU; the memory row shows the noise of that column)."
    )


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=500, help="CIFAR-10 train images/class")
    parser.add_argument("--images", type=int, default=400, help="generated 224 px JPEGs")
    parser.add_argument("--batches", type=int, default=20, help="timed loader batches")
    parser.add_argument("--cifar-steps", type=int, default=8, help="timed ResNet-8 steps")
    parser.add_argument("--steps", type=int, default=3, help="timed ResNet-18 steps (224 px)")
    parser.add_argument(
        "--cache-dir", type=Path, help="extracted archive and decoded tensors (default: temporary)"
    )
    add_output_arguments(parser, DEFAULT_OUT, "json")
    parser.add_argument("--quick", action="store_true", help="smoke run: a few batches and steps")
    args = parser.parse_args(argv)
    if args.quick:
        args.per_class, args.images, args.batches, args.cifar_steps, args.steps = 20, 64, 3, 2, 1
    command = command_line(__file__, argv)

    # The generated folder has no test/ and holds out a fifth of train/ as test, as it says.
    warnings.filterwarnings("ignore", "imagefolder: .* has no test/ folder", UserWarning)
    session = Session()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    results = []
    try:
        with tempfile.TemporaryDirectory(prefix="nas-data-bench-") as tmp:
            cache = args.cache_dir or Path(tmp) / "cache"
            archive = cifar_archive()
            if archive is not None:
                cifar = DataConfig(
                    name="imagefolder",
                    root=archive,
                    cache_dir=cache,
                    per_class=args.per_class,
                    batch_size=128,
                    augment="flip_crop",
                )
                results.append(measure("cifar10", cifar, "resnet8", args.batches, args.cifar_steps))
            else:
                print(
                    f"# skipped cifar10: {data_dir() / CIFAR_ARCHIVE} not found (set ATTN_NAS_DATA)"
                )
            folder = Path(tmp) / "generated"
            write_generated_folder(folder, args.images)
            generated = DataConfig(
                name="imagefolder",
                root=folder,
                cache_dir=cache,
                image_size=224,
                batch_size=32,
                augment="flip_crop",
            )
            results.append(measure("generated", generated, "resnet18", args.batches, args.steps))
        info = session.machine(torch_threads=1)
    finally:
        torch.set_num_threads(threads)

    body: list[str] = []
    titles = {
        "cifar10": "CIFAR-10 JPEG copy (32 px), ResNet-8",
        "generated": f"{args.images} generated JPEGs at 224 px, ResNet-18",
    }
    for result in results:
        body += [f"## {titles[result['name']]}", "", *table(result), ""]
    body += ["## Reading", ""] + [f"* {reading(result)}" for result in results]
    body += [
        "",
        "Loader images/s: the training loader alone (augmentation and normalisation included), "
        'after its first batch; "vs memory" divides by the in-memory loader of the same folder '
        "in the same process. Step fed by it: the same SGD steps drawing their batches from that "
        "loader (workers run beside the training thread). Build s: `build_datamodule`; the memory "
        "path, built first, also pays the one-off extraction of the archive and decodes the whole "
        "folder (cached afterwards), the stream path estimates mean/std from "
        "`nas.data.STATS_IMAGES` training images.",
    ]
    print(f"# {command}")
    print("\n".join(body))
    out = results_path(args, DEFAULT_OUT)
    if out is not None:
        written = write_results(
            out,
            title="Streaming image folders against in-memory tensors",
            command=command,
            info=info,
            load_note="a shared machine: other processes may have used the CPU",
            body=body,
            raw={"args": vars(args) | {"cache_dir": str(args.cache_dir)}, "results": results},
        )
        print("# written: " + " and ".join(map(str, written)))
    return results


if __name__ == "__main__":
    main()
