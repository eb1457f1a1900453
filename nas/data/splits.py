"""Splits: stratified and per-class cuts, a split's tensors, channel statistics, and the seeded
epoch order both data modules share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch import Tensor

from ..config import DataConfig


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


class _EpochOrder:
    """The visiting order of one epoch, shared by both samplers: ``randperm`` (or ``arange``)
    from a generator seeded with ``(seed, epoch)``, cut by ``drop_single``; ``set_epoch`` picks
    the epoch and each pass advances it. ``device``: where a sampler puts the indices it yields
    (the split's device; the streaming sampler yields CPU indices)."""

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
        self.device = torch.device(device)
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


#: The evaluation batch, in training batches, where ``eval_batch_size`` is not given. Evaluation
#: keeps no activations for a backward pass, so this fits wherever training fits, and a larger
#: batch costs less per image (``benchmarks/trial_speed.py``).
EVAL_BATCH_FACTOR = 4


class _SplitDataModule(LightningDataModule):
    """What both data modules share: ``train_split``, ``val_split`` (None when training on the
    full pool) and ``test_split``, and an ``input_shape``; the checks and settings both take."""

    def __init__(
        self,
        train: Any,
        val: Any | None,
        test: Any,
        class_names: Sequence[str],
        batch_size: int,
        eval_batch_size: int | None,
        device: str | torch.device,
        seed: int,
        config: DataConfig | None,
        /,
    ) -> None:
        super().__init__()
        self.config = config
        self.class_names = tuple(class_names)
        for split_name, split in (("train", train), ("val", val), ("test", test)):
            if split is not None and len(split) == 0:
                raise ValueError(f"{split_name} split is empty; give it at least one image")
        if batch_size < 1 or (eval_batch_size is not None and eval_batch_size < 1):
            raise ValueError("batch_size and eval_batch_size must be >= 1")
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device={device!r} but CUDA is not available; use device='cpu'")
        self.train_split, self.val_split, self.test_split = train, val, test
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or EVAL_BATCH_FACTOR * batch_size
        self.seed = seed

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
