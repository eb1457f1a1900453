"""Generated ImageFolder trees for the data tests (both loaders)."""

from pathlib import Path

import torch
from torchvision.io import write_png

#: Not sorted: ImageFolder sorts class names.
CLASSES = ("cat", "ant", "bee")


def write_image_folder(
    root: Path, *, splits: tuple[str, ...], per_class: int, size: tuple[int, int]
) -> dict[str, torch.Tensor]:
    """Three classes of random PNGs (lossless, so decoded pixels must match): ``{path: pixels}``."""
    generator = torch.Generator().manual_seed(0)
    written = {}
    for split in splits:
        for cls in CLASSES:
            (root / split / cls).mkdir(parents=True)
            for i in range(per_class):
                image = torch.randint(0, 256, (3, *size), dtype=torch.uint8, generator=generator)
                path = root / split / cls / f"{i:02d}.png"
                write_png(image, str(path))
                written[str(path)] = image
    return written
