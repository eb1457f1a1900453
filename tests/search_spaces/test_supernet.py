"""The weight-sharing supernet: exact sub-networks, path sampling, BN recalibration, size."""

import copy
from collections import Counter

import numpy as np
import optuna
import pytest
import torch
from torch import nn
from torchvision.models import resnet18
from torchvision.models.resnet import BasicBlock

import attn_blocks
from search_spaces import supernet as sn
from search_spaces.build import build_model
from search_spaces.insertion import InsertionRule, insert_attention
from search_spaces.space import SearchSpace, suggest_arch
from search_spaces.spec import POSITIONS, ArchSpec, BlockChoice

FAMILIES = [b for b in attn_blocks.available() if b != "none"]


def small_space(*blocks, **kwargs):
    values = {
        "backbone": "resnet8",
        "backbone_args": {"width": 8},
        "blocks": ("none", *blocks),
        "reductions": (2, 4),
        "eca_kernels": (3, "adaptive"),
        "granularity": "per_block",
        "positions": POSITIONS,
    }
    values.update(kwargs)
    return SearchSpace(**values)


def perturb(model: nn.Module, seed: int = 0) -> None:
    """Random weights and BN statistics, so that equality is not equality at initialisation."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            if tensor.is_floating_point():
                noise = torch.rand(tensor.shape, generator=generator) * 0.5 + 0.5
                tensor.mul_(noise.to(tensor.dtype))


def spec_with(space: SearchSpace, choices: dict[str, BlockChoice]) -> ArchSpec:
    names = [s for scope in space.scopes().values() for s in scope]
    return ArchSpec(
        backbone=space.backbone,
        backbone_args=space.backbone_args,
        sites={name: choices.get(name, BlockChoice()) for name in names},
    )


def assert_same_function(supernet: nn.Module, spec: ArchSpec, x: torch.Tensor) -> None:
    sn.activate(supernet, spec)
    standalone = build_model(spec, seed=123)  # other weights, overwritten below
    standalone.load_state_dict(sn.subnet_state_dict(supernet, spec), strict=True)
    for training in (False, True):
        supernet.train(training)
        standalone.train(training)
        with torch.no_grad():
            assert torch.equal(supernet(x), standalone(x)), (spec.summary(), training)


# -- exactness --------------------------------------------------------------------------------


@pytest.mark.parametrize("block", FAMILIES)
def test_subnet_computes_what_build_model_computes_at_every_position(block):
    space = small_space(block)
    supernet = sn.build_supernet(space, seed=0)
    perturb(supernet, seed=1)
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    sites = [s for scope in space.scopes().values() for s in scope]
    candidates = [c for c in space.choices() if not c.is_none]
    # Each site at each position (rotated, so that sites differ from each other in one spec).
    covered = set()
    for shift in range(len(POSITIONS)):
        chosen = {}
        for i, site in enumerate(sites):
            options = [c for c in candidates if c.position == POSITIONS[(i + shift) % 4]]
            chosen[site] = options[(i + shift) % len(options)]
            covered.add((site, chosen[site].position))
        assert_same_function(supernet, spec_with(space, chosen), x)
    assert covered == {(site, p) for site in sites for p in POSITIONS}
    assert_same_function(supernet, spec_with(space, {}), x)  # every site none


def test_a_seeded_supernet_starts_as_the_seeded_stand_alone_models():
    space = small_space("se", "eca", "cbam", granularity="per_stage")
    supernet = sn.build_supernet(space, seed=7)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    x = torch.randn(2, 3, 32, 32)
    supernet.eval()
    for _ in range(6):
        spec = suggest_arch(study.ask(), space)
        sn.activate(supernet, spec)
        reference = build_model(spec, seed=7).eval()
        with torch.no_grad():
            assert torch.equal(supernet(x), reference(x)), spec.summary()


def test_supernet_of_a_space_holds_one_candidate_per_choice_and_site():
    space = small_space("se", "eca")
    supernet = sn.build_supernet(space)
    mixed = [m for m in supernet.modules() if isinstance(m, sn.MixedAttention)]
    per_site = len([c for c in space.choices() if not c.is_none])
    assert per_site == 2 * 4 + 2 * 4  # (2 reductions + 2 kernels) x 4 positions
    assert len(mixed) == len(space.scopes()) and all(len(m.candidates) == per_site for m in mixed)
    # Candidates at a site share no tensor.
    pointers = [p.data_ptr() for m in mixed for p in m.parameters()]
    assert len(pointers) == len(set(pointers))


def test_size_estimate_matches_the_built_supernet():
    space = small_space("se", "fca", "non_local", "bam")
    size = sn.supernet_size(space, optimizer_states=1)
    supernet = sn.build_supernet(space)
    assert size.parameters == sum(p.numel() for p in supernet.parameters())
    assert size.buffers == sum(b.numel() for b in supernet.buffers())
    assert size.candidates == sum(
        len(m.candidates) for m in supernet.modules() if isinstance(m, sn.MixedAttention)
    )
    assert size.training_bytes > 4 * 2 * size.parameters


def test_a_supernet_too_large_is_refused_before_anything_is_built(monkeypatch):
    space = small_space("se", "non_local", "gsop")
    size = sn.supernet_size(space)
    real_build = sn.build_backbone

    def meta_only(*args, **kwargs):
        if torch.empty(0).device.type != "meta":
            raise AssertionError("a backbone was allocated before the refusal")
        return real_build(*args, **kwargs)

    monkeypatch.setattr(sn, "build_backbone", meta_only)
    with pytest.raises(MemoryError) as err:
        sn.build_supernet(space, max_bytes=size.training_bytes - 1)
    message = str(err.value)
    assert f"{size.parameters:,} parameters" in message
    assert f"{size.candidates:,} candidate blocks" in message
    assert "search.max_supernet_mb" in message


def test_activation_refuses_what_the_supernet_does_not_hold():
    space = small_space("se", reductions=(4,), positions=("standard",))
    supernet = sn.build_supernet(space)
    other = spec_with(space, {"stage1.0": BlockChoice("se", {"reduction": 8})})
    with pytest.raises(ValueError, match=r"stage1\.0.*se\(r=8\)@standard is not a candidate"):
        sn.activate(supernet, other)
    with pytest.raises(ValueError, match="is not a candidate"):
        sn.subnet_state_dict(supernet, other)
    wrong = ArchSpec(backbone="resnet20", sites={})
    with pytest.raises(ValueError, match="resnet20"):
        sn.activate(supernet, wrong)
    with pytest.raises(ValueError, match="only 'none'"):
        sn.build_supernet(SearchSpace(blocks=("none",)))


# -- a user's own model -------------------------------------------------------------------------


def test_insertion_rules_make_a_supernet_of_a_torchvision_model():
    torch.manual_seed(0)
    plain = resnet18(num_classes=5)
    supernet = copy.deepcopy(plain)
    rules = [
        InsertionRule("se", {"reduction": 8}, types=(BasicBlock,)),
        InsertionRule("eca", position="post", types=(BasicBlock,)),
        InsertionRule("simam", position="pre", names=r"layer1\.0"),
    ]
    sn.insert_candidates(supernet, rules, seed=3)
    perturb(supernet)
    hosts = sn._mixed_sites(supernet)
    assert len(hosts) == 8 and len(hosts["layer1.0"][1].candidates) == 3
    mapping = {
        "layer1.0": BlockChoice("simam", position="pre"),
        "layer3.1": BlockChoice("eca", position="post"),
        "layer4.0": BlockChoice("se", {"reduction": 8}),
    }
    sn.activate(supernet, mapping)
    reference = insert_attention(copy.deepcopy(plain), mapping)
    reference.load_state_dict(sn.subnet_state_dict(supernet, mapping), strict=True)
    x = torch.randn(2, 3, 64, 64)
    supernet.eval()
    reference.eval()
    with torch.no_grad():
        assert torch.equal(supernet(x), reference(x))


def test_wrapped_modules_drop_their_wrapper_when_they_run_none():
    """A module that is not a residual unit is wrapped in the supernet; its stand-alone form has
    no wrapper where it carries no attention, and the weights follow."""
    plain = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 1)
    )
    supernet = copy.deepcopy(plain)
    choices = [BlockChoice("se", {"reduction": 2}, "post"), BlockChoice("eca", position="pre")]
    sn.insert_candidates(supernet, {"1": choices, "3": choices})
    perturb(supernet)
    x = torch.randn(2, 3, 16, 16)
    for mapping in ({"1": choices[0]}, {"3": choices[1]}, {}):
        sn.activate(supernet, mapping)
        reference = (
            insert_attention(copy.deepcopy(plain), mapping) if mapping else copy.deepcopy(plain)
        )
        reference.load_state_dict(sn.subnet_state_dict(supernet, mapping), strict=True)
        supernet.eval()
        reference.eval()
        with torch.no_grad():
            assert torch.equal(supernet(x), reference(x)), mapping


def test_insert_candidates_refuses_positions_a_module_cannot_take():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())
    with pytest.raises(
        ValueError, match=r"supports positions \['pre', 'post'\], not \['standard'\]"
    ):
        sn.insert_candidates(model, {"0": [BlockChoice("se", {"reduction": 2})]})
    with pytest.raises(ValueError, match="only 'none'"):
        sn.insert_candidates(model, {"0": [BlockChoice()]})
    with pytest.raises(ValueError, match="no submodule"):
        sn.insert_candidates(model, {"9": [BlockChoice("eca", position="post")]})


# -- path sampling ------------------------------------------------------------------------------


def test_uniform_sampling_draws_every_candidate_about_equally():
    space = small_space(
        "se", "eca", reductions=(4,), eca_kernels=(3,), positions=("standard", "post")
    )
    choices = space.choices()  # none, se@2 positions, eca@2 positions
    sampler = sn.PathSampler(space, seed=0, sampling="uniform")
    steps = 3000
    counts = Counter()
    for step in range(steps):
        for scope, index in zip(space.scopes(), sampler.indices(step), strict=True):
            counts[(scope, index)] += 1
    p = 1 / len(choices)
    sd = np.sqrt(steps * p * (1 - p))
    for scope in space.scopes():
        for index in range(len(choices)):
            assert abs(counts[(scope, index)] - steps * p) < 5 * sd, (scope, index)
    # A function of (seed, step): the same paths again, other paths under another seed.
    again = sn.PathSampler(space, seed=0)
    assert all(again(s) == sampler(s) for s in range(50))
    other = sn.PathSampler(space, seed=1)
    assert any(other(s) != sampler(s) for s in range(50))


def test_fair_sampling_trains_each_candidate_once_per_cycle():
    space = small_space("se", "eca", "simam", reductions=(4,), eca_kernels=(3,))
    m = len(space.choices())
    sampler = sn.PathSampler(space, seed=5, sampling="fair")
    for cycle in range(3):
        picked = [sampler.indices(cycle * m + i) for i in range(m)]
        for k in range(len(space.scopes())):
            assert sorted(step[k] for step in picked) == list(range(m))
    # The spec of a step activates exactly those choices.
    spec = sampler(4)
    for name, index in zip(space.scopes(), sampler.indices(4), strict=True):
        assert spec.choice(space.scopes()[name][0]) == space.choices()[index]
    with pytest.raises(ValueError, match="sampling 'round_robin' is unknown"):
        sn.PathSampler(space, sampling="round_robin")


def test_supernet_training_steps_reach_every_candidate():
    """Gradients reach each candidate that its path activates, and no other."""
    space = small_space("se", "eca", reductions=(4,), eca_kernels=(3,), positions=("standard",))
    supernet = sn.build_supernet(space, seed=0)
    sampler = sn.PathSampler(space, seed=0, sampling="fair")
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    touched = set()
    for step in range(len(space.choices())):
        supernet.zero_grad(set_to_none=True)
        spec = sampler(step)
        sn.activate(supernet, spec)
        nn.functional.cross_entropy(supernet(x), y).backward()
        for name, param in supernet.named_parameters():
            if ".candidates." in name and param.grad is not None:
                touched.add(name.split(".candidates.")[0] + "." + name.split(".")[4])
    expected = {
        f"{path}.attn.{i}" for path in ("layer1.0", "layer2.0", "layer3.0") for i in range(2)
    }
    assert touched == expected


# -- BatchNorm recalibration ----------------------------------------------------------------------


def test_recalibration_gives_the_mean_of_batch_statistics():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4))
    model[1].running_mean.fill_(5.0)
    batches = [torch.randn(8, 3, 5, 5) * (i + 1) for i in range(3)]
    model.eval()
    seen = sn.recalibrate_bn(model, [(b, torch.zeros(8)) for b in batches])
    assert seen == 24
    with torch.no_grad():
        features = [model[0](b).double() for b in batches]
    mean = torch.stack([f.mean(dim=(0, 2, 3)) for f in features]).mean(0)
    var = torch.stack([f.var(dim=(0, 2, 3), unbiased=True) for f in features]).mean(0)
    torch.testing.assert_close(model[1].running_mean.double(), mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model[1].running_var.double(), var, rtol=1e-5, atol=1e-6)
    assert model[1].momentum == 0.1 and not model.training  # restored
    with pytest.raises(ValueError, match="no batches"):
        sn.recalibrate_bn(model, [])


@pytest.mark.parametrize(
    ("backbone", "positions"),
    [("timm:resnet18", POSITIONS), ("timm:regnetx_002", ("pre", "post"))],
    ids=["timm-residual-units", "timm-stages"],
)
def test_timm_supernets_compute_what_build_model_computes(backbone, positions):
    pytest.importorskip("timm")
    space = SearchSpace(
        backbone=backbone,
        blocks=("none", "eca", "gct"),
        eca_kernels=(3,),
        granularity="per_block",
        positions=positions,
    )
    supernet = sn.build_supernet(space, seed=0)
    perturb(supernet)
    x = torch.randn(2, 3, 32, 32)
    sites = [s for scope in space.scopes().values() for s in scope]
    candidates = [c for c in space.choices() if not c.is_none]
    for shift in range(len(candidates)):
        chosen = {s: candidates[(i + shift) % len(candidates)] for i, s in enumerate(sites)}
        assert_same_function(supernet, spec_with(space, chosen), x)
    assert_same_function(supernet, spec_with(space, {sites[0]: candidates[0]}), x)
