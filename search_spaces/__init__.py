"""Backbones, insertion sites, the architecture spec, the spaces that sample it, costs, and
pretrained starts."""

from .backbones import Site, available_backbones, backbone_sites, build_backbone, stage_names
from .build import build_model
from .cost import ModelCost, count_flops, count_params, measure_latency, model_cost
from .insertion import InsertionRule, insert_attention
from .pretrained import preserves_function
from .space import SearchSpace, spec_to_params, suggest_arch
from .spec import NO_ATTENTION, POSITIONS, ArchSpec, BlockChoice

__all__ = [
    "NO_ATTENTION",
    "POSITIONS",
    "ArchSpec",
    "BlockChoice",
    "InsertionRule",
    "ModelCost",
    "SearchSpace",
    "Site",
    "available_backbones",
    "backbone_sites",
    "build_backbone",
    "build_model",
    "count_flops",
    "count_params",
    "insert_attention",
    "measure_latency",
    "model_cost",
    "preserves_function",
    "spec_to_params",
    "stage_names",
    "suggest_arch",
]
