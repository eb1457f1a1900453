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
streams a folder whose decoded size exceeds :data:`.sources.MAX_IN_MEMORY_BYTES`. Shuffling and
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

Modules: :mod:`.sources` (what a dataset is read from, and :func:`build_datamodule`),
:mod:`.memory` and :mod:`.streaming` (the two data modules), :mod:`.splits` and :mod:`.augment`
(what they share), :mod:`.archives` (safe extraction of dataset archives), :mod:`.folders` (an
image folder's files: symlinks, each file once).
"""

from ..config import AUGMENTATIONS, DATASETS, DataConfig, default_cache_dir
from .archives import extract_archive, safe_extract
from .augment import BatchAugment, augment_policy, pad_and_crop
from .memory import BatchTensorDataset, IndexBatch, SeededBatchSampler, TensorDataModule
from .sources import (
    TORCHVISION_DATASETS,
    build_datamodule,
    decode_images,
    split_rows,
)
from .splits import Split, channel_stats, epoch_seed, per_class_subset, stratified_split
from .streaming import (
    FileSplit,
    ImageFileDataset,
    SeededSampler,
    StreamDataModule,
    UnreadableImageError,
    error_message,
    read_image,
)

__all__ = [
    "AUGMENTATIONS",
    "DATASETS",
    "TORCHVISION_DATASETS",
    "BatchAugment",
    "BatchTensorDataset",
    "DataConfig",
    "FileSplit",
    "ImageFileDataset",
    "IndexBatch",
    "SeededBatchSampler",
    "SeededSampler",
    "Split",
    "StreamDataModule",
    "TensorDataModule",
    "UnreadableImageError",
    "augment_policy",
    "build_datamodule",
    "channel_stats",
    "decode_images",
    "default_cache_dir",
    "epoch_seed",
    "error_message",
    "extract_archive",
    "pad_and_crop",
    "per_class_subset",
    "read_image",
    "safe_extract",
    "split_rows",
    "stratified_split",
]
