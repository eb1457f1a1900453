"""Tests for the streaming image-folder path of nas.data (StreamDataModule) and loader choice."""

from __future__ import annotations

import contextlib
import re
import shutil
import tarfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import optuna
import pytest
import tomli_w
import torch
from _image_folders import write_image_folder
from torch.utils.data import DataLoader
from torchvision.io import encode_jpeg
from torchvision.transforms.v2 import functional as TF

from nas import trial_schema as schema
from nas.cli import main
from nas.config import StudyConfig
from nas.data import (
    DataConfig,
    StreamDataModule,
    TensorDataModule,
    UnreadableImageError,
    build_datamodule,
    channel_stats,
    error_message,
    sources,
    streaming,
)
from nas.storage import open_storage
from nas.training import ClassifierModule, TrainingConfig, build_trainer
from nas.worker import clip_reason
from search_spaces.spec import ArchSpec

# torchvision 0.29 deprecates write_png (TorchCodec replaces it) and warns on every call.
pytestmark = pytest.mark.filterwarnings("ignore:The image decoding:DeprecationWarning")


def _write_folder(root: Path, splits=("train", "test"), per_class=8, size=(10, 12)) -> dict:
    return write_image_folder(root, splits=splits, per_class=per_class, size=size)


def _cfg(root: Path, cache: Path, **kwargs) -> DataConfig:
    kwargs.setdefault("num_workers", 0)
    return DataConfig(name="imagefolder", root=root, cache_dir=cache, val_fraction=0.2, **kwargs)


def _paths(split) -> list[str]:
    return [split.path(i) for i in range(len(split))]


def _batches(loader: DataLoader) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return list(loader)


# --------------------------------------------------------------------------- loader choice


def test_auto_streams_above_the_in_memory_limit_and_memory_refuses(tmp_path, monkeypatch):
    _write_folder(tmp_path / "pets")
    cfg = _cfg(tmp_path / "pets", tmp_path / "cache")
    assert isinstance(build_datamodule(cfg), TensorDataModule)
    assert isinstance(
        build_datamodule(_cfg(cfg.root, cfg.cache_dir, loader="stream")), StreamDataModule
    )

    # 48 images of 3 x 10 x 12 bytes = 17,280 bytes, estimated from the first file.
    assert sources.estimated_bytes(sources._imagefolder_files(cfg), None) == 48 * 3 * 10 * 12
    monkeypatch.setattr(sources, "MAX_IN_MEMORY_BYTES", 17_279)
    assert isinstance(build_datamodule(cfg), StreamDataModule)
    with pytest.raises(ValueError, match=r'in-memory limit.*data\.loader = "stream"'):
        build_datamodule(_cfg(cfg.root, tmp_path / "other-cache", loader="memory"))


def test_a_folder_estimated_above_the_real_limit_streams_without_decoding_it(tmp_path):
    # 48 images at 4096 x 4096 would take 2.25 GiB decoded: above the 2 GiB limit, so "auto"
    # streams them; nothing of that size is decoded (normalize=False estimates no statistics).
    _write_folder(tmp_path / "pets")
    cfg = _cfg(tmp_path / "pets", tmp_path / "cache", image_size=4096, normalize=False)
    dm = build_datamodule(cfg)
    assert isinstance(dm, StreamDataModule) and dm.input_shape == (3, 4096, 4096)
    assert not (tmp_path / "cache" / "decoded").exists()


def test_stream_loader_is_for_image_folders_only():
    with pytest.raises(ValueError, match=r'DataConfig\.loader = "stream".*"auto" or "memory"'):
        build_datamodule(DataConfig(loader="stream"))


# --------------------------------------------------------------------------- splits


@pytest.mark.parametrize(
    ("splits", "kwargs"),
    [
        (("train", "test"), {}),
        (("train",), {"per_class": 3, "val_per_class": 1}),
        (("train",), {"full_train": True}),
    ],
)
def test_the_same_file_goes_to_the_same_split_in_both_paths(tmp_path, splits, kwargs):
    written = _write_folder(tmp_path / "pets", splits=splits, per_class=10)
    full_train = kwargs.pop("full_train", False)
    build = {"full_train": full_train, "seed": 3}
    carves = pytest.warns if splits == ("train",) else lambda *a, **k: contextlib.nullcontext()
    with carves(UserWarning, match="no test/"):
        memory = build_datamodule(_cfg(tmp_path / "pets", tmp_path / "cache", **kwargs), **build)
    stream_cfg = _cfg(tmp_path / "pets", tmp_path / "cache", loader="stream", **kwargs)
    with carves(UserWarning, match="no test/"):
        stream = build_datamodule(stream_cfg, **build)
    assert stream.split_sizes == memory.split_sizes
    assert stream.class_names == memory.class_names == ("ant", "bee", "cat")
    for name in ("train", "val", "test"):
        mem, streamed = getattr(memory, f"{name}_split"), getattr(stream, f"{name}_split")
        if mem is None:
            assert streamed is None and full_train and stream.val_dataloader() == []
            continue
        assert torch.equal(streamed.source_indices, mem.source_indices)
        assert torch.equal(streamed.labels, mem.labels)
        # The files are the ones whose pixels the in-memory split holds, row for row.
        assert [
            torch.equal(written[p], image)
            for p, image in zip(_paths(streamed), mem.images, strict=True)
        ] == [True] * len(mem)
    # Both paths shuffle with randperm from (seed, epoch): the same labels in the same order.
    labels = [
        torch.cat([y for _, y in loader])
        for loader in (memory.train_dataloader(), stream.train_dataloader())
    ]
    assert torch.equal(*labels)


# --------------------------------------------------------------------------- batches


@pytest.mark.parametrize("num_workers", [0, 2])
def test_same_seed_gives_identical_batches_with_any_num_workers(tmp_path, num_workers):
    _write_folder(tmp_path / "pets")
    cfg = _cfg(
        tmp_path / "pets", tmp_path / "c", loader="stream", augment="flip_crop", batch_size=5
    )
    reference = build_datamodule(cfg, seed=1).train_dataloader()  # in-process
    loader = build_datamodule(
        _cfg(
            cfg.root,
            cfg.cache_dir,
            loader="stream",
            augment="flip_crop",
            batch_size=5,
            num_workers=num_workers,
        ),
        seed=1,
    ).train_dataloader()
    assert loader.num_workers == num_workers and loader.persistent_workers == (num_workers > 0)
    state = torch.get_rng_state()
    epochs = [_batches(loader), _batches(loader)]
    assert torch.equal(torch.get_rng_state(), state)  # augmentation seeds itself per image
    for epoch, batches in enumerate(epochs):
        reference.sampler.set_epoch(epoch)
        expected = _batches(reference)
        assert len(batches) == len(expected) == 4  # 18 train images: 3 x 5 + 3
        for (x, y), (x2, y2) in zip(batches, expected, strict=True):
            assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(epochs[0][0][0], epochs[1][0][0])  # a new shuffle and new crops
    other = build_datamodule(cfg, seed=2).train_dataloader()
    assert not torch.equal(_batches(other)[0][0], epochs[0][0][0])


def test_crops_and_flips_are_random_per_epoch_only_with_augmentation(tmp_path):
    _write_folder(tmp_path / "pets")

    def views(augment: str) -> list[torch.Tensor]:
        """Train image 0 as the training dataset serves it in epochs 0-3."""
        cfg = _cfg(
            tmp_path / "pets", tmp_path / "c", loader="stream", augment=augment, image_size=(6, 8)
        )
        dataset = build_datamodule(cfg).train_dataloader().dataset
        return [dataset[(0, epoch)][0] for epoch in range(4)]

    plain = views("none")
    assert all(view.shape == (3, 6, 8) for view in plain)
    assert all(torch.equal(view, plain[0]) for view in plain)
    augmented = views("flip_crop")
    assert all(view.shape == (3, 6, 8) for view in augmented)
    assert not all(torch.equal(view, augmented[0]) for view in augmented)
    assert all(torch.equal(a, b) for a, b in zip(augmented, views("flip_crop"), strict=True))


def test_evaluation_resizes_then_centre_crops_and_normalises_with_sampled_stats(
    tmp_path, monkeypatch
):
    written = _write_folder(tmp_path / "pets", size=(20, 30))
    monkeypatch.setattr(streaming, "STATS_IMAGES", 10)
    dm = build_datamodule(
        _cfg(tmp_path / "pets", tmp_path / "c", loader="stream", image_size=(8, 12))
    )
    assert dm.input_shape == (3, 8, 12) and dm.in_channels == 3 and dm.num_classes == 3

    def eval_view(path: str) -> torch.Tensor:
        # Shorter side to round(12 * 256 / 224) = 14, then the centre 8 x 12.
        resized = TF.resize(written[path], 14, antialias=True)
        assert resized.shape == (3, 14, 21)
        return TF.center_crop(resized, [8, 12])

    train = dm.train_split
    rows = np.sort(
        np.random.default_rng(streaming.STATS_SEED).choice(len(train), 10, replace=False)
    )
    expected_mean, expected_std = channel_stats(
        torch.stack([eval_view(train.path(r)) for r in rows])
    )
    assert torch.allclose(dm.mean, expected_mean) and torch.allclose(dm.std, expected_std)
    assert not torch.allclose(
        dm.mean, channel_stats(torch.stack([eval_view(p) for p in _paths(train)]))[0]
    )

    val = torch.cat([dm.on_after_batch_transfer(batch, 0)[0] for batch in dm.val_dataloader()])
    raw = torch.stack([eval_view(p) for p in _paths(dm.val_split)]).float() / 255
    assert torch.allclose(val * dm.std[:, None, None] + dm.mean[:, None, None], raw, atol=1e-5)


# --------------------------------------------------------------------------- unreadable files


@pytest.mark.parametrize("num_workers", [0, 2])
def test_a_corrupt_image_fails_its_batch_naming_the_file(tmp_path, num_workers):
    _write_folder(tmp_path / "pets", splits=("train",))
    (tmp_path / "pets" / "train" / "ant" / "notes.txt").write_text("not an image: skipped")
    bad = tmp_path / "pets" / "train" / "bee" / "broken.jpg"
    bad.write_bytes(encode_jpeg(torch.zeros(3, 8, 8, dtype=torch.uint8)).numpy().tobytes()[:40])
    cfg = _cfg(
        tmp_path / "pets", tmp_path / "c", loader="stream", normalize=False, num_workers=num_workers
    )
    with pytest.warns(UserWarning, match="no test/"):
        dm = build_datamodule(cfg)
    assert sum(dm.split_sizes.values()) == 3 * 8 + 1  # the .txt is no image; the .jpg is one
    (split,) = [
        name
        for name in ("train", "val", "test")
        if str(bad) in _paths(getattr(dm, f"{name}_split"))
    ]
    with pytest.raises(UnreadableImageError, match=rf"{bad}.*replace or delete the file"):
        _batches(getattr(dm, f"{split}_dataloader")())


def _write_broken_png(path: Path) -> None:
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 30)


@pytest.mark.parametrize("archive", [False, True], ids=["folder", "archive"])
@pytest.mark.parametrize(
    "kwargs",
    [{"loader": "memory"}, {"loader": "stream", "num_workers": 0}, {"loader": "stream"}],
    ids=["memory", "stream", "stream-worker"],
)
def test_a_corrupt_image_is_named_in_one_line_in_every_mode(tmp_path, archive, kwargs):
    """Decoding into memory, or the streaming statistics sample (in a DataLoader worker too,
    whose error torch re-raises with the worker's traceback as its message), from a folder or
    an extracted archive: :func:`error_message` is one line that starts with the file."""
    written = _write_folder(tmp_path / "pets", size=(16, 16), per_class=3)
    for path in written:  # every training image, so the statistics sample reads one
        if "/train/" in path:
            _write_broken_png(Path(path))
    root = tmp_path / "pets"
    if archive:
        root = tmp_path / "pets.tar.gz"
        with tarfile.open(root, "w:gz") as tar:
            tar.add(tmp_path / "pets", arcname="pets")
        shutil.rmtree(tmp_path / "pets")
    kwargs = {"num_workers": 1, "image_size": 16, **kwargs}  # no size read from a first file
    with pytest.raises(UnreadableImageError) as caught:
        build_datamodule(_cfg(root, tmp_path / "cache", **kwargs))
    message = error_message(caught.value)
    bad = re.match(r"imagefolder: (\S+/train/(ant|bee|cat)/0\d\.png) cannot be decoded", message)
    assert bad is not None and Path(bad[1]).is_file(), message
    folder = next((tmp_path / "cache").glob("pets-*")) / "pets" if archive else tmp_path / "pets"
    assert Path(bad[1]).parents[2] == folder
    assert "replace or delete the file" in message and "\n" not in message, message
    in_worker = kwargs["loader"] == "stream" and kwargs["num_workers"] == 1
    assert message.endswith("(in DataLoader worker process 0)") == in_worker, message


def test_a_long_fail_reason_keeps_the_file_at_its_end():
    reason = "UnreadableImageError: " + "x" * 3000 + " /data/pets/train/bee/zz-broken.png"
    clipped = clip_reason(reason)
    assert len(clipped) == schema.MAX_FAIL_REASON and " [...] " in clipped
    assert clipped.startswith("UnreadableImageError: x")
    assert clipped.endswith(" /data/pets/train/bee/zz-broken.png")
    assert clip_reason("short") == "short"


# --------------------------------------------------------------------------- training


def test_a_folder_above_the_in_memory_limit_trains_an_epoch_streaming(tmp_path, monkeypatch):
    _write_folder(tmp_path / "pets", size=(20, 20))
    monkeypatch.setattr(sources, "MAX_IN_MEMORY_BYTES", 10_000)  # the 48 images take 57,600 bytes
    cfg = _cfg(
        tmp_path / "pets",
        tmp_path / "c",
        image_size=16,
        augment="flip_crop",
        batch_size=8,
        num_workers=2,
    )
    dm = build_datamodule(cfg, seed=0)
    assert isinstance(dm, StreamDataModule)
    spec = ArchSpec(
        "resnet8", {"width": 4}, in_channels=dm.in_channels, num_classes=dm.num_classes, sites={}
    )
    module = ClassifierModule(spec, config=TrainingConfig(epochs=1, lr=0.05), seed=0)
    trainer = build_trainer(TrainingConfig(epochs=1, lr=0.05), seed=0, accelerator="cpu")
    trainer.fit(module, datamodule=dm)
    assert trainer.num_training_batches == 3  # 18 images in batches of 8
    assert 0.0 <= float(trainer.callback_metrics["val_acc"]) <= 1.0
    assert torch.isfinite(trainer.callback_metrics["train_loss"])


# --------------------------------------------------------------------------- real data


@pytest.mark.slow
def test_cifar10_streams_with_the_splits_and_statistics_of_the_memory_path(
    shared_data_dir, tmp_path
):
    cfg = DataConfig(
        name="imagefolder",
        root=shared_data_dir / "cifar10-jpeg.tar.gz",
        cache_dir=tmp_path,
        per_class=100,
        val_per_class=20,
        augment="flip_crop",
    )
    memory = build_datamodule(cfg)
    stream = build_datamodule(replace(cfg, loader="stream"))
    assert isinstance(stream, StreamDataModule) and stream.input_shape == memory.input_shape
    assert stream.class_names == memory.class_names and stream.split_sizes == memory.split_sizes
    for name in ("train", "val", "test"):
        mem, streamed = getattr(memory, f"{name}_split"), getattr(stream, f"{name}_split")
        assert torch.equal(streamed.source_indices, mem.source_indices)
        assert torch.equal(streamed.labels, mem.labels)
    assert Path(stream.test_split.path(0)).parts[-3] == "test"
    # 500 sampled images (after resize 37 + centre crop 32) against the whole train split.
    assert torch.allclose(stream.mean, memory.mean, atol=0.02)
    assert torch.allclose(stream.std, memory.std, atol=0.02)
    raw, labels = next(iter(stream.train_dataloader()))
    assert raw.shape == (128, 3, 32, 32) and labels.shape == (128,)
    # The loader sends uint8 (a quarter of float32's bytes to the device); the model's input is
    # scaled and normalised after the transfer, exactly as the formula says.
    assert raw.dtype == torch.uint8
    images, same_labels = stream.on_after_batch_transfer((raw, labels), 0)
    mean, std = stream.mean[:, None, None], stream.std[:, None, None]
    assert torch.equal(images, (raw.float() / 255.0 - mean) / std)
    assert images.dtype == torch.float32 and same_labels is labels


# --------------------------------------------------------------------------- a whole study


@pytest.mark.slow  # decoding worker processes, 6 trials
def test_a_study_on_a_folder_above_the_limit_trains_prunes_reports_and_exports(
    tiny_config, tmp_path, monkeypatch, capsys
):
    _write_folder(tmp_path / "pets", size=(16, 16), per_class=10)
    monkeypatch.setattr(sources, "MAX_IN_MEMORY_BYTES", 10_000)  # 60 images of 768 bytes: stream
    study = tiny_config(
        study={"n_trials": 6, "population_size": 2},
        data={
            "name": "imagefolder",
            "root": str(tmp_path / "pets"),
            "cache_dir": str(tmp_path / "cache"),
            "batch_size": 8,
            "num_workers": 1,
        },
        training={"epochs": 2},
        pruning={"pruner": "moasha", "min_epochs": 1, "reduction_factor": 2},
    )
    del study["data"]["per_class"], study["data"]["val_per_class"]  # the whole folder
    config = tmp_path / "study.toml"
    config.write_bytes(tomli_w.dumps(study).encode())
    assert main(["search", str(config), "--no-progress"]) == 0
    assert main(["report", str(config), "--out", str(tmp_path / "report")]) == 0
    assert main(["export", str(config), "--pareto", "--out", str(tmp_path / "export")]) == 0
    capsys.readouterr()
    cfg = StudyConfig.from_dict(study)
    storage = open_storage(cfg.study.storage_url())
    trials = optuna.load_study(study_name=cfg.study.name, storage=storage).get_trials()
    states = {t.state.name for t in trials}
    assert "PRUNED" in states and "COMPLETE" in states, states
    assert all(schema.ARCH.get(t)["in_channels"] == 3 for t in trials)
    exported = sorted((tmp_path / "export").glob("trial_*"))
    assert exported and all((folder / "weights.pt").is_file() for folder in exported)


@pytest.mark.parametrize("num_workers", [0, 1])
def test_a_corrupt_image_fails_the_trials_that_read_it_naming_the_file(
    tiny_config, tmp_path, monkeypatch, capsys, num_workers
):
    """Each trial that reads the file FAILs naming it (the study stays readable; it stops once
    every trial failed), in a DataLoader worker too: there torch's message is the worker's
    traceback, longer than a stored fail_reason, and the reason keeps the original error. A
    file in the statistics sample fails the start instead, before any study is stored
    (`test_a_corrupt_image_in_the_statistics_sample_fails_the_start_in_one_line`)."""
    _write_folder(tmp_path / "pets", size=(16, 16), per_class=6)
    bad = tmp_path / "pets" / "train" / "bee" / "zz-broken.png"
    _write_broken_png(bad)
    monkeypatch.setattr(sources, "MAX_IN_MEMORY_BYTES", 1_000)  # stream: read during the epochs
    monkeypatch.setattr(streaming, "STATS_IMAGES", 4)  # the statistics sample misses the bad file
    study = tiny_config(
        study={"n_trials": 2},
        data={
            "name": "imagefolder",
            "root": str(tmp_path / "pets"),
            "cache_dir": str(tmp_path / "cache"),
            "batch_size": 64,
            "num_workers": num_workers,
        },
        training={"epochs": 1},
    )
    del study["data"]["per_class"], study["data"]["val_per_class"]
    config = tmp_path / "study.toml"
    config.write_bytes(tomli_w.dumps(study).encode())
    assert main(["search", str(config), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "2 trials failed and none finished" in err and "Traceback" not in err
    cfg = StudyConfig.from_dict(study)
    storage = open_storage(cfg.study.storage_url())
    trials = optuna.load_study(study_name=cfg.study.name, storage=storage).get_trials()
    assert len(trials) == 2  # the study itself stays readable
    for trial in trials:
        reason = schema.FAIL_REASON.get(trial)
        assert reason.startswith(f"UnreadableImageError: imagefolder: {bad} cannot be decoded")
        assert "Traceback" not in reason


def test_a_corrupt_image_in_the_statistics_sample_fails_the_start_in_one_line(
    tiny_config, tmp_path, monkeypatch, capsys
):
    _write_folder(tmp_path / "pets", size=(16, 16), per_class=3)
    for bad in sorted((tmp_path / "pets" / "train").glob("*/*.png")):
        _write_broken_png(bad)  # every one, so the statistics sample reads one
    monkeypatch.setattr(sources, "MAX_IN_MEMORY_BYTES", 1_000)  # stream, statistics first
    study = tiny_config(
        data={
            "name": "imagefolder",
            "root": str(tmp_path / "pets"),
            "cache_dir": str(tmp_path / "cache"),
            "num_workers": 1,
            "image_size": 16,  # no size read from a first file: the workers read them all
        },
    )
    del study["data"]["per_class"], study["data"]["val_per_class"]
    config = tmp_path / "study.toml"
    config.write_bytes(tomli_w.dumps(study).encode())
    assert main(["search", str(config), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    train = tmp_path / "pets" / "train"
    assert re.match(rf"nas search: error: imagefolder: {train}/\w+/0\d\.png cannot be", err), err
    assert len(err.splitlines()) == 1 and "in DataLoader worker process 0" in err, err
    cfg = StudyConfig.from_dict(study)
    assert optuna.get_all_study_names(open_storage(cfg.study.storage_url())) == []
