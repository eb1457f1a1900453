"""An image folder's files (``<split>/<class>/**``): class folders, symlinks, each file once.

torchvision's ``make_dataset`` follows symlinks blindly, so a link back into the tree
(``train/cat/loop -> .``) multiplies a class's files and puts copies of them in val and test.
:func:`folder_samples` follows links as ImageFolder does (``os.walk(followlinks=True)``, in the
same order), with these rules:

* a link that resolves into the dataset folder is refused (it loops, or puts a file in two
  classes or splits); links to files or folders outside it are followed;
* a link to a folder that contains it, or the dataset folder, or that the walk came through (a
  loop outside the tree) is refused;
* a file reached twice in one class of one split counts once; in two classes or splits (two
  links to one file outside the tree) it is refused.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

#: File types ``torchvision.io.decode_image`` reads (a subset of ImageFolder's extensions).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".webp")


def class_names(split_dir: Path) -> list[str]:
    """The class folders of ``split_dir``, sorted; links to folders count (ImageFolder's
    ``find_classes``)."""
    with os.scandir(split_dir) as entries:
        return sorted(entry.name for entry in entries if entry.is_dir())


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


class _Listing:
    """One walk over a dataset folder; ``owners`` maps the resolved path of each file reached
    through a link to the ``split/class`` it was first found in and the path it was found as
    (a file of the folder reached without a link needs no entry: one path alone leads to it)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.tree = os.path.realpath(folder)
        self.owners: dict[str, tuple[str, str]] = {}

    def _target(self, link: str, chain: tuple[str, ...]) -> str:
        """The resolved path of ``link``; a link into the dataset folder, or a loop (a folder
        holding the dataset folder or a folder of ``chain``, the walk's resolved path), raises."""
        target = os.path.realpath(link)
        if _inside(target, self.tree):
            raise ValueError(
                f"DataConfig.root: the symlink {link} points back into the dataset folder "
                f"{self.folder} (to {target}), so its files would count twice or in two classes "
                "or splits; replace the link with the files it should add, or remove it"
            )
        if any(_inside(real, target) for real in (self.tree, *chain)):
            raise ValueError(
                f"DataConfig.root: the symlink {link} points to {target}, a folder it is reached "
                "from (a symlink loop), so its files would count without end; remove the link"
            )
        return target

    def _walk(
        self, directory: str, chain: tuple[str, ...], found: list[tuple[str, str | None]]
    ) -> None:
        """Append ``(path, resolved path)`` of every image under ``directory`` (resolved path
        ``chain[-1]``), following links; the resolved path is None for a file inside the dataset
        folder reached without a link, which no other path can reach."""
        linked = not _inside(chain[-1], self.tree)
        with os.scandir(directory) as entries:
            for entry in entries:
                target: str | None = None
                if entry.is_symlink():
                    target = self._target(entry.path, chain)
                    if os.path.isdir(target):
                        self._walk(entry.path, (*chain, target), found)
                        continue
                elif entry.is_dir():
                    self._walk(entry.path, (*chain, os.path.join(chain[-1], entry.name)), found)
                    continue
                elif linked:
                    target = os.path.join(chain[-1], entry.name)
                if entry.name.lower().endswith(IMAGE_EXTENSIONS):
                    found.append((entry.path, target))

    def samples(self, split: str, names: Sequence[str]) -> list[tuple[str, int]]:
        """``(path, class index)`` of the images of ``split``, in ImageFolder's order (folders
        sorted by path, files by name), each file once."""
        split_dir = os.path.join(self.folder, split)
        if os.path.islink(split_dir):
            self._target(split_dir, ())
        samples = []
        for label, name in enumerate(names):
            class_dir = os.path.join(split_dir, name)
            real = (
                self._target(class_dir, ())
                if os.path.islink(class_dir)
                else os.path.realpath(class_dir)
            )
            found: list[tuple[str, str | None]] = []
            self._walk(class_dir, (real,), found)
            found.sort(key=lambda item: (os.path.dirname(item[0]), os.path.basename(item[0])))
            where = f"{split}/{name}"
            count = len(samples)
            for path, target in found:
                if target is None:
                    samples.append((path, label))
                    continue
                owner, first = self.owners.setdefault(target, (where, path))
                if owner != where:
                    raise ValueError(
                        f"DataConfig.root: {path} ({where}) and {first} ({owner}) are the same "
                        f"file {target}; a file may belong to one class of one split only: "
                        "remove one of the links"
                    )
                if first == path:
                    samples.append((path, label))
            if len(samples) == count:
                raise ValueError(
                    f"DataConfig.root: {class_dir} has no image files "
                    f"({', '.join(IMAGE_EXTENSIONS)}); add images to it or remove the folder"
                )
        return samples


def folder_samples(
    folder: Path, splits: Sequence[str], names: Sequence[str]
) -> dict[str, list[tuple[str, int]]]:
    """``{split: [(path, class index), ...]}`` for the ``splits`` of the dataset folder
    ``folder``, labelled by position in ``names`` (the rules are in the module docstring)."""
    listing = _Listing(folder)
    return {split: listing.samples(split, names) for split in splits}
