"""Backbones, insertion sites, the architecture spec and the spaces that sample it."""

from .spec import NO_ATTENTION, POSITIONS, ArchSpec, BlockChoice

__all__ = ["NO_ATTENTION", "POSITIONS", "ArchSpec", "BlockChoice"]
