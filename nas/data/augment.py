"""Batch augmentation on tensors: pad-and-crop and flips drawn per batch from the epoch's
generator."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


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
