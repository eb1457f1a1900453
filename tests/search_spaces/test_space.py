import optuna
import pytest

from search_spaces.backbones import backbone_sites
from search_spaces.space import SearchSpace, spec_to_params, suggest_arch
from search_spaces.spec import ArchSpec, BlockChoice

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _enumerate(space: SearchSpace) -> set[str]:
    """Every architecture of the space, found by Optuna's brute-force sampler (an independent
    enumeration of the conditional parameter tree)."""
    study = optuna.create_study(sampler=optuna.samplers.BruteForceSampler(seed=0))
    digests: set[str] = set()

    def objective(trial):
        digests.add(suggest_arch(trial, space).digest())
        return 0.0

    study.optimize(objective, n_trials=10_000)
    return digests


@pytest.mark.parametrize(
    "space",
    [
        SearchSpace(
            "resnet8",
            blocks=("none", "se", "eca"),
            reductions=(4, 8),
            eca_kernels=(3, "adaptive"),
            granularity="global",
        ),
        SearchSpace(
            "resnet8",
            blocks=("none", "se"),
            reductions=(8,),
            granularity="per_stage",
            positions=("standard", "post"),
        ),
        SearchSpace("resnet8", blocks=("none", "simam"), granularity="per_block", from_stage=2),
        SearchSpace(
            "resnet8",
            blocks=("none", "gct", "se"),
            reductions=(4,),
            granularity="per_stage",
            stages=(1, 3),
        ),
    ],
    ids=["global", "per_stage", "per_block", "stages"],
)
def test_size_matches_brute_force_enumeration(space):
    assert len(_enumerate(space)) == space.size()


def test_size_formula_example():
    # per stage: none + se x 3 reductions x 2 positions + eca x 2 kernels x 2 positions = 11
    space = SearchSpace(
        "resnet20",
        blocks=("none", "se", "eca"),
        reductions=(4, 8, 16),
        eca_kernels=(3, 5),
        granularity="per_stage",
        positions=("standard", "pre"),
    )
    assert space.size() == 11**3


def test_global_granularity_puts_one_choice_everywhere():
    space = SearchSpace("resnet20", blocks=("se",), reductions=(8,), granularity="global")
    spec = suggest_arch(optuna.trial.FixedTrial({"all.block": "se", "all.reduction": 8}), space)
    assert len(spec.sites) == 9
    assert {c.label() for c in spec.sites.values()} == {"se(r=8)@standard"}


def test_per_block_granularity_and_from_stage():
    space = SearchSpace(
        "resnet8", blocks=("none", "eca"), eca_kernels=(3,), granularity="per_block", from_stage=2
    )
    params = {"stage2.0.block": "eca", "stage2.0.kernel_size": 3, "stage3.0.block": "none"}
    spec = suggest_arch(optuna.trial.FixedTrial(params), space)
    assert spec.choice("stage1.0").is_none  # stage 1 is not searched
    assert spec.choice("stage2.0").label() == "eca(k=3)@standard"
    assert spec.choice("stage3.0").is_none


def test_conditional_parameters_only_where_they_apply():
    space = SearchSpace(
        "resnet8",
        blocks=("none", "se", "eca", "simam"),
        granularity="per_stage",
        positions=("standard", "post"),
    )
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(40):
        trial = study.ask()
        spec = suggest_arch(trial, space)
        for stage in ("stage1", "stage2", "stage3"):
            block = trial.params[f"{stage}.block"]
            assert (f"{stage}.reduction" in trial.params) == (block == "se")
            assert (f"{stage}.kernel_size" in trial.params) == (block == "eca")
            assert (f"{stage}.position" in trial.params) == (block != "none")
            assert spec.choice(f"{stage}.0").block == block
        study.tell(trial, 0.0)


def test_fixed_trial_reproduces_a_given_spec():
    space = SearchSpace(
        "resnet20",
        blocks=("none", "se", "eca", "cbam"),
        reductions=(4, 8),
        eca_kernels=(3, "adaptive"),
        granularity="per_stage",
        positions=("standard", "identity"),
    )
    target = ArchSpec(
        "resnet20",
        sites={
            **{f"stage1.{i}": BlockChoice() for i in range(3)},
            **{
                f"stage2.{i}": BlockChoice("eca", {"kernel_size": "adaptive"}, "identity")
                for i in range(3)
            },
            **{f"stage3.{i}": BlockChoice("cbam", {"reduction": 4}) for i in range(3)},
        },
    )
    params = spec_to_params(target, space)
    assert suggest_arch(optuna.trial.FixedTrial(params), space) == target


def test_spec_outside_the_space_is_rejected():
    space = SearchSpace("resnet8", blocks=("none", "se"), granularity="global")
    spec = ArchSpec("resnet8", sites={"stage1.0": BlockChoice("se")})
    with pytest.raises(ValueError, match="not in the space"):
        spec_to_params(spec, space)


def test_every_site_is_present_in_sampled_specs():
    space = SearchSpace(
        "mobilenet_v2", blocks=("none", "se"), granularity="per_stage", from_stage=3
    )
    spec = suggest_arch(
        optuna.trial.FixedTrial(
            {f"stage{i}.block": "se" for i in range(3, 7)}
            | {f"stage{i}.reduction": 4 for i in range(3, 7)}
        ),
        space,
    )
    assert set(spec.sites) == {s.name for s in backbone_sites("mobilenet_v2")}


def test_same_seed_same_sequence():
    space = SearchSpace("resnet20", granularity="per_block")

    def run():
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=7))
        out = []
        for _ in range(5):
            t = study.ask()
            out.append(suggest_arch(t, space).digest())
            study.tell(t, 0.0)
        return out

    assert run() == run()


def test_round_trip_through_dict():
    space = SearchSpace(
        "resnet20",
        backbone_args={},
        blocks=("none", "encoding"),
        block_params={"encoding": {"codewords": [8, 16]}},
    )
    assert SearchSpace.from_dict(space.to_dict()) == space
    spec = suggest_arch(
        optuna.trial.FixedTrial(
            {
                **{f"stage{i}.block": "encoding" for i in (1, 2, 3)},
                **{f"stage{i}.encoding.codewords": 8 for i in (1, 2, 3)},
            }
        ),
        space,
    )
    assert spec.choice("stage1.0").params["codewords"] == 8


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"blocks": ()}, "space.blocks is empty"),
        ({"blocks": ("none", "sse")}, "unknown block"),
        ({"blocks": ("se", "se")}, "twice"),
        ({"granularity": "per_layer"}, "space.granularity"),
        ({"positions": ("middle",)}, "space.positions"),
        ({"reductions": (0,)}, "space.reductions: value 0 is invalid for block 'se'"),
        ({"blocks": ("eca",), "eca_kernels": (4,)}, "space.eca_kernels: value 4"),
        ({"from_stage": 5}, "space.from_stage=5 is out of range"),
        ({"stages": (0, 2)}, "space.stages"),
        ({"stages": (2,), "from_stage": 2}, "not both"),
        ({"backbone": "resnet9000"}, "resnet9000"),
        ({"block_params": {"bam": {"reduction": [4]}}}, "not in space.blocks"),
        (
            {"blocks": ("se",), "block_params": {"se": {"reduction": [4]}}},
            "space.reductions instead",
        ),
    ],
)
def test_invalid_spaces_fail_clearly(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SearchSpace(**{"backbone": "resnet8", **kwargs})


def test_from_dict_rejects_unknown_keys():
    with pytest.raises(ValueError, match="unknown key"):
        SearchSpace.from_dict({"backbone": "resnet8", "granularty": "global"})
