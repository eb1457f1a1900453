"""The search engine: data, training, cost, pruning, studies, reports, export and the CLI.

``nas.load(path)`` loads an exported or retrained model (see :func:`nas.export.load`); it is
imported on first use, so ``import nas`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .export import load

__all__ = ["load"]


def __getattr__(name: str) -> Any:
    if name == "load":
        from .export import load

        return load
    raise AttributeError(f"module 'nas' has no attribute {name!r}")
