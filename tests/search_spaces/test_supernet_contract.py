"""The supernet's contract beyond exactness: refusals by their whole message, which sites get
candidates, the sizes and weights it is built with, the paths a sampler draws, and BatchNorm
recalibration on a device and in training mode."""

import copy
import re

import numpy as np
import pytest
import torch
from torch import nn
from torchvision.models import resnet18

import attn_blocks
from search_spaces import supernet as sn
from search_spaces.backbones import backbone_sites, build_backbone
from search_spaces.build import build_model
from search_spaces.insertion import insert_attention
from search_spaces.space import SearchSpace
from search_spaces.spec import ArchSpec, BlockChoice

SE4 = BlockChoice("se", {"reduction": 4})
SE8 = BlockChoice("se", {"reduction": 8})
ECA_POST = BlockChoice("eca", {"kernel_size": 3}, "post")


def se_space(**kwargs) -> SearchSpace:
    values = {
        "backbone": "resnet8",
        "backbone_args": {"width": 8},
        "blocks": ("none", "se"),
        "reductions": (4,),
        "granularity": "per_block",
    }
    return SearchSpace(**(values | kwargs))


def raises(exc: type[Exception], message: str):
    return pytest.raises(exc, match=f"^{re.escape(message)}$")


# -- MixedAttention ----------------------------------------------------------------------------


def test_a_new_mixed_site_passes_its_input_through_and_shows_its_active_choice():
    mixed = sn.MixedAttention([SE4, ECA_POST], [nn.Identity(), nn.Identity()])
    x = torch.randn(2, 8, 4, 4)
    assert mixed(x) is x  # nothing active yet: the plain unit
    assert repr(mixed) == "MixedAttention(\n  2 candidates, active=none\n  (candidates): " + (
        "ModuleDict(\n    (0): Identity()\n    (1): Identity()\n  )\n)"
    )
    mixed.activate(ECA_POST)
    assert mixed.extra_repr() == "2 candidates, active=eca(k=3)@post"
    with raises(
        ValueError,
        "se(r=8)@standard is not a candidate here; candidates: se(r=4)@standard, eca(k=3)@post",
    ):
        mixed.activate(SE8)
    mixed.activate(BlockChoice())
    assert mixed.active is None and mixed.index(BlockChoice()) is None
    # ``none`` is never a candidate, even where a caller lists it among the choices.
    assert sn.MixedAttention([BlockChoice(), SE4], [nn.Identity()] * 2).index(BlockChoice()) is None
    with raises(ValueError, "MixedAttention needs one module per choice"):
        sn.MixedAttention([SE4, SE8], [nn.Identity()])


# -- which sites, what sizes -------------------------------------------------------------------


def test_only_the_searched_sites_get_candidates_and_the_sampler_leaves_the_others_none():
    space = se_space(from_stage=2)
    supernet = sn.build_supernet(space)
    assert sorted(sn._mixed_sites(supernet)) == ["layer2.0", "layer3.0"]
    assert supernet.supernet_sites == {
        "stage1.0": "layer1.0",
        "stage2.0": "layer2.0",
        "stage3.0": "layer3.0",
    }
    sampler = sn.PathSampler(space, seed=0)
    for step in range(4):
        assert sampler(step).sites["stage1.0"] == BlockChoice()
        sn.activate(supernet, sampler(step))  # a sampled path activates
    assert sn.supernet_size(space).sites == 2


def test_a_space_of_attention_only_builds_a_supernet_and_one_of_none_is_refused():
    supernet = sn.build_supernet(se_space(blocks=("se",)))
    assert len(sn._mixed_sites(supernet)) == 3
    with raises(
        ValueError, "the space has only 'none'; a supernet needs at least one attention block"
    ):
        sn.build_supernet(se_space(blocks=("none",)))


def test_backbone_arguments_and_classes_shape_the_supernet_and_its_size_estimate():
    space = SearchSpace(
        backbone="cifar_resnet",
        backbone_args={"depth": 14, "width": 4},
        blocks=("none", "se"),
        reductions=(2,),
        granularity="per_block",
    )
    supernet = sn.build_supernet(space, in_channels=1, num_classes=7)
    names = [s.name for s in backbone_sites("cifar_resnet", depth=14, width=4)]
    assert list(supernet.supernet_sites) == names and len(names) == 6
    assert len(sn._mixed_sites(supernet)) == 6
    assert supernet(torch.randn(2, 1, 16, 16)).shape == (2, 7)
    size = sn.supernet_size(space, in_channels=1, num_classes=7)
    assert size.sites == 6
    assert size.parameters == sum(p.numel() for p in supernet.parameters())
    spec = sn.PathSampler(space, in_channels=1, num_classes=7)(0)
    assert (spec.in_channels, spec.num_classes, list(spec.sites)) == (1, 7, names)
    assert build_model(spec)(torch.randn(1, 1, 16, 16)).shape == (1, 7)


def test_the_size_estimate_finds_the_sites_the_backbone_arguments_make():
    """A MobileNetV2 at width 0.25 has one residual site more than at width 1 (stage1.0: its
    first block keeps the stem's 8 channels), and the estimate counts its candidates."""
    space = SearchSpace(
        backbone="mobilenet_v2",
        backbone_args={"width_mult": 0.25},
        blocks=("none", "eca"),
        eca_kernels=(3,),
        granularity="per_block",
    )
    size = sn.supernet_size(space)
    supernet = sn.build_supernet(space)
    assert size.sites == len(sn._mixed_sites(supernet)) == 11
    assert size.parameters == sum(p.numel() for p in supernet.parameters())


def test_the_memory_limit_counts_the_optimizer_states_it_is_given():
    space = se_space()
    one = sn.supernet_size(space, optimizer_states=1).training_bytes
    two = sn.supernet_size(space, optimizer_states=2).training_bytes
    assert two > one
    sn.build_supernet(space, max_bytes=one)  # the default: one state per parameter (SGD)
    with pytest.raises(MemoryError, match=r"^the supernet of space resnet8 x \['none', 'se'\] "):
        sn.build_supernet(space, max_bytes=one, optimizer_states=2)


def test_a_pretrained_supernet_loads_the_weights_and_starts_every_path_as_the_backbone(tmp_path):
    space = se_space(blocks=("none", "gc", "gct", "non_local"), positions=("standard", "post"))
    torch.manual_seed(5)
    source = build_backbone("resnet8", width=8)
    with torch.no_grad():
        for bn in (m for m in source.modules() if isinstance(m, nn.BatchNorm2d)):
            bn.weight.uniform_(0.5, 1.5)
            bn.running_mean.normal_(0.0, 0.3)
    path = tmp_path / "weights.pt"
    torch.save(source.state_dict(), path)
    supernet = sn.build_supernet(space, seed=0, pretrained=str(path)).eval()
    source.eval()
    x = torch.randn(2, 3, 16, 16)
    sampler = sn.PathSampler(space, seed=1)
    for step in range(6):
        spec = sampler(step)
        assert any(not c.is_none for c in spec.sites.values())
        sn.activate(supernet, spec)
        with torch.no_grad():
            torch.testing.assert_close(supernet(x), source(x), rtol=1e-5, atol=1e-6)


# -- activation and weights: what is refused -----------------------------------------------------


def test_refusals_name_the_site_of_a_space_supernet_and_the_module_of_a_users_supernet():
    space = se_space()
    supernet = sn.build_supernet(space)
    spec = ArchSpec(backbone="resnet8", backbone_args={"width": 8}, sites={"stage1.0": SE8})
    expected = "site 'stage1.0' (layer1.0): se(r=8)@standard is not a candidate"
    with raises(ValueError, expected + " here; candidates: se(r=4)@standard"):
        sn.activate(supernet, spec)
    with raises(ValueError, expected):
        sn.subnet_state_dict(supernet, spec)
    unknown = ArchSpec(backbone="resnet8", backbone_args={"width": 8}, sites={"stage9.9": SE4})
    with raises(ValueError, "spec has site(s) ['stage9.9'] that the supernet does not have"):
        sn.activate(supernet, unknown)

    mine = resnet18(num_classes=3)
    sn.insert_candidates(mine, {"layer1.0": [SE4]})
    with raises(ValueError, "module 'layer1.0': se(r=8)@standard is not a candidate"):
        sn.subnet_state_dict(mine, {"layer1.0": SE8})
    with raises(
        ValueError,
        "module 'layer1.0': se(r=8)@standard is not a candidate here; candidates: se(r=4)@standard",
    ):
        sn.activate(mine, {"layer1.0": SE8})
    half = copy.deepcopy(supernet)
    del half.supernet_sites  # a space but no site names: as good as none
    for unnamed in (mine, half):
        with raises(
            ValueError,
            "this supernet was not built by build_supernet, so it has no site names; activate "
            "it with a {module_path: BlockChoice} mapping",
        ):
            sn.activate(unnamed, spec)
    with raises(
        ValueError,
        "site(s) ['layer1.1'] carry attention but have no candidates in the supernet",
    ):
        sn.activate(mine, {"layer1.1": SE4})
    with raises(
        ValueError,
        "the model is not a supernet (no MixedAttention); build it with build_supernet or "
        "insert_candidates",
    ):
        sn.activate(resnet18(), {})


def test_a_mapping_may_give_choices_as_dicts_and_none_at_modules_without_candidates():
    mine = resnet18(num_classes=3)
    sn.insert_candidates(mine, {"layer1.0": [SE4, ECA_POST]})
    sn.activate(mine, {"layer1.0": ECA_POST.to_dict(), "layer2.0": BlockChoice()})
    assert sn._mixed_sites(mine)["layer1.0"][1].active == 1
    state = sn.subnet_state_dict(mine, {"layer1.0": {"block": "se", "params": {"reduction": 4}}})
    assert any(k.startswith("layer1.0.attn.") for k in state)


# -- a user's model: what insert_candidates checks and allocates --------------------------------


def test_the_size_is_weights_states_and_buffers_plus_the_gradients_of_the_largest_path():
    """SupernetSize's formula by hand on a small model: float32 weights with ``states`` optimizer
    states each, the buffers, and the gradients of the backbone and each site's largest
    candidate; the limit is inclusive and the default counts one state (SGD's momentum)."""
    model = nn.Sequential(nn.Conv2d(3, 8, 1), nn.BatchNorm2d(8), nn.Conv2d(8, 8, 1))
    simam = BlockChoice("simam", position="post")  # no parameters
    candidates = {"0": [BlockChoice("se", {"reduction": 2}, "post"), simam], "2": [simam]}
    backbone = sum(p.numel() for p in model.parameters())
    buffers = sum(b.numel() for b in model.buffers())
    se = sum(p.numel() for p in attn_blocks.create("se", 8, reduction=2).parameters())
    for states in (1, 2):
        floats = (backbone + se) * (1 + states) + buffers + (backbone + se)
        fits = copy.deepcopy(model)
        sn.insert_candidates(fits, candidates, max_bytes=4 * floats, optimizer_states=states)
        assert len(sn._mixed_sites(fits)) == 2
        with pytest.raises(MemoryError, match=r"^the supernet of this model would not fit: 3 "):
            sn.insert_candidates(
                copy.deepcopy(model), candidates, max_bytes=4 * floats - 1, optimizer_states=states
            )
    one_state = 4 * ((backbone + se) * 2 + buffers + backbone + se)
    sn.insert_candidates(copy.deepcopy(model), candidates, max_bytes=one_state)


def test_insert_candidates_refuses_by_whole_messages():
    mine = resnet18()
    with raises(
        MemoryError,
        "the supernet of this model would not fit: 1 candidate blocks at 1 sites, 11,691,640 "
        "parameters, about 134 MB to train, over the limit of 3 MB. Narrow the space (fewer "
        "blocks, reductions, kernel sizes or positions, or fewer stages), or raise the limit "
        "(search.max_supernet_mb)",
    ):
        sn.insert_candidates(mine, {"layer1.0": [SE4]}, max_bytes=3 * 2**20)
    with raises(ValueError, "insert_candidates got no rules"):
        sn.insert_candidates(mine, [])
    with raises(
        ValueError,
        "insert_candidates takes InsertionRule(s) or a {module_path: choice} mapping, got int",
    ):
        sn.insert_candidates(mine, [3])
    with raises(ValueError, "no module got a candidate block (only 'none' was given)"):
        sn.insert_candidates(mine, {"layer1.0": [BlockChoice()]})
    with raises(
        ValueError,
        "module '0' (Conv2d) supports positions ['pre', 'post'], not ['standard']; only "
        "residual units take 'standard' and 'identity'",
    ):
        sn.insert_candidates(nn.Sequential(nn.Conv2d(3, 8, 3)), {"0": [SE4]})
    insert_attention(mine, {"layer1.0": SE4})
    with raises(ValueError, f"module 'layer1.0' already carries attention ({mine.layer1[0].attn})"):
        sn.insert_candidates(mine, {"layer1.0": [SE8]})


class ListInput(nn.Module):
    """Takes a list of tensors (not one tensor) and concatenates it along channels."""

    def forward(self, xs: list) -> torch.Tensor:
        return torch.cat(xs, dim=1)


class TwoBranch(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.join = ListInput()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.stem(x)
        return self.join([y, y])


def test_candidates_go_only_where_4d_tensors_flow_in_and_out_of_the_example_input():
    """The dry run uses the example input: this model takes only 8x8 images."""
    post = [BlockChoice("simam", position="post")]
    flat = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Flatten(), nn.Unflatten(1, (4, 8, 8)))
    example = torch.zeros(1, 3, 8, 8)
    for path, seen in (
        ("1", "torch.Size([1, 4, 8, 8]) -> torch.Size([1, 256])"),
        ("2", "torch.Size([1, 256]) -> torch.Size([1, 4, 8, 8])"),
    ):
        with raises(
            ValueError,
            f"module {path!r}: attention needs 4-D (B, C, H, W) tensors in and out, the dry run "
            f"saw {seen}",
        ):
            sn.insert_candidates(copy.deepcopy(flat), {path: post}, example)
    with raises(
        ValueError,
        "module 'join': attention needs 4-D (B, C, H, W) tensors in and out, the dry run saw "
        "None -> torch.Size([1, 8, 8, 8])",
    ):
        sn.insert_candidates(TwoBranch(), {"join": post}, example)
    sized = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Flatten(), nn.Linear(256, 2))
    sn.insert_candidates(sized, {"0": post}, example)  # 64x64, the default, would not fit
    assert sized(example).shape == (1, 2)


def test_candidates_take_the_models_device_and_dtype_and_a_model_may_have_no_parameters():
    model = nn.Sequential(nn.Conv2d(3, 8, 1), nn.ReLU()).double()
    sn.insert_candidates(model, {"0": [BlockChoice("se", {"reduction": 2}, "post")]})
    assert {p.dtype for p in model.parameters()} == {torch.float64}
    on_meta = nn.Sequential(nn.Conv2d(3, 8, 1), nn.ReLU()).to("meta")
    sn.insert_candidates(on_meta, {"0": [BlockChoice("se", {"reduction": 2}, "post")]})
    assert {p.device.type for p in on_meta.parameters()} == {"meta"}
    pooled = nn.Sequential(nn.AvgPool2d(1), nn.Identity())
    sn.insert_candidates(
        pooled, {"0": [BlockChoice("simam", position="post")]}, torch.ones(1, 2, 4, 4)
    )
    sn.activate(pooled, {"0": BlockChoice("simam", position="post")})
    assert pooled(torch.ones(1, 2, 4, 4)).shape == (1, 2, 4, 4)


# -- path sampling -------------------------------------------------------------------------------


def test_uniform_paths_are_independent_draws_and_the_default_is_uniform_with_seed_0():
    space = se_space(blocks=("none", "se", "eca"), eca_kernels=(3,))
    sampler = sn.PathSampler(space)
    assert (sampler.seed, sampler.sampling) == (0, "uniform")
    # Its paths fit the supernet build_supernet makes by default: 3 input channels, 10 classes.
    assert (sampler(0).in_channels, sampler(0).num_classes) == (3, 10)
    assert all(sampler(s) == sn.PathSampler(space, seed=0, sampling="uniform")(s) for s in range(9))
    m = len(space.choices())
    cycles = np.array([[sampler.indices(c * m + i) for i in range(m)] for c in range(40)])
    # Independent draws repeat a choice within m steps (a permutation never does): with 3
    # choices, a cycle is a permutation with probability 2/9, so 40 such cycles are impossible.
    is_permutation = [sorted(cycle[:, 0]) == list(range(m)) for cycle in cycles]
    assert 0 < sum(is_permutation) < 40


# -- BatchNorm recalibration -----------------------------------------------------------------------


class DeviceProbe(nn.Module):
    """Records the device of each batch it sees and hands a CPU tensor on."""

    def __init__(self) -> None:
        super().__init__()
        self.devices: list[str] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.devices.append(x.device.type)
        return torch.ones(x.shape)


def test_recalibration_moves_batches_to_the_device_and_restores_each_modules_mode():
    model = nn.Sequential(DeviceProbe(), nn.BatchNorm2d(3), nn.Dropout())
    model.train()
    model[2].eval()  # modes differ between modules: each is restored as it was
    images = torch.randn(2, 3, 4, 4)
    assert sn.recalibrate_bn(model, [images], device="meta") == 2
    assert model[0].devices == ["meta"]
    assert [m.training for m in model] == [True, True, False]
    sn.recalibrate_bn(model, [(images, torch.zeros(2))])
    assert model[0].devices == ["meta", "cpu"]
    with raises(ValueError, "recalibrate_bn got no batches; pass at least one batch of images"):
        sn.recalibrate_bn(model, iter(()))
