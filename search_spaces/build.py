"""``build_model``: turn an :class:`~search_spaces.spec.ArchSpec` into a ``nn.Module``."""

from __future__ import annotations

import torch
from torch import nn

from .backbones import backbone_sites, build_backbone
from .insertion import cpu_rng_seeded, insert_attention
from .pretrained import Pretrained, identity_init
from .spec import ArchSpec

#: Side of the dry-run input that infers the blocks' channel counts.
DRY_RUN_SIZE = 32


def build_model(
    spec: ArchSpec, seed: int | None = None, pretrained: Pretrained = False
) -> nn.Module:
    """Build the backbone of ``spec`` and insert its attention blocks.

    The same ``seed`` gives the same ``state_dict``; the caller's global RNG state is left as
    it was (with ``seed=None`` the global generator is used, like any ``nn.Module``). With a
    seed, the backbone's weights do not depend on the attention (they are drawn first) and each
    block draws from a stream of its own site (``insertion.site_seed``), so two architectures
    built with one seed share every weight they have in common. Sites
    absent from ``spec.sites`` get no attention. The returned model carries the spec as
    ``model.arch_spec``.

    ``pretrained`` (``True`` for the published weights, or a weights file; see
    :func:`~search_spaces.backbones.build_backbone`) is loaded into the plain backbone before
    the blocks are inserted; the blocks then start as the identity where their family allows
    it (:mod:`search_spaces.pretrained` lists which do), so the network computes what the
    pretrained one did. The other blocks keep their own initialisation.
    """
    sites = {site.name: site for site in backbone_sites(spec.backbone, **spec.backbone_args)}
    unknown = sorted(set(spec.sites) - set(sites))
    if unknown:
        raise ValueError(
            f"spec has site(s) {unknown} that backbone {spec.backbone!r} does not have; "
            f"its sites are {list(sites)}"
        )
    for name, choice in spec.attended_sites().items():
        if choice.position not in sites[name].positions:
            raise ValueError(
                f"site {name!r} of backbone {spec.backbone!r} takes positions "
                f"{list(sites[name].positions)}, not {choice.position!r} (it is not a residual "
                "unit); choose one of those positions (space.positions)"
            )
    with cpu_rng_seeded(seed):
        model = build_backbone(
            spec.backbone,
            spec.in_channels,
            spec.num_classes,
            pretrained=pretrained,
            **spec.backbone_args,
        )
        mapping = {sites[name].path: choice for name, choice in spec.attended_sites().items()}
        # Channel counts do not depend on the spatial size: a CIFAR-sized dry run is enough.
        example = torch.zeros(1, spec.in_channels, DRY_RUN_SIZE, DRY_RUN_SIZE)
        insert_attention(model, mapping, example, seed=seed)
    if pretrained is not False:
        for path in mapping:
            identity_init(model.get_submodule(f"{path}.attn"))
    model.arch_spec = spec
    return model
