"""Retrain an exported architecture from scratch and measure its test accuracy.

A search ranks architectures by validation accuracy after a short, cut-down training run; that
number selected the architecture, so it is optimistic and never a test accuracy. :func:`retrain`
trains the architecture again with the full training budget on the full training pool (the
search's train and validation images, without ``per_class`` cuts) and evaluates it once on the
held-out test split, which no search ever touches.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from search_spaces.spec import ArchSpec

from .checkpoints import save_checkpoint
from .config import StudyConfig
from .data import build_datamodule
from .training import ClassifierModule, build_trainer, evaluate, resolve_accelerator


def retrain(
    arch_path: str | Path,
    *,
    epochs: int | None = None,
    config: StudyConfig | Mapping[str, Any] | None = None,
    seed: int = 0,
    out_dir: str | Path | None = None,
    accelerator: str = "auto",
    progress: bool = False,
) -> dict[str, Any]:
    """Train ``arch_path`` (an ``arch.json`` or the export folder holding it) from scratch and
    return its test metrics.

    Data and training settings come from the ``config.json`` next to ``arch.json`` (written by
    ``nas.export``), or from ``config`` (a :class:`StudyConfig` or its dict, or a dict with
    ``data`` and ``training`` sections); ``epochs`` overrides ``training.epochs``. Training uses
    the whole training pool and no validation split: no image is held out of training, and
    Lightning runs no validation loop (the schedule depends on the epoch budget only). The test
    split is the dataset's held-out one, used once, after training. Runs with the same ``seed``
    on the CPU give the same test accuracy.

    Writes ``out_dir`` (default ``<arch folder>/retrained/``): ``weights.pt`` in the export format
    (``nas.load`` reads it; its normalisation statistics are those of the full pool) and
    ``metrics.json``: ``test_acc``, ``test_loss``, ``epochs``, ``train_size``, ``test_size``,
    ``seed``, ``wall_time_s``, the dataset, the accelerator, the architecture's digest and
    summary, and ``source`` (the study and trial it was exported from, or None). Returns that dict.
    """
    arch_file = Path(arch_path)
    if arch_file.is_dir():
        arch_file = arch_file / "arch.json"
    if not arch_file.is_file():
        raise FileNotFoundError(
            f"no architecture at {arch_file}; pass an arch.json or an export folder holding one "
            "(nas export)"
        )
    spec = _read_arch(arch_file)
    source, settings = _settings(arch_file, config)
    data_cfg, training = settings.data, settings.training
    if epochs is not None:
        training = dataclasses.replace(training, epochs=epochs)

    device = resolve_accelerator(accelerator)
    dm = build_datamodule(data_cfg, device=device, seed=seed, full_train=True)
    if (spec.in_channels, spec.num_classes) != (dm.in_channels, dm.num_classes):
        raise ValueError(
            f"{arch_file} takes {spec.in_channels} channels and predicts {spec.num_classes} "
            f"classes, but dataset {data_cfg.name!r} has {dm.in_channels} channels and "
            f"{dm.num_classes} classes; retrain it with the data config of its study"
        )
    module = ClassifierModule(spec, config=training, seed=seed, pretrained=settings.pretrained)
    trainer = build_trainer(training, seed=seed, accelerator=device, enable_progress_bar=progress)
    # No validation split: Lightning's switch to skip the validation loop entirely.
    trainer.limit_val_batches = 0
    start = time.perf_counter()
    trainer.fit(module, datamodule=dm)
    metrics = evaluate(module, dm, "test", accelerator=device)
    wall_time = time.perf_counter() - start

    out = arch_file.parent / "retrained" if out_dir is None else Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(
        out / "weights.pt",
        model=module.model,
        spec=spec,
        trial_number=source["trial"] if source else -1,
        study_name=source["study"] if source else "",
        input_shape=dm.input_shape,
        class_names=dm.class_names,
        mean=dm.mean,
        std=dm.std,
    )
    sizes = dm.split_sizes
    result = {
        "test_acc": metrics["test_acc"],
        "test_loss": metrics["test_loss"],
        "epochs": training.epochs,
        "train_size": sizes["train"],
        "test_size": sizes["test"],
        "seed": seed,
        "wall_time_s": wall_time,
        "dataset": data_cfg.name,
        "accelerator": device,
        "arch_digest": spec.digest(),
        "summary": spec.summary(),
        "source": source,
    }
    (out / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def _read_arch(arch_file: Path) -> ArchSpec:
    try:
        return ArchSpec.from_json(arch_file.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(
            f"{arch_file} is not an exported architecture ({exc}); write one with "
            "`nas export STUDY --arch-only --trial N`"
        ) from None


def _read_settings(path: Path) -> dict[str, Any]:
    try:
        stored = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not JSON ({exc}); re-export it with `nas export`") from None
    if not isinstance(stored, dict):
        raise ValueError(
            f"{path} must hold a JSON object with 'data' and 'training' sections, got "
            f"{type(stored).__name__}; re-export it with `nas export`"
        )
    return stored


def _settings(
    arch_file: Path, config: StudyConfig | Mapping[str, Any] | None
) -> tuple[dict[str, Any] | None, StudyConfig]:
    """(source, settings): the source from the sibling ``config.json`` where there is one, the
    settings (data, training, backbone.pretrained) from ``config`` when given, else from that
    file."""
    sibling = arch_file.parent / "config.json"
    stored = _read_settings(sibling) if sibling.is_file() else None
    source = stored.get("source") if stored else None
    if config is None:
        if stored is None:
            raise FileNotFoundError(
                f"no config.json next to {arch_file}: pass config= (the study config) so that "
                "retraining knows the dataset and the training settings"
            )
        config = stored
    if not isinstance(config, StudyConfig):
        # A full study config dict, or config.json's data and training sections; the other
        # sections take their defaults, which retraining does not use.
        try:
            config = StudyConfig.from_dict({k: v for k, v in config.items() if k != "source"})
        except ValueError as exc:
            where = sibling if stored is config else "config"
            raise ValueError(f"{where}: {exc}") from None
    return source, config
