"""In-memory data: whole splits as tensors, served in seeded index batches
(:class:`TensorDataModule`)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from ..config import DataConfig
from .augment import BatchAugment
from .splits import Split, _as_float, _EpochOrder, _SplitDataModule, channel_stats


@dataclass(frozen=True, eq=False)  # no element-wise tensor comparison
class IndexBatch:
    """The rows of one batch of a split and the epoch's generator.

    The key :class:`SeededBatchSampler` yields and :class:`BatchTensorDataset` looks up: the
    augmentation of each batch draws from the generator that shuffled the epoch, right after
    the shuffle and in batch order, so all of an epoch's randomness comes from ``(seed, epoch)``.
    """

    index: Tensor
    generator: torch.Generator


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
        for split_name, split in (("train", train), ("val", val), ("test", test)):
            if split is None:
                continue
            if split.images.ndim != 4 or split.labels.shape != (split.images.shape[0],):
                raise ValueError(
                    f"{split_name}: images must be (N, C, H, W) and labels (N,), got "
                    f"{tuple(split.images.shape)} and {tuple(split.labels.shape)}"
                )
        super().__init__(
            train, val, test, class_names, batch_size, eval_batch_size, device, seed, config
        )
        for split_name, split in (("train", train), ("val", val), ("test", test)):
            if split is None:
                continue
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
        self.augment = augment or BatchAugment()
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
