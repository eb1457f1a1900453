"""Datasets as Lightning DataModules: in memory as tensors, or streamed from disk.

Lightning's split of concerns: the model knows nothing about the data, and the search hands a
``LightningDataModule`` to ``trainer.fit(model, datamodule=dm)``. The datasets a search trains on
(scikit-learn's digits, CIFAR-10/100, MNIST, FashionMNIST, SVHN, small image folders) fit in memory
once decoded, so they are held as ``(N, C, H, W)`` tensors (on the GPU when asked) and served in
index batches by a standard ``DataLoader``: its sampler yields a whole batch of rows at a time and
its dataset gathers, augments and normalises them with ``torch`` ops on the batch, with no
per-sample Python and no worker processes (:class:`TensorDataModule`). Image folders too large for
memory stream from disk instead (:class:`StreamDataModule`): files are decoded and augmented
(ImageNet-style) in DataLoader worker processes. ``DataConfig.loader`` picks the path; ``"auto"``
streams a folder whose decoded size exceeds :data:`MAX_IN_MEMORY_BYTES`. Shuffling and
augmentation draw from generators seeded from ``(seed, epoch)`` (streaming: per image from
``(seed, epoch, index)``), so every epoch is reproducible on its own, with any number of workers.

Splits (the same in both paths: the same file goes to the same split):
    * test: the dataset's official test split; digits (and image folders without ``test/``) hold
      out a fixed stratified 20% that does not depend on ``split_seed``: no run ever trains on it.
    * val: a stratified ``val_fraction`` of the rest, drawn from ``split_seed``.
    * train: the remainder, optionally cut to ``per_class`` images per class for fast searches.

``build_datamodule(..., full_train=True)`` is the final retraining of a chosen architecture: train
is the whole training pool (train + val, no per-class cuts), there is no val split, and the test
split is the same held-out one.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import shutil
import tarfile
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch import LightningDataModule
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from .config import AUGMENTATIONS, DATASETS, DataConfig, default_cache_dir  # noqa: F401 (re-exported)

TORCHVISION_DATASETS = ("cifar10", "cifar100", "mnist", "fashionmnist", "svhn")
#: Image folders are decoded into one uint8 tensor only below this size; ``loader="auto"`` streams
#: larger ones from disk (:class:`StreamDataModule`) and ``loader="memory"`` refuses them.
MAX_IN_MEMORY_BYTES = 2 * 1024**3
#: Training images (a fixed seeded sample) the streaming path estimates channel statistics from:
#: enough for means to about 0.01 of the [0, 1] scale, a few seconds of decoding.
STATS_IMAGES = 500
#: Seed of that sample: fixed, so every trial of a study normalises alike.
STATS_SEED = 0
#: Evaluation resize before the centre crop, as in ImageNet evaluation (256 px for 224 px crops).
EVAL_RESIZE_RATIO = 256 / 224
#: Share of each class held out as test split where the dataset has no official one.
TEST_FRACTION = 0.2
#: Fixed on purpose: the held-out test split must not move when ``split_seed`` changes.
TEST_SPLIT_SEED = 0
#: File types ``torchvision.io.decode_image`` reads (a subset of ImageFolder's extensions).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".webp")
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def pad_and_crop(images: Tensor, padding: int, offsets: Tensor) -> Tensor:
    """Zero-pad each image by ``padding`` and crop back to its size at ``offsets`` (B, 2).

    ``offsets[b] = (dy, dx)`` in ``[0, 2 * padding]`` is the crop's top-left corner in the padded
    image, so ``(padding, padding)`` returns the image unchanged. Vectorised with gather indices.
    """
    batch, channels, height, width = images.shape
    padded = F.pad(images, (padding, padding, padding, padding))
    offsets = offsets.to(images.device)
    rows = offsets[:, 0, None] + torch.arange(height, device=images.device)  # (B, H)
    cols = offsets[:, 1, None] + torch.arange(width, device=images.device)  # (B, W)
    return padded[
        torch.arange(batch, device=images.device)[:, None, None, None],
        torch.arange(channels, device=images.device)[None, :, None, None],
        rows[:, None, :, None],
        cols[:, None, None, :],
    ]


@dataclass(frozen=True)
class BatchAugment:
    """Random crop with zero padding and an optional horizontal flip, applied to a whole batch.

    Random numbers come from ``generator`` (a CPU generator, so CPU and GPU runs draw the same
    crops); per batch it draws the crop offsets first, then the flip mask.
    """

    padding: int = 0
    flip: bool = False

    def __call__(self, images: Tensor, generator: torch.Generator) -> Tensor:
        batch = images.shape[0]
        if self.padding > 0:
            offsets = torch.randint(0, 2 * self.padding + 1, (batch, 2), generator=generator)
            images = pad_and_crop(images, self.padding, offsets)
        if self.flip:
            mask = (torch.rand(batch, generator=generator) < 0.5).to(images.device)
            images = torch.where(mask[:, None, None, None], images.flip(-1), images)
        return images

    @property
    def is_identity(self) -> bool:
        return self.padding == 0 and not self.flip


def augment_policy(name: str, augment: str, height: int) -> BatchAugment:
    """The ``flip_crop`` policy of each dataset (``augment="none"`` gives the identity).

    Crop padding follows the CIFAR standard of 4 pixels on 32 (He et al., 2016), i.e. an eighth of
    the side: 1 on 8x8 digits, 2 on 28x28 MNIST-style images (a common choice), ``round(H / 8)``
    on image folders. Flips are off for digit datasets (digits, MNIST, SVHN), where a mirrored
    digit is not the same class, and on for objects and clothes (CIFAR, FashionMNIST, folders).
    """
    if augment == "none":
        return BatchAugment()
    policies = {
        "digits": BatchAugment(padding=1, flip=False),
        "mnist": BatchAugment(padding=2, flip=False),
        "fashionmnist": BatchAugment(padding=2, flip=True),
        "svhn": BatchAugment(padding=4, flip=False),
        "cifar10": BatchAugment(padding=4, flip=True),
        "cifar100": BatchAugment(padding=4, flip=True),
        "imagefolder": BatchAugment(padding=max(1, round(height / 8)), flip=True),
    }
    return policies[name]


# --------------------------------------------------------------------------- splits


def stratified_split(
    labels: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split positions ``0..N-1`` into (kept, held) with ``round(fraction * n_c)`` held per class.

    Every class with at least two members keeps at least one and holds out at least one; the draw
    is a per-class permutation from ``numpy.random.default_rng(seed)``. Both outputs are sorted.
    """
    rng = np.random.default_rng(seed)
    kept, held = [], []
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        count = len(members)
        n_held = min(max(round(fraction * count), 1), count - 1) if count > 1 else 0
        held.append(members[:n_held])
        kept.append(members[n_held:])
    return np.sort(np.concatenate(kept)), np.sort(np.concatenate(held))


def per_class_subset(
    positions: np.ndarray, labels: np.ndarray, per_class: int, seed: int
) -> np.ndarray:
    """Keep at most ``per_class`` of ``positions`` for each class of ``labels[positions]``.

    Deterministic in ``seed`` (its own random stream, independent of :func:`stratified_split`).
    """
    rng = np.random.default_rng((seed, 1))
    chosen = []
    for cls in np.unique(labels[positions]):
        members = positions[labels[positions] == cls]
        chosen.append(rng.permutation(members)[:per_class])
    return np.sort(np.concatenate(chosen))


@dataclass(frozen=True)
class Split:
    """One split in memory.

    ``images`` is ``(N, C, H, W)``, uint8 in [0, 255] or floating in [0, 1]; ``labels`` int64
    ``(N,)``. ``source_indices`` (optional) are the rows of the source pool each image came from:
    train and val index the training pool, test the official test pool where there is one (else
    the same pool as train), so overlaps can be audited.
    """

    images: Tensor
    labels: Tensor
    source_indices: Tensor | None = None

    def __len__(self) -> int:
        return self.labels.shape[0]

    def to(self, device: torch.device) -> Split:
        return Split(
            self.images.to(device),
            self.labels.to(device),
            None if self.source_indices is None else self.source_indices.to(device),
        )


def _as_float(images: Tensor) -> Tensor:
    return images.float().div_(255.0) if images.dtype == torch.uint8 else images.float()


def channel_stats(images: Tensor, chunk: int = 4096) -> tuple[Tensor, Tensor]:
    """Per-channel mean and standard deviation of ``images`` on the [0, 1] scale (float64 sums)."""
    channels = images.shape[1]
    total = torch.zeros(channels, dtype=torch.float64, device=images.device)
    squares = torch.zeros_like(total)
    for start in range(0, images.shape[0], chunk):
        block = _as_float(images[start : start + chunk]).double()
        total += block.sum(dim=(0, 2, 3))
        squares += block.square().sum(dim=(0, 2, 3))
    count = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / count
    std = (squares / count - mean.square()).clamp_min(0).sqrt()
    return mean.float(), std.float()


def epoch_seed(seed: int, epoch: int) -> int:
    """A well-mixed 63-bit seed for ``(seed, epoch)`` via NumPy's SeedSequence."""
    return int(np.random.SeedSequence((seed, epoch)).generate_state(1, np.uint64)[0] >> 1)


@dataclass(frozen=True, eq=False)  # no element-wise tensor comparison
class IndexBatch:
    """The rows of one batch of a split and the epoch's generator.

    The key :class:`SeededBatchSampler` yields and :class:`BatchTensorDataset` looks up: the
    augmentation of each batch draws from the generator that shuffled the epoch, right after
    the shuffle and in batch order, so all of an epoch's randomness comes from ``(seed, epoch)``.
    """

    index: Tensor
    generator: torch.Generator


class _EpochOrder:
    """The visiting order of one epoch, shared by both samplers: ``randperm`` (or ``arange``)
    from a generator seeded with ``(seed, epoch)``, cut by ``drop_single``; ``set_epoch`` picks
    the epoch and each pass advances it."""

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        *,
        shuffle: bool,
        seed: int = 0,
        drop_single: bool = False,
    ) -> None:
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_single = drop_single
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _kept(self) -> int:
        """Samples an epoch serves: all, or one fewer where ``drop_single`` and one would trail."""
        n = self.num_samples
        return n - 1 if self.drop_single and n > 1 and n % self.batch_size == 1 else n

    def _next_epoch(self) -> tuple[int, torch.Generator, Tensor]:
        """(this epoch, its generator, its order on the CPU); the next pass gets the next epoch."""
        epoch = self.epoch
        self.epoch += 1
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, epoch))
        if self.shuffle:
            order = torch.randperm(self.num_samples, generator=generator)
        else:
            order = torch.arange(self.num_samples)
        return epoch, generator, order[: self._kept()]


class SeededBatchSampler(_EpochOrder, Sampler[IndexBatch]):
    """The index batches of one epoch, shuffled (or in order) by a generator seeded from
    ``(seed, epoch)``.

    ``set_epoch`` picks the epoch, as for ``DistributedSampler``: Lightning calls it on the
    DataLoader's sampler at every epoch start, so a resumed run replays the same epochs. Each
    ``iter()`` then advances the epoch, so a loop that never calls ``set_epoch`` still gets a
    new shuffle every epoch. ``drop_single`` drops a trailing batch of one (BatchNorm cannot
    train on it; which sample that drops changes with the shuffle). Indices live on ``device``,
    the split's. Meant for one process (the search trains one candidate per device): under DDP
    Lightning would wrap it in its ``DistributedSamplerWrapper``, which is not tested here.
    """

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        *,
        shuffle: bool,
        seed: int = 0,
        drop_single: bool = False,
        device: torch.device | str = "cpu",
    ) -> None:
        super().__init__(
            num_samples, batch_size, shuffle=shuffle, seed=seed, drop_single=drop_single
        )
        self.device = torch.device(device)

    def __len__(self) -> int:
        return math.ceil(self._kept() / self.batch_size)

    def __iter__(self) -> Iterator[IndexBatch]:
        _, generator, order = self._next_epoch()
        order = order.to(self.device)
        for start in range(0, order.shape[0], self.batch_size):
            yield IndexBatch(order[start : start + self.batch_size], generator)


class BatchTensorDataset(Dataset[tuple[Tensor, Tensor]]):
    """A :class:`Split` read a whole batch at a time: ``dataset[IndexBatch]`` is
    ``(float images, int64 labels)`` of those rows, augmented (``augment``, from the batch's
    generator) and normalised (``mean``, ``std`` per channel) with torch ops on the batch, so no
    Python runs per sample. Tensors stay on the split's device."""

    def __init__(
        self,
        split: Split,
        *,
        augment: BatchAugment | None = None,
        mean: Tensor | None = None,
        std: Tensor | None = None,
    ) -> None:
        self.split = split
        self.augment = None if augment is None or augment.is_identity else augment
        self.mean = None if mean is None else mean.to(split.images.device)[:, None, None]
        self.std = None if std is None else std.to(split.images.device)[:, None, None]

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, batch: IndexBatch) -> tuple[Tensor, Tensor]:
        images = _as_float(self.split.images[batch.index])
        if self.augment is not None:
            images = self.augment(images, batch.generator)
        if self.mean is not None:
            images = (images - self.mean) / self.std
        return images, self.split.labels[batch.index]


def _whole_batch(batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    """The DataLoader's collate_fn: the dataset returns finished batches."""
    return batch


def batch_loader(
    split: Split,
    *,
    batch_size: int,
    shuffle: bool,
    augment: BatchAugment | None = None,
    mean: Tensor | None = None,
    std: Tensor | None = None,
    seed: int = 0,
    train: bool = False,
) -> DataLoader:
    """A standard ``DataLoader`` over ``split`` in index batches: a :class:`SeededBatchSampler`
    (``batch_size=None``, each key is a whole batch) over a :class:`BatchTensorDataset`.

    ``train`` drops a trailing batch of one. In-process (``num_workers=0``) and unpinned: the
    tensors are in memory already, on the GPU when asked. Its own generator keeps the loader
    from drawing a worker base seed from torch's global RNG at every epoch.
    """
    sampler = SeededBatchSampler(
        len(split),
        batch_size,
        shuffle=shuffle,
        seed=seed,
        drop_single=train,
        device=split.images.device,
    )
    return DataLoader(
        BatchTensorDataset(split, augment=augment, mean=mean, std=std),
        batch_size=None,
        sampler=sampler,
        collate_fn=_whole_batch,
        generator=torch.Generator().manual_seed(seed),
    )


class _SplitDataModule(LightningDataModule):
    """What both data modules share: ``train_split``, ``val_split`` (None when training on the
    full pool) and ``test_split``, and an ``input_shape``."""

    @property
    def in_channels(self) -> int:
        return self.input_shape[0]

    @property
    def split_sizes(self) -> dict[str, int]:
        return {
            "train": len(self.train_split),
            "val": 0 if self.val_split is None else len(self.val_split),
            "test": len(self.test_split),
        }


class TensorDataModule(_SplitDataModule):
    """A ``LightningDataModule`` over in-memory train/val/test :class:`Split` tensors.

    ``setup`` moves the splits to ``device`` (once). With ``normalize`` the per-channel mean and
    std are computed on the train split only and applied to every split. ``augment`` runs on train
    batches only. ``seed`` drives shuffling and augmentation (the splits are fixed by the caller).
    ``config`` records the :class:`DataConfig` it was built from (None when built by hand).
    ``val=None`` means no validation: ``val_dataloader`` returns an empty list, so Lightning runs
    no validation loop (and warns that the list is empty, unless the Trainer has
    ``limit_val_batches=0``, as ``nas.retrain`` sets).
    """

    def __init__(
        self,
        train: Split,
        val: Split | None,
        test: Split,
        *,
        class_names: Sequence[str],
        batch_size: int = 128,
        eval_batch_size: int | None = None,
        augment: BatchAugment | None = None,
        normalize: bool = True,
        device: str | torch.device = "cpu",
        seed: int = 0,
        config: DataConfig | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.class_names = tuple(class_names)
        for split_name, split in (("train", train), ("val", val), ("test", test)):
            if split is None:
                continue
            if split.images.ndim != 4 or split.labels.shape != (split.images.shape[0],):
                raise ValueError(
                    f"{split_name}: images must be (N, C, H, W) and labels (N,), got "
                    f"{tuple(split.images.shape)} and {tuple(split.labels.shape)}"
                )
            if len(split) == 0:
                raise ValueError(f"{split_name} split is empty; give it at least one image")
            if split.images.shape[1:] != train.images.shape[1:]:
                raise ValueError(
                    f"{split_name} images have shape {tuple(split.images.shape[1:])}, train "
                    f"{tuple(train.images.shape[1:])}; all splits need the same (C, H, W)"
                )
            if int(split.labels.min()) < 0 or int(split.labels.max()) >= len(self.class_names):
                raise ValueError(
                    f"{split_name} labels must lie in [0, {len(self.class_names)}) to match "
                    "class_names"
                )
        if batch_size < 1 or (eval_batch_size is not None and eval_batch_size < 1):
            raise ValueError("batch_size and eval_batch_size must be >= 1")
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device={device!r} but CUDA is not available; use device='cpu'")
        self.train_split, self.val_split, self.test_split = train, val, test
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.augment = augment or BatchAugment()
        self.seed = seed
        self.mean: Tensor | None = None
        self.std: Tensor | None = None
        if normalize:
            mean, std = channel_stats(train.images)
            self.mean, self.std = mean, std.clamp_min(1e-6)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        channels, height, width = self.train_split.images.shape[1:]
        return int(channels), int(height), int(width)

    def setup(self, stage: str | None = None) -> None:
        if self.train_split.images.device != self.device:
            self.train_split = self.train_split.to(self.device)
            if self.val_split is not None:
                self.val_split = self.val_split.to(self.device)
            self.test_split = self.test_split.to(self.device)

    def _eval_loader(self, split: Split) -> DataLoader:
        return batch_loader(
            split, batch_size=self.eval_batch_size, shuffle=False, mean=self.mean, std=self.std
        )

    def train_dataloader(self) -> DataLoader:
        return batch_loader(
            self.train_split,
            batch_size=self.batch_size,
            shuffle=True,
            augment=self.augment,
            mean=self.mean,
            std=self.std,
            seed=self.seed,
            train=True,
        )

    def val_dataloader(self) -> DataLoader | list:
        """The val loader, or an empty list (Lightning's "no loader") without a val split."""
        return [] if self.val_split is None else self._eval_loader(self.val_split)

    def test_dataloader(self) -> DataLoader:
        """Final evaluation only: searches select on train/val and never look at this split."""
        return self._eval_loader(self.test_split)


# --------------------------------------------------------------------------- streaming


class UnreadableImageError(RuntimeError):
    """An image file (by its extension) that cannot be read or decoded; the message names it."""


def read_image(path: str) -> Tensor:
    """Decode ``path`` as an RGB uint8 ``(3, H, W)`` tensor; an unreadable file raises
    :class:`UnreadableImageError` naming it (in a DataLoader worker too, so the trial that
    reads it fails with the file in its reason)."""
    from torchvision.io import ImageReadMode, decode_image, read_file

    try:
        with warnings.catch_warnings():
            # torchvision 0.29 deprecates its codecs for TorchCodec and warns on every call.
            warnings.filterwarnings("ignore", "The image decoding", DeprecationWarning)
            return decode_image(read_file(path), mode=ImageReadMode.RGB)
    except (RuntimeError, OSError) as error:
        raise UnreadableImageError(
            f"imagefolder: cannot decode {path} ({error}); replace or delete the file"
        ) from error


@dataclass(frozen=True, eq=False)  # no element-wise array comparison
class FileSplit:
    """One split on disk: ``paths[i]`` (file-system bytes in a NumPy array, so forked workers do
    not copy it page by page through reference counts) has label ``labels[i]``;
    ``source_indices`` are its rows in the source pool, as in :class:`Split`."""

    paths: np.ndarray
    labels: Tensor
    source_indices: Tensor

    def __len__(self) -> int:
        return self.labels.shape[0]

    def path(self, index: int) -> str:
        return os.fsdecode(self.paths[index])


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A well-mixed 63-bit seed for one image's augmentation in one epoch."""
    return int(np.random.SeedSequence((seed, epoch, index)).generate_state(1, np.uint64)[0] >> 1)


@contextlib.contextmanager
def _cpu_rng_seeded(seed: int) -> Iterator[None]:
    """torch's CPU generator seeded with ``seed`` inside, its state restored after: 3 us, where
    ``fork_rng`` + ``torch.manual_seed`` (which seeds every accelerator too) take 150 us, as
    much as decoding a 32 px JPEG."""
    generator = torch.default_generator
    state = generator.get_state()
    generator.manual_seed(seed)
    try:
        yield
    finally:
        generator.set_state(state)


class SeededSampler(_EpochOrder, Sampler[tuple[int, int]]):
    """The ``(index, epoch)`` keys of one epoch, in the order :class:`SeededBatchSampler` visits
    the same split with the same seed (``randperm`` from ``(seed, epoch)``).

    The epoch travels in the key, so a worker process (persistent across epochs) seeds each
    image's augmentation from ``(seed, epoch, index)`` without sharing state with the main one.
    ``set_epoch`` and ``drop_single`` behave as on :class:`SeededBatchSampler`.
    """

    def __len__(self) -> int:
        return self._kept()

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch, _, order = self._next_epoch()
        for index in order.tolist():
            yield index, epoch


def stream_transforms(image_size: tuple[int, int], *, train: bool, augment: bool):
    """ImageNet-style ``torchvision.transforms.v2`` pipelines on uint8 images, any size.

    Training with ``augment``: ``RandomResizedCrop(image_size)`` (scale 0.08-1, aspect 3/4-4/3)
    and a horizontal flip. Evaluation, and training without ``augment``: resize the shorter side
    to ``round(max(image_size) * 256 / 224)``, then crop the centre ``image_size``.
    """
    from torchvision.transforms import v2

    if train and augment:
        return v2.Compose(
            [v2.RandomResizedCrop(list(image_size), antialias=True), v2.RandomHorizontalFlip()]
        )
    side = round(max(image_size) * EVAL_RESIZE_RATIO)
    return v2.Compose([v2.Resize(side, antialias=True), v2.CenterCrop(list(image_size))])


class ImageFileDataset(Dataset[tuple[Tensor, int]]):
    """A :class:`FileSplit` read one file at a time: ``dataset[(index, epoch)]`` is the uint8
    image, transformed, and its label. With ``random``, the transform draws from torch's CPU RNG
    seeded from ``(seed, epoch, index)`` and restored after: the same crops and flips with any
    number of workers, and the caller's RNG left alone."""

    def __init__(self, split: FileSplit, transform, *, random: bool, seed: int = 0) -> None:
        self.split = split
        self.transform = transform
        self.random = random
        self.seed = seed

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, key: tuple[int, int]) -> tuple[Tensor, int]:
        index, epoch = key
        image = read_image(self.split.path(index))
        if self.random:
            with _cpu_rng_seeded(sample_seed(self.seed, epoch, index)):
                image = self.transform(image)
        else:
            image = self.transform(image)
        return image, int(self.split.labels[index])


@dataclass(frozen=True, eq=False)
class NormalizeCollate:
    """The stream loaders' ``collate_fn``: stacks uint8 images into a float batch in [0, 1] and
    normalises it per channel (``mean``/``std`` None: no normalisation), in the worker."""

    mean: Tensor | None = None
    std: Tensor | None = None

    def __call__(self, samples: list[tuple[Tensor, int]]) -> tuple[Tensor, Tensor]:
        images = _as_float(torch.stack([image for image, _ in samples]))
        if self.mean is not None:
            images = (images - self.mean[:, None, None]) / self.std[:, None, None]
        return images, torch.tensor([label for _, label in samples], dtype=torch.int64)


def _stack_uint8(samples: list[tuple[Tensor, int]]) -> Tensor:
    """The statistics loader's ``collate_fn``: raw uint8 images, labels dropped."""
    return torch.stack([image for image, _ in samples])


class StreamDataModule(_SplitDataModule):
    """A ``LightningDataModule`` over image files that stream from disk: the interface of
    :class:`TensorDataModule`, for folders too large to decode into memory.

    Files are decoded and transformed (:func:`stream_transforms` at ``image_size``) in
    ``num_workers`` DataLoader processes (persistent across epochs; pinned memory when
    ``device`` is CUDA). Shuffling follows :class:`SeededSampler`, augmentation (train only,
    with ``augment``) is seeded per ``(seed, epoch, index)``. With ``normalize`` the per-channel
    mean and std are estimated from :data:`STATS_IMAGES` training images drawn with
    :data:`STATS_SEED` (evaluation view, no augmentation), not from the whole set.
    """

    def __init__(
        self,
        train: FileSplit,
        val: FileSplit | None,
        test: FileSplit,
        *,
        class_names: Sequence[str],
        image_size: tuple[int, int],
        batch_size: int = 128,
        eval_batch_size: int | None = None,
        augment: bool = False,
        normalize: bool = True,
        num_workers: int = 2,
        device: str | torch.device = "cpu",
        seed: int = 0,
        config: DataConfig | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.class_names = tuple(class_names)
        for split_name, split in (("train", train), ("val", val), ("test", test)):
            if split is not None and len(split) == 0:
                raise ValueError(f"{split_name} split is empty; give it at least one image")
        if batch_size < 1 or (eval_batch_size is not None and eval_batch_size < 1):
            raise ValueError("batch_size and eval_batch_size must be >= 1")
        if num_workers < 0:
            raise ValueError(f"num_workers={num_workers} must be >= 0")
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device={device!r} but CUDA is not available; use device='cpu'")
        self.train_split, self.val_split, self.test_split = train, val, test
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.augment = augment
        self.num_workers = num_workers
        self.seed = seed
        self.mean: Tensor | None = None
        self.std: Tensor | None = None
        if normalize:
            mean, std = self._estimate_stats()
            self.mean, self.std = mean, std.clamp_min(1e-6)

    def _estimate_stats(self) -> tuple[Tensor, Tensor]:
        count = min(STATS_IMAGES, len(self.train_split))
        rows = np.random.default_rng(STATS_SEED).choice(len(self.train_split), count, replace=False)
        dataset = ImageFileDataset(self.train_split, self._transform(train=False), random=False)
        loader = DataLoader(
            dataset,
            batch_size=64,
            sampler=[(int(row), 0) for row in np.sort(rows)],
            num_workers=self.num_workers,
            collate_fn=_stack_uint8,
        )
        return channel_stats(torch.cat(list(loader)))

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return 3, *self.image_size

    def setup(self, stage: str | None = None) -> None:
        """Nothing to move: batches reach the device through the Trainer, pinned on CUDA."""

    def _transform(self, *, train: bool):
        return stream_transforms(self.image_size, train=train, augment=self.augment)

    def _loader(self, split: FileSplit, *, train: bool) -> DataLoader:
        batch_size = self.batch_size if train else self.eval_batch_size
        return DataLoader(
            ImageFileDataset(
                split, self._transform(train=train), random=train and self.augment, seed=self.seed
            ),
            batch_size=batch_size,
            sampler=SeededSampler(
                len(split), batch_size, shuffle=train, seed=self.seed, drop_single=train
            ),
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=self.device.type == "cuda",
            collate_fn=NormalizeCollate(self.mean, self.std),
            # Its own generator: the workers' base seed is not drawn from torch's global RNG.
            generator=torch.Generator().manual_seed(self.seed),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_split, train=True)

    def val_dataloader(self) -> DataLoader | list:
        """The val loader, or an empty list (Lightning's "no loader") without a val split."""
        return [] if self.val_split is None else self._loader(self.val_split, train=False)

    def test_dataloader(self) -> DataLoader:
        """Final evaluation only: searches select on train/val and never look at this split."""
        return self._loader(self.test_split, train=False)


# --------------------------------------------------------------------------- sources


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


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _archive_stem(path: Path) -> str:
    name = path.name
    for suffix in ARCHIVE_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _unsafe_member(member: tarfile.TarInfo, links: set[str]) -> str | None:
    """Why extracting ``member`` could write outside the target folder, or None when it cannot.

    A static check on the names alone (the target is a fresh empty folder): no absolute path, no
    ``..`` out of the folder, no device or FIFO, links only to paths inside, and no path through
    (or over) a symlink of the archive, which could point anywhere once extracted. ``links``
    collects the archive's symlinks seen so far.
    """

    def outside(relative: str) -> bool:
        return relative == ".." or relative.startswith("../")

    def through_link(relative: str) -> bool:
        parts = relative.split("/")
        return any("/".join(parts[: end + 1]) in links for end in range(len(parts)))

    name = member.name
    if name.startswith("/") or os.path.isabs(name):
        return "an absolute path"
    relative = os.path.normpath(name)
    if outside(relative):
        return "a path outside the extraction folder"
    if through_link(relative):
        return "a path through a symlink of the archive"
    if member.isdev():
        return "a device or FIFO"
    if member.issym() or member.islnk():
        if os.path.isabs(member.linkname):
            return f"a link to the absolute path {member.linkname}"
        # Symlinks resolve from their own folder, hard links from the archive's root.
        base = os.path.dirname(relative) if member.issym() else ""
        target = os.path.normpath(os.path.join(base, member.linkname))
        if outside(target) or through_link(target):
            return f"a link to {member.linkname}, outside the extraction folder"
        if member.issym():
            links.add(relative)
    return None


def safe_extract(archive: Path, target: Path) -> None:
    """Extract the tar ``archive`` into the empty folder ``target``, refusing any member that
    could write outside it (:func:`_unsafe_member`) with an error naming the archive and member.

    The check runs on every interpreter; where ``tarfile`` has extraction filters (Python 3.12,
    3.11.4+) ``filter="data"`` applies as well (it also drops set-uid bits), and before them
    (Debian 12's 3.11.2) the check alone guards the extraction.
    """
    with tarfile.open(archive) as tar:
        links: set[str] = set()
        for member in tar.getmembers():
            reason = _unsafe_member(member, links)
            if reason is not None:
                raise ValueError(
                    f"DataConfig.root: archive {archive} has the member {member.name!r}, "
                    f"{reason}; nothing was extracted. Rebuild the archive with relative paths "
                    "inside one folder (tar -czf data.tar.gz -C parent folder)"
                )
        if hasattr(tarfile, "data_filter"):
            tar.extractall(target, filter="data")
        else:
            tar.extractall(target)


def extract_archive(archive: Path, cache_dir: Path) -> Path:
    """Extract ``archive`` once to ``cache_dir/<stem>-<sha256[:12]>`` and return that folder.

    Extraction goes to a temporary sibling that is renamed into place, so an interrupted run never
    leaves a half-extracted cache; a concurrent extraction of the same archive is harmless.
    Members that could write outside the folder are refused (:func:`safe_extract`).
    """
    target = cache_dir / f"{_archive_stem(archive)}-{_sha256(archive)[:12]}"
    if target.is_dir():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=cache_dir))
    try:
        safe_extract(archive, staging)
        try:
            staging.rename(target)
        except OSError:
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


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


def _folder_samples(folder: Path, class_to_idx: dict[str, int]) -> list[tuple[str, int]]:
    from torchvision.datasets.folder import make_dataset

    return make_dataset(str(folder), class_to_idx, extensions=IMAGE_EXTENSIONS)


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
    extensions are skipped."""
    from torchvision.datasets.folder import find_classes

    root = cfg.root
    is_archive = root.is_file() and root.name.endswith(ARCHIVE_SUFFIXES)
    if is_archive:
        root = extract_archive(root, cfg.cache_dir)
    elif not root.is_dir():
        raise ValueError(
            f"DataConfig.root={cfg.root} is neither a folder nor a {ARCHIVE_SUFFIXES} archive"
        )
    folder = _dataset_folder(root)
    class_names, class_to_idx = find_classes(str(folder / "train"))
    test = None
    if (folder / "test").is_dir():
        test_names, _ = find_classes(str(folder / "test"))
        if test_names != class_names:
            raise ValueError(
                f"DataConfig.root: test/ classes {test_names} differ from train/ classes "
                f"{class_names}; both need the same class subfolders"
            )
        test = _folder_samples(folder / "test", class_to_idx)
    else:
        message = (
            f"imagefolder: {folder} has no test/ folder; holding out a fixed stratified "
            f"{TEST_FRACTION:.0%} of train/ as the test split"
        )
        warnings.warn(message, UserWarning, stacklevel=3)
    train = _folder_samples(folder / "train", class_to_idx)
    return _FolderFiles(folder, is_archive, list(class_names), train, test)


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
        partial = cache_file.with_suffix(f".{os.getpid()}.tmp")
        torch.save(tensors, partial)
        os.replace(partial, cache_file)

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
