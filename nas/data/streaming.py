"""Streaming from disk: image folders too large for memory, decoded and augmented in loader workers
(:class:`StreamDataModule`)."""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from ..config import DataConfig
from .splits import _as_float, _EpochOrder, _SplitDataModule, channel_stats

#: Training images (a fixed seeded sample) the streaming path estimates channel statistics from:
#: enough for means to about 0.01 of the [0, 1] scale, a few seconds of decoding.
STATS_IMAGES = 500
#: Seed of that sample: fixed, so every trial of a study normalises alike.
STATS_SEED = 0
#: Evaluation resize before the centre crop, as in ImageNet evaluation (256 px for 224 px crops).
EVAL_RESIZE_RATIO = 256 / 224


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
            f"imagefolder: {path} cannot be decoded ({error}); replace or delete the file (in "
            "the archive, where DataConfig.root is one)"
        ) from error


#: How torch re-raises a DataLoader worker's error: its message is the worker's whole traceback.
_WORKER_ERROR = re.compile(
    r"Caught (?P<type>\w+) (?P<where>in [^\n]*)\.\nOriginal Traceback \(most recent call last\)"
)


def error_message(error: BaseException) -> str:
    """``str(error)``, or for an error re-raised from a DataLoader worker (whose message is the
    worker's traceback, the original message last, past where a stored fail_reason is cut) the
    original message, then where it was raised: ``"<message> (in DataLoader worker process 0)"``.
    """
    message = str(error)
    match = _WORKER_ERROR.match(message)
    if match is None:
        return message
    last = message.rsplit("Traceback (most recent call last):\n", 1)[1].splitlines()
    lines = list(itertools.dropwhile(lambda line: line.startswith(" ") or not line, last))
    original = " ".join(line.strip() for line in lines if line.strip())
    name = re.escape(match["type"])
    original = re.sub(rf"^(?:[\w.]+\.)?{name}(?:: |$)", "", original)
    return f"{original} ({match['where']})".lstrip()


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


def collate_uint8(samples: list[tuple[Tensor, int]]) -> tuple[Tensor, Tensor]:
    """The stream loaders' ``collate_fn``: the uint8 images stacked as they are (a quarter of
    float32's bytes to pin and copy to the device) and the int64 labels;
    :meth:`StreamDataModule.on_after_batch_transfer` scales and normalises them on the device."""
    images = torch.stack([image for image, _ in samples])
    return images, torch.tensor([label for _, label in samples], dtype=torch.int64)


def _stack_uint8(samples: list[tuple[Tensor, int]]) -> Tensor:
    """The statistics loader's ``collate_fn``: raw uint8 images, labels dropped."""
    return torch.stack([image for image, _ in samples])


class StreamDataModule(_SplitDataModule):
    """A ``LightningDataModule`` over image files that stream from disk: the interface of
    :class:`TensorDataModule`, for folders too large to decode into memory.

    Files are decoded and transformed (:func:`stream_transforms` at ``image_size``) in
    ``num_workers`` DataLoader processes (persistent across epochs; pinned memory when
    ``device`` is CUDA) and sent as uint8 batches, scaled and normalised once on the device
    (:meth:`on_after_batch_transfer`). Shuffling follows :class:`SeededSampler`, augmentation
    (train only, with ``augment``) is seeded per ``(seed, epoch, index)``. With ``normalize``
    the per-channel mean and std are estimated from :data:`STATS_IMAGES` training images drawn
    with :data:`STATS_SEED` (evaluation view, no augmentation), not from the whole set.
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
        super().__init__(
            train, val, test, class_names, batch_size, eval_batch_size, device, seed, config
        )
        if num_workers < 0:
            raise ValueError(f"num_workers={num_workers} must be >= 0")
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.augment = augment
        self.num_workers = num_workers
        self.mean: Tensor | None = None
        self.std: Tensor | None = None
        self._device_stats: tuple[Tensor, Tensor] | None = None
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
            collate_fn=collate_uint8,
            # Its own generator: the workers' base seed is not drawn from torch's global RNG.
            generator=torch.Generator().manual_seed(self.seed),
        )

    def on_after_batch_transfer(
        self, batch: tuple[Tensor, Tensor], dataloader_idx: int
    ) -> tuple[Tensor, Tensor]:
        """A uint8 batch, now on the device, as the model's float input: scaled to [0, 1] and
        normalised per channel (``mean``/``std`` None: no normalisation). Lightning calls it for
        every batch; whoever reads the loaders directly calls it too."""
        images, labels = batch
        images = _as_float(images)
        if self.mean is not None:
            mean, std = self._stats_on(images.device)
            images = (images - mean) / std
        return images, labels

    def _stats_on(self, device: torch.device) -> tuple[Tensor, Tensor]:
        """``mean`` and ``std`` shaped for a batch, on ``device``: copied there once, not per
        batch (``mean``/``std`` themselves stay on the CPU, as checkpoints store them)."""
        if self._device_stats is None or self._device_stats[0].device != device:
            self._device_stats = (
                self.mean.to(device)[:, None, None],
                self.std.to(device)[:, None, None],
            )
        return self._device_stats

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_split, train=True)

    def val_dataloader(self) -> DataLoader | list:
        """The val loader, or an empty list (Lightning's "no loader") without a val split."""
        return [] if self.val_split is None else self._loader(self.val_split, train=False)

    def test_dataloader(self) -> DataLoader:
        """Final evaluation only: searches select on train/val and never look at this split."""
        return self._loader(self.test_split, train=False)
