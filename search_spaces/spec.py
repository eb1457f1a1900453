"""``ArchSpec``: the plain, JSON-serialisable description of one architecture.

It is the contract between search, training, reporting and export: a search space samples it, the
builder turns it into a model, trials store it as JSON in their user attrs, and export writes it as
``arch.json``. Everything in it is plain data (str / int / float / bool / lists / dicts).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import attn_blocks

SPEC_VERSION = 1

#: Where a block sits relative to a residual unit (SENet, Hu et al. 2018, Fig. 5):
#: ``standard`` on the residual branch before the add, ``pre`` on the branch input (the
#: shortcut still sees the unattended input), ``post`` after the add (and its ReLU),
#: ``identity`` on the shortcut.
POSITIONS = ("standard", "pre", "post", "identity")


def _canonical_param(value: Any) -> Any:
    # JSON has one number type: keep ints as ints, integral floats as ints, so r=8 and r=8.0
    # do not make two different specs.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


@dataclass(frozen=True)
class BlockChoice:
    """The attention placed at one insertion site."""

    block: str = "none"
    params: Mapping[str, Any] = field(default_factory=dict)
    position: str = "standard"

    def __post_init__(self) -> None:
        info = attn_blocks.info(self.block)  # raises on an unknown name
        given = {k: _canonical_param(v) for k, v in dict(self.params).items()}
        full = info.validate(given)
        object.__setattr__(self, "params", {k: _canonical_param(full[k]) for k in sorted(full)})
        if self.position not in POSITIONS:
            raise ValueError(
                f"position {self.position!r} is invalid for block {self.block!r}; "
                f"use one of {list(POSITIONS)}"
            )
        if self.block == "none":
            object.__setattr__(self, "position", "standard")

    @property
    def is_none(self) -> bool:
        return self.block == "none"

    def label(self) -> str:
        """``se(r=8)@post``; ``none`` for an empty site.

        Shows the reduction and kernel size (what the search varies) and any other parameter only
        where it differs from the block's default.
        """
        if self.is_none:
            return "none"
        defaults = attn_blocks.info(self.block).defaults
        short = {"reduction": "r", "kernel_size": "k"}
        args = ",".join(
            f"{short.get(k, k)}={v}"
            for k, v in sorted(self.params.items(), key=lambda kv: (kv[0] not in short, kv[0]))
            if k in short or v != defaults[k]
        )
        return f"{self.block}({args})@{self.position}" if args else f"{self.block}@{self.position}"

    def to_dict(self) -> dict[str, Any]:
        return {"block": self.block, "params": dict(self.params), "position": self.position}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BlockChoice:
        _require_mapping(data, "a block choice", '{"block": "se", "params": {"reduction": 8}}')
        _require_mapping(data.get("params", {}), "a block choice's params", '{"reduction": 8}')
        unknown = set(data) - {"block", "params", "position"}
        if unknown:
            raise ValueError(
                f"block choice has unknown key(s) {sorted(unknown)}; "
                "expected 'block', 'params', 'position'"
            )
        return cls(
            block=data.get("block", "none"),
            params=dict(data.get("params", {})),
            position=data.get("position", "standard"),
        )


NO_ATTENTION = BlockChoice()


def site_stage(site: str) -> str:
    """``"stage2.1"`` -> ``"stage2"``."""
    return site.split(".", 1)[0]


@dataclass(frozen=True)
class ArchSpec:
    """A backbone plus the attention block chosen at each of its insertion sites.

    ``sites`` maps every insertion site of the backbone (``"stage<i>.<j>"``) to a
    :class:`BlockChoice`; a site absent from the mapping has no attention. Two specs are equal
    when they describe the same architecture, and :meth:`digest` is a stable hash of it, so
    duplicate trials can be recognised across processes.
    """

    backbone: str
    backbone_args: Mapping[str, Any] = field(default_factory=dict)
    in_channels: int = 3
    num_classes: int = 10
    sites: Mapping[str, BlockChoice] = field(default_factory=dict)
    version: int = SPEC_VERSION

    def __post_init__(self) -> None:
        if not isinstance(self.backbone, str) or not self.backbone:
            raise ValueError("ArchSpec.backbone must be a non-empty backbone name")
        for name, value in (("in_channels", self.in_channels), ("num_classes", self.num_classes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ArchSpec.{name} must be a positive int, got {value!r}")
        if self.version != SPEC_VERSION:
            raise ValueError(
                f"ArchSpec version {self.version} is not supported (this is version "
                f"{SPEC_VERSION}); re-export the architecture with this release"
            )
        sites: dict[str, BlockChoice] = {}
        for site, choice in self.sites.items():
            if not isinstance(choice, BlockChoice):
                choice = BlockChoice.from_dict(choice)
            sites[site] = choice
        object.__setattr__(
            self, "sites", dict(sorted(sites.items(), key=lambda kv: _site_key(kv[0])))
        )
        object.__setattr__(self, "backbone_args", dict(sorted(self.backbone_args.items())))

    # -- identity ---------------------------------------------------------------------------

    def _canonical(self) -> dict[str, Any]:
        data = self.to_dict()
        data["sites"] = {s: c for s, c in data["sites"].items() if c["block"] != "none"}
        return data

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ArchSpec):
            return NotImplemented
        return self._canonical() == other._canonical()

    def __hash__(self) -> int:
        return hash(self.digest())

    def digest(self) -> str:
        """Stable 16-hex-digit hash of the architecture (same on every machine and run)."""
        text = json.dumps(self._canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    # -- views ------------------------------------------------------------------------------

    def choice(self, site: str) -> BlockChoice:
        return self.sites.get(site, NO_ATTENTION)

    def attended_sites(self) -> dict[str, BlockChoice]:
        return {s: c for s, c in self.sites.items() if not c.is_none}

    def summary(self) -> str:
        """One line, e.g. ``resnet20 | stage1: none | stage2: eca(k=3)@standard | ...``.

        A stage whose sites all share one choice is shown once; otherwise each site is listed.
        """
        stages: dict[str, list[tuple[str, BlockChoice]]] = {}
        for site, choice in self.sites.items():
            stages.setdefault(site_stage(site), []).append((site, choice))
        parts = [self.backbone]
        for stage, items in stages.items():
            labels = [c.label() for _, c in items]
            if len(set(labels)) == 1:
                parts.append(f"{stage}: {labels[0]}")
            else:
                per_site = (
                    f"{site.split('.', 1)[1]}={label}"
                    for (site, _), label in zip(items, labels, strict=True)
                )
                parts.append(f"{stage}: " + " ".join(per_site))
        return " | ".join(parts)

    # -- serialisation ----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "backbone": self.backbone,
            "backbone_args": dict(self.backbone_args),
            "in_channels": self.in_channels,
            "num_classes": self.num_classes,
            "sites": {s: c.to_dict() for s, c in self.sites.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ArchSpec:
        _require_mapping(data, "an ArchSpec", '{"backbone": "resnet20", "sites": {...}}')
        _require_mapping(data.get("sites", {}), "ArchSpec.sites", '{"stage1": {"block": "se"}}')
        _require_mapping(data.get("backbone_args", {}), "ArchSpec.backbone_args", '{"width": 16}')
        allowed = {"version", "backbone", "backbone_args", "in_channels", "num_classes", "sites"}
        unknown = set(data) - allowed
        if unknown:
            raise ValueError(
                f"ArchSpec has unknown key(s) {sorted(unknown)}; expected {sorted(allowed)}"
            )
        if "backbone" not in data:
            raise ValueError("ArchSpec needs a 'backbone' entry")
        return cls(
            backbone=data["backbone"],
            backbone_args=dict(data.get("backbone_args", {})),
            in_channels=data.get("in_channels", 3),
            num_classes=data.get("num_classes", 10),
            sites={s: BlockChoice.from_dict(c) for s, c in data.get("sites", {}).items()},
            version=data.get("version", SPEC_VERSION),
        )

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=indent is not None)

    @classmethod
    def from_json(cls, text: str) -> ArchSpec:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"an ArchSpec must be JSON: {exc}") from None
        return cls.from_dict(data)


def _require_mapping(value: Any, what: str, example: str) -> None:
    if not isinstance(value, Mapping):
        raise ValueError(
            f"{what} must be a JSON object such as {example}, got {type(value).__name__} {value!r}"[
                :300
            ]
        )


def _site_key(site: str) -> tuple:
    """Sort ``stage10.2`` after ``stage2.11`` (natural order of the numbers in a site name)."""
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", site))
