"""Dataset sources (digits, torchvision datasets, image folders) and :func:`build_datamodule`,
which splits a source and picks the data module."""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..config import DataConfig
from ..files import written_in_one_step
from .archives import ARCHIVE_SUFFIXES, extract_archive
from .augment import augment_policy
from .folders import class_names, folder_samples
from .memory import TensorDataModule
from .splits import Split, per_class_subset, stratified_split
from .streaming import FileSplit, StreamDataModule, read_image

TORCHVISION_DATASETS = ("cifar10", "cifar100", "mnist", "fashionmnist", "svhn")
#: Image folders are decoded into one uint8 tensor only below this size; ``loader="auto"`` streams
#: larger ones from disk (:class:`StreamDataModule`) and ``loader="memory"`` refuses them.
MAX_IN_MEMORY_BYTES = 2 * 1024**3


#: Share of each class held out as test split where the dataset has no official one.
TEST_FRACTION = 0.2
#: Fixed on purpose: the held-out test split must not move when ``split_seed`` changes.
TEST_SPLIT_SEED = 0


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass
class _Source:
    """Decoded data before splitting; ``test_images`` is None where there is no official test."""

    images: Tensor
    labels: Tensor
    class_names: list[str]
    test_images: Tensor | None = None
    test_labels: Tensor | None = None


def _load_digits() -> _Source:
    from sklearn.datasets import load_digits

    digits = load_digits()
    # Pixel values are counts 0..16 of a 4x4-block downsampling (UCI optdigits); scale to [0, 1].
    images = torch.from_numpy(digits.images).float().div(16.0).unsqueeze(1)
    labels = torch.from_numpy(digits.target).long()
    return _Source(images, labels, [str(name) for name in digits.target_names])


def _load_torchvision(cfg: DataConfig) -> _Source:
    from torchvision import datasets

    root = cfg.root if cfg.root is not None else cfg.cache_dir / "torchvision"
    pools = {}
    for train in (True, False):
        try:
            if cfg.name == "svhn":
                pools[train] = datasets.SVHN(
                    str(root), split="train" if train else "test", download=cfg.download
                )
            else:
                dataset_cls = {
                    "cifar10": datasets.CIFAR10,
                    "cifar100": datasets.CIFAR100,
                    "mnist": datasets.MNIST,
                    "fashionmnist": datasets.FashionMNIST,
                }[cfg.name]
                pools[train] = dataset_cls(str(root), train=train, download=cfg.download)
        except RuntimeError as error:
            if cfg.download:
                raise
            raise FileNotFoundError(
                f"{cfg.name} files not found under {root} (DataConfig.download=False): set "
                "DataConfig(download=True) to fetch them once, or point DataConfig.root at a "
                f"folder that holds them ({error})"
            ) from error

    def tensors(dataset) -> tuple[Tensor, Tensor]:
        if cfg.name == "svhn":  # (N, 3, 32, 32) uint8 numpy, labels in .labels
            return torch.from_numpy(dataset.data), torch.as_tensor(dataset.labels).long()
        if cfg.name.startswith("cifar"):  # (N, 32, 32, 3) uint8 numpy
            images = torch.from_numpy(dataset.data).permute(0, 3, 1, 2).contiguous()
            return images, torch.as_tensor(dataset.targets).long()
        return dataset.data.unsqueeze(1), dataset.targets.long()  # MNIST-style (N, 28, 28) uint8

    images, labels = tensors(pools[True])
    test_images, test_labels = tensors(pools[False])
    names = getattr(pools[True], "classes", None) or [str(i) for i in range(10)]
    return _Source(images, labels, list(names), test_images, test_labels)


def _dataset_folder(root: Path) -> Path:
    """``root`` or its single subfolder, whichever holds ``train/``."""
    if (root / "train").is_dir():
        return root
    children = [child for child in root.iterdir() if child.is_dir()]
    if len(children) == 1 and (children[0] / "train").is_dir():
        return children[0]
    raise ValueError(
        f"DataConfig.root: {root} has no train/ subfolder; the imagefolder layout is "
        "train/<class>/<image> (and optionally test/<class>/<image>)"
    )


def _fingerprint(samples: Sequence[tuple[str, int]], image_size: tuple[int, int] | None) -> str:
    """Hash of every file's path, size and mtime plus the resize: the decoded cache's key."""
    digest = hashlib.sha256(repr(image_size).encode())
    for path, label in samples:
        stat = os.stat(path)
        digest.update(f"{path}\0{label}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:12]


def _resized(image: Tensor, image_size: tuple[int, int] | None) -> Tensor:
    from torchvision.transforms.v2.functional import resize

    if image_size is not None and tuple(image.shape[1:]) != image_size:
        image = resize(image, list(image_size), antialias=True)
    return image


def decode_images(paths: Sequence[str], image_size: tuple[int, int] | None) -> Tensor:
    """Decode ``paths`` as RGB into one ``(N, 3, H, W)`` uint8 tensor, resizing to ``image_size``.

    ``torchvision.io.decode_image`` in a loop fills a preallocated tensor: about 60 us per 32x32
    JPEG (read + decode), so the 60,000 CIFAR-10 images take 3-4 s on one core. An unreadable
    file raises :class:`UnreadableImageError` naming it.
    """
    first = _resized(read_image(paths[0]), image_size)
    shape = tuple(first.shape)
    out = torch.empty((len(paths), *shape), dtype=torch.uint8)
    out[0] = first
    for row, path in enumerate(paths[1:], start=1):
        image = _resized(read_image(path), image_size)
        if tuple(image.shape) != shape:
            raise ValueError(
                f"imagefolder: {path} is {tuple(image.shape)} but {paths[0]} is {shape}; set "
                "DataConfig.image_size to resize every image to one size"
            )
        out[row] = image
    return out


@dataclass
class _FolderFiles:
    """An image folder's files before decoding; ``test`` is None without a ``test/`` folder."""

    folder: Path
    is_archive: bool
    class_names: list[str]
    train: list[tuple[str, int]]
    test: list[tuple[str, int]] | None


def _imagefolder_files(cfg: DataConfig) -> _FolderFiles:
    """Find the image files of ``cfg.root`` (extracting an archive once); files with other
    extensions are skipped, symlinks are followed only out of the tree and each file counts once
    (:func:`.folders.folder_samples`), and a single class is refused (every trial would score
    1.0)."""
    root = cfg.root
    is_archive = root.is_file() and root.name.endswith(ARCHIVE_SUFFIXES)
    if is_archive:
        root = extract_archive(root, cfg.cache_dir)
    elif not root.is_dir():
        raise ValueError(
            f"DataConfig.root={cfg.root} is neither a folder nor a {ARCHIVE_SUFFIXES} archive"
        )
    folder = _dataset_folder(root)
    names = class_names(folder / "train")
    if len(names) < 2:
        found = f"only one class folder, {names[0]!r}," if names else "no class folder"
        raise ValueError(
            f"DataConfig.root: {folder / 'train'} has {found} and a single class makes every "
            "trial score 1.0; put at least two class folders under train/ "
            "(train/<class>/<image>)"
        )
    splits = ["train"]
    if (folder / "test").is_dir():
        test_names = class_names(folder / "test")
        if test_names != names:
            raise ValueError(
                f"DataConfig.root: test/ classes {test_names} differ from train/ classes "
                f"{names}; both need the same class subfolders"
            )
        splits.append("test")
    else:
        message = (
            f"imagefolder: {folder} has no test/ folder; holding out a fixed stratified "
            f"{TEST_FRACTION:.0%} of train/ as the test split"
        )
        warnings.warn(message, UserWarning, stacklevel=3)
    samples = folder_samples(folder, splits, names)
    return _FolderFiles(folder, is_archive, names, samples["train"], samples.get("test"))


def estimated_bytes(files: _FolderFiles, image_size: tuple[int, int] | None) -> int:
    """Decoded uint8 size of every image of ``files``: the count times ``3 x image_size``, or
    without ``image_size`` times the decoded size of the first training file."""
    count = len(files.train) + len(files.test or ())
    if image_size is not None:
        return count * 3 * image_size[0] * image_size[1]
    return count * read_image(files.train[0][0]).numel()


def _streams(cfg: DataConfig, files: _FolderFiles) -> bool:
    """Whether ``cfg.loader`` streams this folder: ``"auto"`` does above the in-memory limit, and
    ``"memory"`` refuses a folder above it before decoding anything."""
    if cfg.loader == "stream":
        return True
    size_bytes = estimated_bytes(files, cfg.image_size)
    if size_bytes <= MAX_IN_MEMORY_BYTES:
        return False
    if cfg.loader == "auto":
        return True
    count = len(files.train) + len(files.test or ())
    raise ValueError(
        f"imagefolder: the {count} images of {files.folder} take {size_bytes / 2**30:.2f} GiB "
        f"as uint8, above the in-memory limit of {MAX_IN_MEMORY_BYTES / 2**30:.2f} GiB "
        '(DataConfig.loader = "memory"); set data.loader = "stream" (or "auto") to stream them '
        "from disk, or a smaller DataConfig.image_size"
    )


def _decode_imagefolder(cfg: DataConfig, files: _FolderFiles) -> _Source:
    splits = (
        {"train": files.train} if files.test is None else {"train": files.train, "test": files.test}
    )
    key = _fingerprint([s for samples in splits.values() for s in samples], cfg.image_size)
    cache_file = (
        files.folder / f"decoded-{key}.pt"
        if files.is_archive
        else cfg.cache_dir / "decoded" / f"{files.folder.name}-{key}.pt"
    )
    if cache_file.is_file():
        tensors = torch.load(cache_file, weights_only=True)
    else:
        tensors = {}
        for split, samples in splits.items():
            tensors[f"{split}_images"] = decode_images([p for p, _ in samples], cfg.image_size)
            tensors[f"{split}_labels"] = torch.tensor([label for _, label in samples])
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        with written_in_one_step(cache_file) as partial:
            torch.save(tensors, partial)

    source = _Source(tensors["train_images"], tensors["train_labels"], files.class_names)
    if files.test is not None:
        source.test_images, source.test_labels = tensors["test_images"], tensors["test_labels"]
    return source


def split_rows(
    labels: np.ndarray, test_labels: np.ndarray | None, cfg: DataConfig, full_train: bool
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Rows of train and val (None with ``full_train``) in the training pool (``labels``), and of
    test: the rows of the official test pool (``test_labels``), or without one (None) a fixed
    stratified hold-out of the training pool; ``test_per_class`` cuts test to a fixed per-class
    subset (seeded apart from ``split_seed``, so it never moves).

    One function for both loaders, so a file lands in the same split either way.
    """
    if test_labels is None:
        pool, test_rows = stratified_split(labels, TEST_FRACTION, TEST_SPLIT_SEED)
        test_pool_labels = labels
    else:
        pool, test_rows = np.arange(len(labels)), np.arange(len(test_labels))
        test_pool_labels = test_labels
    if cfg.test_per_class is not None:
        test_rows = per_class_subset(
            test_rows, test_pool_labels, cfg.test_per_class, TEST_SPLIT_SEED
        )
    if full_train:
        return pool, None, test_rows
    kept, held = stratified_split(labels[pool], cfg.val_fraction, cfg.split_seed)
    train_rows, val_rows = pool[kept], pool[held]
    if cfg.per_class is not None:
        train_rows = per_class_subset(train_rows, labels, cfg.per_class, cfg.split_seed)
    if cfg.val_per_class is not None:
        val_rows = per_class_subset(val_rows, labels, cfg.val_per_class, cfg.split_seed)
    return train_rows, val_rows, test_rows


def _stream_datamodule(
    cfg: DataConfig, files: _FolderFiles, *, device: str | torch.device, seed: int, full_train: bool
) -> StreamDataModule:
    labels = np.array([label for _, label in files.train], dtype=np.int64)
    test_labels = (
        None if files.test is None else np.array([label for _, label in files.test], dtype=np.int64)
    )
    train_rows, val_rows, test_rows = split_rows(labels, test_labels, cfg, full_train)

    def take(samples: list[tuple[str, int]], rows: np.ndarray) -> FileSplit:
        paths = np.array([os.fsencode(samples[row][0]) for row in rows], dtype=np.bytes_)
        targets = torch.tensor([samples[row][1] for row in rows], dtype=torch.int64)
        return FileSplit(paths, targets, torch.from_numpy(rows).long())

    image_size = cfg.image_size or tuple(read_image(files.train[0][0]).shape[1:])
    return StreamDataModule(
        take(files.train, train_rows),
        None if val_rows is None else take(files.train, val_rows),
        take(files.train if files.test is None else files.test, test_rows),
        class_names=files.class_names,
        image_size=image_size,
        batch_size=cfg.batch_size,
        eval_batch_size=cfg.eval_batch_size,
        augment=cfg.augment != "none",
        normalize=cfg.normalize,
        num_workers=cfg.num_workers,
        device=device,
        seed=seed,
        config=cfg,
    )


def build_datamodule(
    cfg: DataConfig,
    *,
    device: str | torch.device = "cpu",
    seed: int = 0,
    full_train: bool = False,
) -> TensorDataModule | StreamDataModule:
    """Load ``cfg``'s dataset, split it, and wrap it in a :class:`TensorDataModule` (or, for an
    image folder that ``cfg.loader`` streams, a :class:`StreamDataModule`).

    ``cfg.split_seed`` fixes the train/val split and the per-class subsets; ``seed`` the
    shuffling and augmentation of training batches. ``full_train=True`` is for retraining a
    chosen architecture: train is the whole training pool (the search's train + val, ignoring
    ``per_class`` and ``val_per_class``), there is no val split (Lightning skips validation), and
    test is the same held-out split; normalisation statistics come from the whole pool.
    """
    if not _is_int(seed) or seed < 0:
        raise ValueError(f"seed={seed!r} must be an int >= 0")
    if cfg.name == "imagefolder":
        files = _imagefolder_files(cfg)
        if _streams(cfg, files):
            return _stream_datamodule(cfg, files, device=device, seed=seed, full_train=full_train)
        source = _decode_imagefolder(cfg, files)
    elif cfg.loader == "stream":
        raise ValueError(
            f'DataConfig.loader = "stream" streams image folders only (name="imagefolder"), '
            f'not {cfg.name!r}, which fits in memory; set data.loader = "auto" or "memory"'
        )
    elif cfg.name == "digits":
        source = _load_digits()
    else:
        source = _load_torchvision(cfg)

    test_labels = None if source.test_labels is None else source.test_labels.numpy()
    train_rows, val_rows, test_rows = split_rows(
        source.labels.numpy(), test_labels, cfg, full_train
    )
    test_images, test_labels = (
        (source.images, source.labels)
        if source.test_images is None
        else (source.test_images, source.test_labels)
    )

    def take(images: Tensor, targets: Tensor, rows: np.ndarray) -> Split:
        index = torch.from_numpy(rows).long()
        return Split(images[index], targets[index], index)

    return TensorDataModule(
        take(source.images, source.labels, train_rows),
        None if val_rows is None else take(source.images, source.labels, val_rows),
        take(test_images, test_labels, test_rows),
        class_names=source.class_names,
        batch_size=cfg.batch_size,
        eval_batch_size=cfg.eval_batch_size,
        augment=augment_policy(cfg.name, cfg.augment, int(source.images.shape[-2])),
        normalize=cfg.normalize,
        device=device,
        seed=seed,
        config=cfg,
    )
