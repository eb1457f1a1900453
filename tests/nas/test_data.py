"""Tests for nas.data: splits, augmentation, loaders, Lightning integration, image folders."""

from __future__ import annotations

import io
import re
import tarfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from _image_folders import write_image_folder
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader
from torchvision.io import write_png

from nas import data
from nas.data import (
    BatchAugment,
    DataConfig,
    Split,
    TensorDataModule,
    augment_policy,
    build_datamodule,
    pad_and_crop,
    sources,
    stratified_split,
)

# torchvision 0.29 deprecates write_png (TorchCodec replaces it) and warns on every call.
pytestmark = pytest.mark.filterwarnings("ignore:The image decoding:DeprecationWarning")

DIGITS = load_digits()


def _rows(images: torch.Tensor) -> Counter:
    return Counter(row.numpy().tobytes() for row in images.reshape(images.shape[0], -1))


def _class_counts(labels: torch.Tensor) -> dict[int, int]:
    return dict(sorted(Counter(labels.tolist()).items()))


# --------------------------------------------------------------------------- digits splits


def test_digits_shapes_splits_and_contents():
    dm = build_datamodule(DataConfig())
    assert dm.input_shape == (1, 8, 8) and dm.in_channels == 1
    assert dm.num_classes == 10 and dm.class_names == tuple(str(i) for i in range(10))
    train, val, test = dm.train_split, dm.val_split, dm.test_split
    sizes = dm.split_sizes
    assert sum(sizes.values()) == 1797

    # Stratified: round(0.2 * n_c) of each class held out as test, round(0.1 * rest) as val.
    class_sizes = np.bincount(DIGITS.target)
    test_counts = _class_counts(test.labels)
    val_counts = _class_counts(val.labels)
    for cls, size in enumerate(class_sizes):
        assert test_counts[cls] == round(0.2 * size)
        assert val_counts[cls] == round(0.1 * (size - test_counts[cls]))

    # Train, val and test index disjoint rows of the same pool and together cover it.
    rows = [set(split.source_indices.tolist()) for split in (train, val, test)]
    assert not (rows[0] & rows[1] or rows[0] & rows[2] or rows[1] & rows[2])
    assert set.union(*rows) == set(range(1797))

    # Each image and label is the one load_digits has at that row, scaled to [0, 1].
    for split in (train, val, test):
        index = split.source_indices.numpy()
        expected = torch.from_numpy(DIGITS.images[index]).float().div(16).unsqueeze(1)
        assert torch.equal(split.images, expected)
        assert torch.equal(split.labels, torch.from_numpy(DIGITS.target[index]).long())


def test_split_seed_moves_val_but_never_test():
    first = build_datamodule(DataConfig(split_seed=0))
    again = build_datamodule(DataConfig(split_seed=0))
    other = build_datamodule(DataConfig(split_seed=1))
    assert torch.equal(first.val_split.source_indices, again.val_split.source_indices)
    assert torch.equal(first.train_split.source_indices, again.train_split.source_indices)
    assert not torch.equal(first.val_split.source_indices, other.val_split.source_indices)
    assert torch.equal(first.test_split.source_indices, other.test_split.source_indices)


def test_stratified_split_keeps_every_class_on_both_sides():
    labels = np.array([0] * 2 + [1] * 3 + [2] * 40)
    kept, held = stratified_split(labels, 0.1, seed=3)
    assert sorted(np.concatenate([kept, held]).tolist()) == list(range(45))
    assert Counter(labels[held].tolist()) == {0: 1, 1: 1, 2: 4}
    assert Counter(labels[kept].tolist()) == {0: 1, 1: 2, 2: 36}


def test_per_class_subsets():
    full = build_datamodule(DataConfig())
    small = build_datamodule(DataConfig(per_class=5, val_per_class=3))
    assert _class_counts(small.train_split.labels) == dict.fromkeys(range(10), 5)
    assert _class_counts(small.val_split.labels) == dict.fromkeys(range(10), 3)
    assert set(small.train_split.source_indices.tolist()) <= set(
        full.train_split.source_indices.tolist()
    )
    assert set(small.val_split.source_indices.tolist()) <= set(
        full.val_split.source_indices.tolist()
    )
    assert torch.equal(small.test_split.source_indices, full.test_split.source_indices)
    again = build_datamodule(DataConfig(per_class=5, val_per_class=3))
    assert torch.equal(small.train_split.source_indices, again.train_split.source_indices)
    # More than a class holds keeps the whole class.
    capped = build_datamodule(DataConfig(per_class=10_000))
    assert torch.equal(capped.train_split.source_indices, full.train_split.source_indices)


def test_test_per_class_is_a_fixed_subset_of_the_test_split():
    full = build_datamodule(DataConfig())
    cut = build_datamodule(DataConfig(test_per_class=4))
    moved = build_datamodule(DataConfig(test_per_class=4, split_seed=3, per_class=5))
    assert _class_counts(cut.test_split.labels) == dict.fromkeys(range(10), 4)
    assert set(cut.test_split.source_indices.tolist()) <= set(
        full.test_split.source_indices.tolist()
    )
    # The split seed and the training cuts never move it; train and val are untouched.
    assert torch.equal(cut.test_split.source_indices, moved.test_split.source_indices)
    assert torch.equal(cut.val_split.source_indices, full.val_split.source_indices)
    assert cut.split_sizes["test"] == 40


def test_full_train_is_the_whole_pool_without_validation():
    cut = DataConfig(per_class=5, val_per_class=3)
    search = build_datamodule(cut)
    uncut = build_datamodule(DataConfig())
    full = build_datamodule(cut, full_train=True)
    pool = torch.cat([uncut.train_split.source_indices, uncut.val_split.source_indices])
    assert torch.equal(full.train_split.source_indices, pool.sort().values)
    assert full.val_split is None and full.split_sizes["val"] == 0
    assert full.val_dataloader() == []
    assert torch.equal(full.test_split.source_indices, search.test_split.source_indices)
    assert torch.allclose(full.mean, full.train_split.images.mean().reshape(1), atol=1e-6)


# --------------------------------------------------------------------------- normalisation


def test_normalisation_stats_come_from_train_only():
    dm = build_datamodule(DataConfig(per_class=5))
    train = dm.train_split.images
    assert torch.allclose(dm.mean, train.mean().reshape(1), atol=1e-6)
    assert torch.allclose(dm.std, train.std(unbiased=False).reshape(1), atol=1e-6)
    everything = torch.from_numpy(DIGITS.images).float().div(16)
    assert not torch.allclose(dm.mean, everything.mean().reshape(1), atol=1e-3)

    # Val batches are normalised with the train statistics, in order, without augmentation.
    val = torch.cat([images for images, _ in dm.val_dataloader()])
    assert torch.allclose(val * dm.std + dm.mean, dm.val_split.images, atol=1e-5)

    raw = build_datamodule(DataConfig(per_class=5, normalize=False))
    assert raw.mean is None and raw.std is None
    assert torch.equal(torch.cat([x for x, _ in raw.val_dataloader()]), raw.val_split.images)


# --------------------------------------------------------------------------- augmentation


def test_pad_and_crop_shifts_content_by_the_offset():
    image = torch.arange(1, 2 * 4 * 5 + 1, dtype=torch.float32).reshape(1, 2, 4, 5)
    batch = image.repeat(3, 1, 1, 1)
    out = pad_and_crop(batch, padding=2, offsets=torch.tensor([[2, 2], [0, 1], [4, 3]]))
    assert out.shape == batch.shape
    assert torch.equal(out[0], image[0])  # centre crop: unchanged
    # (dy, dx) = (0, 1): content moves down by 2 and right by 1, zeros fill the border.
    assert torch.equal(out[1, :, 2:, 1:], image[0, :, :-2, :-1])
    assert out[1, :, :2].abs().sum() == 0 and out[1, :, :, :1].abs().sum() == 0
    # (dy, dx) = (4, 3): content moves up by 2 and left by 1.
    assert torch.equal(out[2, :, :-2, :-1], image[0, :, 2:, 1:])
    assert out[2, :, -2:].abs().sum() == 0 and out[2, :, :, -1:].abs().sum() == 0


def _candidates(image: torch.Tensor, padding: int, flip: bool) -> list[torch.Tensor]:
    shifts = [
        pad_and_crop(image[None], padding, torch.tensor([[dy, dx]]))[0]
        for dy in range(2 * padding + 1)
        for dx in range(2 * padding + 1)
    ]
    return shifts + [s.flip(-1) for s in shifts] if flip else shifts


@pytest.mark.parametrize("flip", [False, True])
def test_batch_augment_outputs_are_shifts_and_flips_only_where_enabled(flip):
    images = torch.rand(64, 2, 6, 7)
    out = BatchAugment(padding=1, flip=flip)(images, torch.Generator().manual_seed(0))
    assert out.shape == images.shape
    flipped = 0
    for source, result in zip(images, out, strict=True):
        candidates = _candidates(source, 1, flip)
        match = [i for i, c in enumerate(candidates) if torch.equal(c, result)]
        assert match, "augmented image is not a padded crop (or its mirror) of its input"
        flipped += match[0] >= 9
    assert (flipped > 0) == flip
    if flip:
        assert flipped < 64


def test_augment_policies_per_dataset():
    assert augment_policy("digits", "flip_crop", 8) == BatchAugment(padding=1, flip=False)
    assert augment_policy("svhn", "flip_crop", 32) == BatchAugment(padding=4, flip=False)
    assert augment_policy("cifar10", "flip_crop", 32) == BatchAugment(padding=4, flip=True)
    assert augment_policy("imagefolder", "flip_crop", 64) == BatchAugment(padding=8, flip=True)
    assert augment_policy("cifar10", "none", 32).is_identity
    assert build_datamodule(DataConfig(augment="flip_crop")).augment == BatchAugment(1, False)


# --------------------------------------------------------------------------- loaders


def _epoch(loader) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return list(loader)


def test_train_batches_are_reproducible_per_seed_and_epoch():
    cfg = DataConfig(per_class=20, batch_size=32, augment="flip_crop")
    first = _epoch(build_datamodule(cfg, seed=0).train_dataloader())
    same = _epoch(build_datamodule(cfg, seed=0).train_dataloader())
    other = _epoch(build_datamodule(cfg, seed=1).train_dataloader())
    for (x, y), (x2, y2) in zip(first, same, strict=True):
        assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(first[0][0], other[0][0])

    loader = build_datamodule(cfg, seed=0).train_dataloader()
    epoch0, epoch1 = _epoch(loader), _epoch(loader)
    assert not torch.equal(epoch0[0][0], epoch1[0][0])
    loader.sampler.set_epoch(1)  # what Lightning calls at every epoch start: replays epoch 1
    assert all(torch.equal(a[0], b[0]) for a, b in zip(epoch1, _epoch(loader), strict=True))


def test_loaders_are_in_process_dataloaders_that_leave_the_global_rng_alone():
    dm = build_datamodule(DataConfig(per_class=20, batch_size=32, augment="flip_crop"))
    loaders = [dm.train_dataloader(), dm.val_dataloader(), dm.test_dataloader()]
    assert all(isinstance(loader, DataLoader) for loader in loaders)
    assert all(loader.num_workers == 0 and not loader.pin_memory for loader in loaders)
    state = torch.get_rng_state()
    for loader in loaders:
        images, labels = next(iter(loader))
        assert images.dtype == torch.float32 and labels.dtype == torch.int64
    # Seeding comes from (seed, epoch) only: other code's draws from torch's RNG do not move.
    assert torch.equal(torch.get_rng_state(), state)


def test_an_epoch_shuffles_then_augments_from_one_generator_seeded_by_seed_and_epoch():
    cfg = DataConfig(per_class=20, batch_size=32, augment="flip_crop", normalize=False)
    dm = build_datamodule(cfg, seed=5)
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(3)
    batches = _epoch(loader)
    generator = torch.Generator().manual_seed(data.epoch_seed(5, 3))
    order = torch.randperm(len(dm.train_split), generator=generator)
    for start, (images, labels) in zip(range(0, len(order), 32), batches, strict=True):
        index = order[start : start + 32]
        assert torch.equal(labels, dm.train_split.labels[index])
        assert torch.equal(images, dm.augment(dm.train_split.images[index], generator))


def test_train_epoch_visits_every_image_once():
    dm = build_datamodule(DataConfig(per_class=20, batch_size=32, normalize=False))
    batches = _epoch(dm.train_dataloader())
    assert len(batches) == len(dm.train_dataloader()) == 7  # 200 images: 6 x 32 + 8
    images = torch.cat([x for x, _ in batches])
    labels = torch.cat([y for _, y in batches])
    assert _rows(images) == _rows(dm.train_split.images)
    assert _class_counts(labels) == dict.fromkeys(range(10), 20)


def test_trailing_batch_of_one_is_dropped_for_training_only():
    dm = build_datamodule(DataConfig(per_class=5, val_per_class=5, batch_size=7))  # 50 = 7*7+1
    train = _epoch(dm.train_dataloader())
    assert len(train) == 7 and all(x.shape[0] == 7 for x, _ in train)
    assert sum(x.shape[0] for x, _ in dm.val_dataloader()) == 50


def test_evaluation_batches_default_to_four_training_batches_and_follow_the_config():
    default = build_datamodule(DataConfig(per_class=5, val_per_class=9, batch_size=7))  # 90 val
    assert [x.shape[0] for x, _ in default.val_dataloader()] == [28, 28, 28, 6]
    given = build_datamodule(
        DataConfig(per_class=5, val_per_class=9, batch_size=7, eval_batch_size=50)
    )
    assert [x.shape[0] for x, _ in given.val_dataloader()] == [50, 40]
    assert torch.equal(
        torch.cat([x for x, _ in default.val_dataloader()]),
        torch.cat([x for x, _ in given.val_dataloader()]),
    )  # the same images, in the same order


def test_datamodule_rejects_inconsistent_splits():
    good = Split(torch.zeros(4, 1, 8, 8), torch.tensor([0, 1, 0, 1]))
    with pytest.raises(ValueError, match="val"):
        TensorDataModule(good, Split(torch.zeros(4, 1, 6, 6), good.labels), good, class_names="ab")
    with pytest.raises(ValueError, match="labels"):
        TensorDataModule(good, good, Split(good.images, good.labels + 1), class_names="ab")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device"):
            TensorDataModule(good, good, good, class_names="ab", device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_resident_splits_serve_batches_on_the_gpu():
    dm = build_datamodule(
        DataConfig(per_class=20, batch_size=32, augment="flip_crop"), device="cuda"
    )
    dm.setup("fit")
    cpu = build_datamodule(DataConfig(per_class=20, batch_size=32, augment="flip_crop"))
    for gpu_batch, cpu_batch in zip(dm.train_dataloader(), cpu.train_dataloader(), strict=True):
        assert all(t.device.type == "cuda" for t in gpu_batch)
        # Random numbers come from a CPU generator: the GPU draws the same crops and flips.
        assert torch.allclose(gpu_batch[0].cpu(), cpu_batch[0], atol=1e-6)
        assert torch.equal(gpu_batch[1].cpu(), cpu_batch[1])


# --------------------------------------------------------------------------- Lightning


class _TinyClassifier(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
        self.first_batches: list[torch.Tensor] = []
        self.train_seen = self.val_seen = self.test_seen = 0

    def training_step(self, batch, batch_idx):
        images, labels = batch
        if batch_idx == 0:
            self.first_batches.append(images.clone())
        self.train_seen += images.shape[0]
        return nn.functional.cross_entropy(self.net(images), labels)

    def validation_step(self, batch, batch_idx):
        images, labels = batch
        self.val_seen += images.shape[0]
        self.log("val_loss", nn.functional.cross_entropy(self.net(images), labels))

    def test_step(self, batch, batch_idx):
        self.test_seen += batch[0].shape[0]

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_fits_inside_a_lightning_trainer():
    dm = build_datamodule(DataConfig(per_class=20, batch_size=32, augment="flip_crop"), seed=4)
    model = _TinyClassifier()
    trainer = L.Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(model, datamodule=dm)
    assert model.train_seen == 2 * 200 and model.val_seen == 2 * dm.split_sizes["val"]
    assert torch.isfinite(trainer.callback_metrics["val_loss"])
    # Lightning sets the epoch on the loader: what it trained on is what the seed replays.
    loader = dm.train_dataloader()
    for epoch, seen in enumerate(model.first_batches):
        loader.sampler.set_epoch(epoch)
        assert torch.equal(next(iter(loader))[0], seen)
    trainer.test(model, datamodule=dm, verbose=False)
    assert model.test_seen == dm.split_sizes["test"]


@pytest.mark.filterwarnings("ignore:Total length of `list` across ranks is zero")
def test_full_train_fits_without_a_validation_loop():
    dm = build_datamodule(DataConfig(batch_size=256), full_train=True)
    model = _TinyClassifier()
    trainer = L.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=dm)
    assert model.train_seen == dm.split_sizes["train"] and model.val_seen == 0


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": "imagenet"}, "name"),
        ({"name": "imagefolder"}, "root"),
        ({"download": "yes"}, "download"),
        ({"val_fraction": 0.0}, "val_fraction"),
        ({"val_fraction": 1.5}, "val_fraction"),
        ({"split_seed": -1}, "split_seed"),
        ({"per_class": 0}, "per_class"),
        ({"val_per_class": 2.5}, "val_per_class"),
        ({"test_per_class": 0}, "test_per_class"),
        ({"batch_size": 0}, "batch_size"),
        ({"eval_batch_size": -4}, "eval_batch_size"),
        ({"augment": "autoaugment"}, "augment"),
        ({"image_size": 32}, "image_size"),
        ({"name": "imagefolder", "root": ".", "image_size": (32, 0)}, "image_size"),
        ({"normalize": 1}, "normalize"),
    ],
)
def test_config_errors_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=rf"DataConfig\.{field}"):
        DataConfig(**kwargs)


def test_build_rejects_a_negative_seed():
    with pytest.raises(ValueError, match="seed"):
        build_datamodule(DataConfig(), seed=-1)


@pytest.mark.parametrize("name", data.TORCHVISION_DATASETS)
def test_missing_torchvision_files_point_at_download(tmp_path, name):
    with pytest.raises(FileNotFoundError, match=r"download=True"):
        build_datamodule(DataConfig(name=name, root=tmp_path, download=False))


# --------------------------------------------------------------------------- image folders


def _write_folder(root: Path, splits=("train", "test"), per_class=6, size=(6, 5)) -> dict:
    return write_image_folder(root, splits=splits, per_class=per_class, size=size)


def _folder_cfg(root: Path, cache: Path, **kwargs) -> DataConfig:
    return DataConfig(name="imagefolder", root=root, cache_dir=cache, val_fraction=0.2, **kwargs)


def _lookup(written: dict, image: torch.Tensor) -> str:
    return next(path for path, pixels in written.items() if torch.equal(pixels, image))


def test_imagefolder_decodes_labels_and_caches(tmp_path, monkeypatch):
    written = _write_folder(tmp_path / "pets")
    dm = build_datamodule(_folder_cfg(tmp_path / "pets", tmp_path / "cache"))
    assert dm.class_names == ("ant", "bee", "cat")
    assert dm.input_shape == (3, 6, 5) and dm.train_split.images.dtype == torch.uint8
    assert dm.split_sizes == {"train": 15, "val": 3, "test": 18}
    for split in (dm.train_split, dm.val_split, dm.test_split):
        for image, label in zip(split.images, split.labels, strict=True):
            assert Path(_lookup(written, image)).parent.name == dm.class_names[label]
    assert {Path(_lookup(written, x)).parts[-3] for x in dm.test_split.images} == {"test"}
    assert len(list((tmp_path / "cache" / "decoded").glob("pets-*.pt"))) == 1

    # A second build reads the decoded cache instead of the images.
    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again despite the cache")

    monkeypatch.setattr(sources, "decode_images", no_decoding)
    again = build_datamodule(_folder_cfg(tmp_path / "pets", tmp_path / "cache"))
    assert torch.equal(again.train_split.images, dm.train_split.images)


def test_imagefolder_without_test_carves_one_and_says_so(tmp_path):
    _write_folder(tmp_path / "pets", splits=("train",), per_class=10)
    with pytest.warns(UserWarning, match="no test/ folder"):
        dm = build_datamodule(_folder_cfg(tmp_path / "pets", tmp_path / "cache"))
    assert _class_counts(dm.test_split.labels) == {0: 2, 1: 2, 2: 2}
    rows = [set(s.source_indices.tolist()) for s in (dm.train_split, dm.val_split, dm.test_split)]
    assert not (rows[0] & rows[2] or rows[1] & rows[2])


def test_imagefolder_sizes_and_memory_limit(tmp_path, monkeypatch):
    root = tmp_path / "pets"
    _write_folder(root)
    write_png(torch.zeros(3, 9, 9, dtype=torch.uint8), str(root / "train" / "ant" / "big.png"))
    with pytest.raises(ValueError, match=r"DataConfig\.image_size"):
        build_datamodule(_folder_cfg(root, tmp_path / "cache"))
    resized = build_datamodule(_folder_cfg(root, tmp_path / "cache", image_size=(4, 4)))
    assert resized.input_shape == (3, 4, 4)
    # Above the limit, loader="memory" refuses and names the fix (the default "auto" streams).
    monkeypatch.setattr(sources, "MAX_IN_MEMORY_BYTES", 1000)
    cfg = _folder_cfg(root, tmp_path / "other-cache", image_size=(5, 5), loader="memory")
    with pytest.raises(ValueError, match=r'in-memory limit.*data\.loader = "stream"'):
        build_datamodule(cfg)


def _without_extraction_filters(monkeypatch) -> None:
    """Make ``tarfile`` look like Python before 3.11.4 (Debian 12's 3.11.2): no ``data_filter``,
    and an ``extractall`` that takes no ``filter`` argument (on such an interpreter: as it is)."""
    if not hasattr(tarfile, "data_filter"):
        return
    monkeypatch.delattr(tarfile, "data_filter")
    original = tarfile.TarFile.extractall

    def extractall(self, path=".", members=None, *, numeric_owner=False):
        return original(self, path, members, numeric_owner=numeric_owner, filter="fully_trusted")

    monkeypatch.setattr(tarfile.TarFile, "extractall", extractall)


@pytest.mark.parametrize("filters", [True, False], ids=["with-filter", "before-3.11.4"])
def test_imagefolder_archive_is_extracted_once(tmp_path, monkeypatch, filters):
    if not filters:
        _without_extraction_filters(monkeypatch)
    _write_folder(tmp_path / "pets")
    archive = tmp_path / "pets.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "pets", arcname="pets")  # one top-level folder holding train/ test/
    cache = tmp_path / "cache"
    dm = build_datamodule(_folder_cfg(archive, cache))
    (extracted,) = cache.glob("pets-*")
    assert len(extracted.name) == len("pets-") + 12
    assert (extracted / "pets" / "train" / "ant").is_dir()
    assert len(list((extracted / "pets").glob("decoded-*.pt"))) == 1
    assert dm.split_sizes == {"train": 15, "val": 3, "test": 18}
    stamp = extracted.stat().st_mtime_ns
    build_datamodule(_folder_cfg(archive, cache))
    assert extracted.stat().st_mtime_ns == stamp and len(list(cache.iterdir())) == 1


def _member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.type, member.linkname = kind, linkname
    return member


UNSAFE_MEMBERS = {
    "parent": ([_member("pets/../../escape.txt")], "pets/../../escape.txt", "outside"),
    "absolute": ([_member("/tmp/absolute.txt")], "/tmp/absolute.txt", "absolute path"),
    "symlink to /etc": ([_member("pets/etc", tarfile.SYMTYPE, "/etc")], "pets/etc", "/etc"),
    "symlink out": ([_member("pets/up", tarfile.SYMTYPE, "../../..")], "pets/up", "outside"),
    "hard link out": ([_member("pets/pw", tarfile.LNKTYPE, "../etc/passwd")], "pets/pw", "outside"),
    "device": ([_member("pets/null", tarfile.CHRTYPE)], "pets/null", "device"),
    # Each link stays inside, but "b" resolves through "a" (the folder itself) to its parent.
    "link chain": (
        [_member("a", tarfile.SYMTYPE, "."), _member("a/b", tarfile.SYMTYPE, "..")],
        "a/b",
        "through a symlink",
    ),
    "write through a link": (
        [_member("pets", tarfile.SYMTYPE, "."), _member("pets/x.txt")],
        "pets/x.txt",
        "through a symlink",
    ),
}


@pytest.mark.parametrize("filters", [True, False], ids=["with-filter", "before-3.11.4"])
@pytest.mark.parametrize("case", list(UNSAFE_MEMBERS))
def test_unsafe_archive_members_are_refused_naming_archive_and_member(
    tmp_path, monkeypatch, filters, case
):
    if not filters:
        _without_extraction_filters(monkeypatch)
    _write_folder(tmp_path / "pets", splits=("train",), per_class=1)
    archive = tmp_path / "evil.tar.gz"
    members, name, reason = UNSAFE_MEMBERS[case]
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "pets", arcname="pets")
        for member in members:
            tar.addfile(member, io.BytesIO(b"") if member.isreg() else None)
    cache = tmp_path / "cache" / "deep" / "down"
    with pytest.raises(ValueError, match=rf"{archive}.*{re.escape(repr(name))}.*{reason}"):
        build_datamodule(_folder_cfg(archive, cache))
    assert list(cache.iterdir()) == []  # nothing extracted, no staging folder left


def test_imagefolder_rejects_a_folder_without_train(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="train/"):
        build_datamodule(_folder_cfg(tmp_path / "empty", tmp_path / "cache"))


def _write_png(path: Path) -> None:
    write_png(torch.zeros(3, 6, 5, dtype=torch.uint8), str(path))


def _one_line_error(cfg: DataConfig, *parts: str) -> str:
    """The ValueError ``build_datamodule(cfg)`` raises: one line, on DataConfig.root, naming
    every one of ``parts``."""
    with pytest.raises(ValueError) as caught:
        build_datamodule(cfg)
    message = str(caught.value)
    assert message.startswith("DataConfig.root: ") and "\n" not in message, message
    assert all(part in message for part in parts), message
    return message


#: (link inside tmp_path/pets, its target): each resolves into the dataset folder.
LINKS_INTO_THE_TREE = {
    "loop to its folder": ("train/cat/loop", "."),
    "loop to the class folder's parent": ("train/cat/up", ".."),
    "test images into train": ("train/cat/leak", "../../test/cat"),
    "a file of another class": ("train/cat/99.png", "../ant/00.png"),
    "a class folder into train": ("test/cat", "../train/cat"),
}


@pytest.mark.parametrize("case", list(LINKS_INTO_THE_TREE))
def test_imagefolder_refuses_a_symlink_back_into_the_tree(tmp_path, case):
    _write_folder(tmp_path / "pets")
    name, target = LINKS_INTO_THE_TREE[case]
    link = tmp_path / "pets" / name
    if link.is_dir():
        for image in link.iterdir():
            image.unlink()
        link.rmdir()
    link.symlink_to(target)
    _one_line_error(
        _folder_cfg(tmp_path / "pets", tmp_path / "cache"),
        f"the symlink {link} points back into the dataset folder",
        "remove it",
    )
    assert not (tmp_path / "cache").exists()  # refused before anything is decoded or cached


@pytest.mark.parametrize("target", ["extra", ".."], ids=["loop outside", "above the tree"])
def test_imagefolder_refuses_a_symlink_loop_outside_the_tree(tmp_path, target):
    _write_folder(tmp_path / "pets")
    _write_folder(tmp_path / "extra", splits=("more",), per_class=1)
    (tmp_path / "pets" / "train" / "cat" / "more").symlink_to(tmp_path / "extra" / "more" / "cat")
    (tmp_path / "extra" / "more" / "cat" / "loop").symlink_to(tmp_path / target)
    _one_line_error(
        _folder_cfg(tmp_path / "pets", tmp_path / "cache"),
        f"the symlink {tmp_path / 'pets' / 'train' / 'cat' / 'more' / 'loop'} points to",
        "symlink loop",
        "remove the link",
    )


def test_imagefolder_follows_links_out_of_the_tree_counting_each_file_once(tmp_path):
    """Links out of the tree work as in torchvision's ImageFolder; two links to one folder and a
    link to a file already in it add each file once."""
    _write_folder(tmp_path / "pets")
    extra = _write_folder(tmp_path / "extra", splits=("more",), per_class=3)
    cat = tmp_path / "pets" / "train" / "cat"
    (cat / "more").symlink_to(tmp_path / "extra" / "more" / "cat")
    (cat / "again").symlink_to(tmp_path / "extra" / "more" / "cat")
    (cat / "one.png").symlink_to(tmp_path / "extra" / "more" / "cat" / "01.png")
    (tmp_path / "pets" / "train" / "ant" / "ants").symlink_to(tmp_path / "extra" / "more" / "ant")
    files = sources._imagefolder_files(_folder_cfg(tmp_path / "pets", tmp_path / "cache"))
    resolved = [str(Path(path).resolve()) for path, _ in files.train]
    assert len(resolved) == len(set(resolved)) == 3 * 6 + 3 + 3
    counts = Counter(files.class_names[label] for _, label in files.train)
    assert counts == {"ant": 9, "bee": 6, "cat": 9}
    linked = [path for path in resolved if path.startswith(str(tmp_path.resolve() / "extra"))]
    assert sorted(linked) == sorted(str(Path(p).resolve()) for p in extra if "/bee/" not in p)
    # A file is kept where ImageFolder's order (folders by path, then files) meets it first.
    kept = [Path(path).relative_to(cat).as_posix() for path, _ in files.train if "/cat/" in path]
    assert kept[6:] == ["one.png", "again/00.png", "again/02.png"]
    dm = build_datamodule(_folder_cfg(tmp_path / "pets", tmp_path / "cache"))
    assert sum(dm.split_sizes.values()) == 24 + 18


@pytest.mark.parametrize("other", ["train/ant/cats", "test/cat/cats"], ids=["class", "split"])
def test_imagefolder_refuses_one_file_in_two_classes_or_splits(tmp_path, other):
    _write_folder(tmp_path / "pets")
    _write_folder(tmp_path / "extra", splits=("more",), per_class=2)
    (tmp_path / "pets" / "train" / "cat" / "cats").symlink_to(tmp_path / "extra" / "more" / "cat")
    (tmp_path / "pets" / other).symlink_to(tmp_path / "extra" / "more" / "cat")
    _one_line_error(
        _folder_cfg(tmp_path / "pets", tmp_path / "cache"),
        str(tmp_path / "pets" / other / "00.png"),
        str(tmp_path / "pets" / "train" / "cat" / "cats" / "00.png"),
        "one class of one split only",
        "remove one of the links",
    )


def test_imagefolder_lists_files_in_imagefolder_order(tmp_path):
    """Without links the listing is torchvision's ``make_dataset``: the same files in the same
    order, so stored studies keep their splits and decoded caches."""
    from torchvision.datasets.folder import make_dataset

    _write_folder(tmp_path / "pets", splits=("train",), per_class=2)
    for nested in ("cat/m", "cat/m-2", "cat/m/x", "ant/deep/er"):  # "/" sorts after "-"
        (tmp_path / "pets" / "train" / nested).mkdir(parents=True)
        _write_png(tmp_path / "pets" / "train" / nested / "a.PNG")
    (tmp_path / "pets" / "train" / "bee" / "notes.txt").write_text("not an image")
    with pytest.warns(UserWarning, match="no test/"):
        files = sources._imagefolder_files(_folder_cfg(tmp_path / "pets", tmp_path / "cache"))
    extensions = (".jpg", ".jpeg", ".png", ".gif", ".webp")
    class_to_idx = {name: label for label, name in enumerate(files.class_names)}
    expected = make_dataset(str(tmp_path / "pets" / "train"), class_to_idx, extensions)
    assert files.train == expected and len(expected) == 3 * 2 + 4


@pytest.mark.parametrize("classes", [["cat"], []], ids=["one class", "no class"])
def test_imagefolder_refuses_fewer_than_two_classes(tmp_path, classes):
    (tmp_path / "pets" / "train").mkdir(parents=True)
    for name in classes:
        (tmp_path / "pets" / "train" / name).mkdir()
        _write_png(tmp_path / "pets" / "train" / name / "0.png")
    found = "only one class folder, 'cat'," if classes else "no class folder"
    _one_line_error(
        _folder_cfg(tmp_path / "pets", tmp_path / "cache"),
        f"{tmp_path / 'pets' / 'train'} has {found}",
        "every trial score 1.0",
        "at least two class folders under train/",
    )


def test_imagefolder_refuses_a_class_without_images(tmp_path):
    _write_folder(tmp_path / "pets")
    for image in (tmp_path / "pets" / "test" / "bee").iterdir():
        image.unlink()
    (tmp_path / "pets" / "test" / "bee" / "notes.txt").write_text("not an image")
    _one_line_error(
        _folder_cfg(tmp_path / "pets", tmp_path / "cache"),
        f"{tmp_path / 'pets' / 'test' / 'bee'} has no image files",
        "add images to it or remove the folder",
    )


# --------------------------------------------------------------------------- real data


@pytest.mark.slow
def test_cifar10_jpeg_archive(shared_data_dir, tmp_path):
    cfg = DataConfig(
        name="imagefolder",
        root=shared_data_dir / "cifar10-jpeg.tar.gz",
        cache_dir=tmp_path,
        per_class=100,
        augment="flip_crop",
    )
    dm = build_datamodule(cfg)
    (extracted,) = [p for p in tmp_path.iterdir() if p.name.startswith("cifar10-jpeg-00a78acaf3d7")]
    assert sorted(p.name for p in (extracted / "train").iterdir()) == list(dm.class_names)
    assert dm.class_names == (
        "airplane", "automobile", "bird", "cat", "deer",
        "dog", "frog", "horse", "ship", "truck",
    )  # fmt: skip
    assert dm.input_shape == (3, 32, 32)
    assert len(dm.test_split) == 10_000
    assert _class_counts(dm.test_split.labels) == dict.fromkeys(range(10), 1000)
    assert _class_counts(dm.val_split.labels) == dict.fromkeys(range(10), 500)
    assert _class_counts(dm.train_split.labels) == dict.fromkeys(range(10), 100)
    assert dm.augment == BatchAugment(padding=4, flip=True)
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (128, 3, 32, 32) and images.dtype == torch.float32
    assert labels.shape == (128,)

    start = time.perf_counter()
    full = build_datamodule(replace(cfg, per_class=None))  # decoded tensors come from the cache
    assert time.perf_counter() - start < 10
    assert len(full.train_split) + len(full.val_split) == 50_000
    assert _class_counts(full.train_split.labels) == dict.fromkeys(range(10), 4500)
    assert set(dm.train_split.source_indices.tolist()) <= set(
        full.train_split.source_indices.tolist()
    )
