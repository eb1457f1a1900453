import json

import pytest

import attn_blocks
from search_spaces.spec import POSITIONS, ArchSpec, BlockChoice


def _spec(**sites) -> ArchSpec:
    return ArchSpec("resnet8", {"width": 16}, in_channels=3, num_classes=10, sites=sites)


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("block", attn_blocks.available())
def test_json_round_trip_every_block_and_position(block, position):
    info = attn_blocks.info(block)
    params = {p.name: p.search[0] for p in info.params if p.search}
    spec = _spec(**{"stage1.0": BlockChoice(block, params, position), "stage2.0": BlockChoice()})
    text = spec.to_json()
    back = ArchSpec.from_json(text)
    assert back == spec
    assert back.digest() == spec.digest()
    assert back.to_dict() == json.loads(text)
    assert back.choice("stage1.0").params == {**info.defaults, **params}


def test_defaults_are_filled_and_equal_to_explicit():
    implicit = _spec(**{"stage1.0": BlockChoice("se")})
    explicit = _spec(**{"stage1.0": BlockChoice("se", {"reduction": 16})})
    assert implicit == explicit and hash(implicit) == hash(explicit)
    assert implicit.digest() == explicit.digest()


def test_explicit_none_sites_do_not_change_identity():
    assert _spec(**{"stage1.0": BlockChoice()}) == _spec()
    assert _spec(**{"stage1.0": BlockChoice()}).digest() == _spec().digest()


def test_integral_floats_are_canonical():
    a = _spec(**{"stage1.0": BlockChoice("se", {"reduction": 8})})
    b = ArchSpec.from_json(a.to_json().replace('"reduction": 8', '"reduction": 8.0'))
    assert a == b


def test_different_architectures_differ():
    a = _spec(**{"stage1.0": BlockChoice("se", {"reduction": 8})})
    assert a != _spec(**{"stage1.0": BlockChoice("se", {"reduction": 4})})
    assert a != _spec(**{"stage1.0": BlockChoice("se", {"reduction": 8}, "post")})
    assert a != _spec(**{"stage1.1": BlockChoice("se", {"reduction": 8})})
    assert len({a.digest(), _spec().digest()}) == 2


def test_digest_is_stable_across_runs():
    # The digest is a contract with stored studies: it must never change for the same spec.
    spec = _spec(**{"stage2.0": BlockChoice("eca", {"kernel_size": 3})})
    assert spec.digest() == ArchSpec.from_dict(json.loads(spec.to_json())).digest()
    # Pinned: this value was computed by release 0.1.0; stored studies hold such digests.
    assert spec.digest() == "62e997d87f7a6125"


def test_summary_groups_uniform_stages():
    spec = _spec(
        **{
            "stage1.0": BlockChoice(),
            "stage2.0": BlockChoice("eca", {"kernel_size": 3}),
            "stage3.0": BlockChoice("se", {"reduction": 8}, "post"),
        }
    )
    assert (
        spec.summary()
        == "resnet8 | stage1: none | stage2: eca(k=3)@standard | stage3: se(r=8)@post"
    )


def test_summary_lists_sites_of_mixed_stages():
    spec = _spec(**{"stage1.0": BlockChoice("simam"), "stage1.1": BlockChoice()})
    assert spec.summary() == "resnet8 | stage1: 0=simam@standard 1=none"


def test_summary_shows_non_default_extra_params():
    spec = _spec(**{"stage1.0": BlockChoice("eca", {"kernel_size": "adaptive", "gamma": 3.0})})
    assert spec.summary() == "resnet8 | stage1: eca(k=adaptive,gamma=3)@standard"


def test_sites_sorted_naturally():
    spec = _spec(
        **{"stage10.0": BlockChoice(), "stage2.11": BlockChoice(), "stage2.2": BlockChoice()}
    )
    assert list(spec.sites) == ["stage2.2", "stage2.11", "stage10.0"]


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (
            {"backbone": "resnet8", "sites": {"stage1.0": {"block": "sse"}}},
            "unknown attention block 'sse'",
        ),
        (
            {"backbone": "resnet8", "sites": {"stage1.0": {"block": "se", "position": "middle"}}},
            "position 'middle'",
        ),
        (
            {"backbone": "resnet8", "sites": {"stage1.0": {"block": "se", "params": {"r": 8}}}},
            "unknown parameter",
        ),
        (
            {
                "backbone": "resnet8",
                "sites": {"stage1.0": {"block": "eca", "params": {"kernel_size": 4}}},
            },
            "kernel_size",
        ),
        ({"backbone": "resnet8", "num_classes": 0}, "num_classes must be a positive int"),
        ({"backbone": "resnet8", "version": 99}, "version 99 is not supported"),
        ({"backbone": "resnet8", "colour": "red"}, "unknown key"),
        ({"sites": {}}, "needs a 'backbone'"),
    ],
)
def test_invalid_specs_name_the_problem(data, match):
    with pytest.raises(ValueError, match=match):
        ArchSpec.from_dict(data)


@pytest.mark.parametrize(
    ("load", "message"),
    [
        (
            lambda: BlockChoice.from_dict(["se"]),
            'a block choice must be a JSON object such as {"block": "se", "params": '
            "{\"reduction\": 8}}, got list ['se']",
        ),
        (
            lambda: BlockChoice.from_dict({"block": "se", "params": [8]}),
            'a block choice\'s params must be a JSON object such as {"reduction": 8}, got list [8]',
        ),
        (
            lambda: BlockChoice.from_dict({"block": "se", "reduction": 8}),
            "block choice has unknown key(s) ['reduction']; expected 'block', 'params', 'position'",
        ),
        (
            lambda: ArchSpec.from_dict("resnet8"),
            'an ArchSpec must be a JSON object such as {"backbone": "resnet20", "sites": {...}}, '
            "got str 'resnet8'",
        ),
        (
            lambda: ArchSpec.from_dict({"backbone": "resnet8", "sites": ["se"]}),
            'ArchSpec.sites must be a JSON object such as {"stage1": {"block": "se"}}, '
            "got list ['se']",
        ),
        (
            lambda: ArchSpec.from_dict({"backbone": "resnet8", "backbone_args": 4}),
            'ArchSpec.backbone_args must be a JSON object such as {"width": 16}, got int 4',
        ),
        (
            lambda: ArchSpec.from_dict({"backbone": "resnet8", "blocks": {}}),
            "ArchSpec has unknown key(s) ['blocks']; expected ['backbone', 'backbone_args', "
            "'in_channels', 'num_classes', 'sites', 'version']",
        ),
        (lambda: ArchSpec.from_dict({"sites": {}}), "ArchSpec needs a 'backbone' entry"),
    ],
)
def test_a_bad_spec_is_refused_naming_the_field_and_an_example(load, message):
    with pytest.raises(ValueError) as refused:
        load()
    assert str(refused.value) == message


def test_a_block_choice_defaults_to_no_attention_at_the_standard_position():
    assert BlockChoice.from_dict({}) == BlockChoice(block="none", params={}, position="standard")
    assert BlockChoice.from_dict({"block": "se"}) == BlockChoice("se", {}, "standard")


def test_a_block_choice_with_no_attention_always_sits_at_the_standard_position():
    # The position of an empty site means nothing: "none@post" and "none" are one architecture.
    empty = BlockChoice("none", {}, "post")
    assert empty.position == "standard"
    assert empty.to_dict() == {"block": "none", "params": {}, "position": "standard"}
    assert empty == BlockChoice()
    assert BlockChoice("se", {}, "post").position == "post"


def test_a_label_lists_other_parameters_by_name_after_the_searched_ones():
    choice = BlockChoice("eca", {"kernel_size": 5, "gamma": 0.5, "beta": 3.0})
    assert choice.label() == "eca(k=5,beta=3,gamma=0.5)@standard"


def test_a_site_name_is_split_at_its_first_dot_into_stage_and_index():
    from search_spaces.spec import site_stage

    assert site_stage("stage2.1") == "stage2"
    assert site_stage("stage2.1.0") == "stage2"
    spec = _spec(**{"stage1.0.a": BlockChoice("simam"), "stage1.0.b": BlockChoice()})
    assert spec.summary() == "resnet8 | stage1: 0.a=simam@standard 0.b=none"


@pytest.mark.parametrize("backbone", ["", None, 20])
def test_a_spec_needs_a_backbone_name(backbone):
    with pytest.raises(ValueError) as refused:
        ArchSpec(backbone)
    assert str(refused.value) == "ArchSpec.backbone must be a non-empty backbone name"


@pytest.mark.parametrize("field", ["in_channels", "num_classes"])
@pytest.mark.parametrize("value", [0, -1, True, 2.5, "3"])
def test_channel_and_class_counts_must_be_positive_ints(field, value):
    with pytest.raises(ValueError) as refused:
        ArchSpec("resnet8", **{field: value})
    assert str(refused.value) == f"ArchSpec.{field} must be a positive int, got {value!r}"


def test_one_input_channel_and_one_class_are_accepted():
    spec = ArchSpec("resnet8", in_channels=1, num_classes=1)
    assert (spec.in_channels, spec.num_classes) == (1, 1)


def test_sites_given_as_plain_dicts_are_read_as_block_choices():
    spec = ArchSpec("resnet8", sites={"stage1.0": {"block": "se", "params": {"reduction": 8}}})
    assert spec.choice("stage1.0") == BlockChoice("se", {"reduction": 8})
    assert spec == ArchSpec("resnet8", sites={"stage1.0": BlockChoice("se", {"reduction": 8})})


def test_backbone_args_are_kept_sorted_by_name_in_a_copy():
    args = {"width": 16, "depth": 2}
    spec = ArchSpec("resnet8", args)
    args["width"] = 32
    assert list(spec.backbone_args.items()) == [("depth", 2), ("width", 16)]
    assert list(spec.to_dict()["backbone_args"]) == ["depth", "width"]


def test_equal_specs_hash_equal_and_distinct_specs_spread_over_hashes():
    specs = [_spec(**{"stage1.0": BlockChoice("se", {"reduction": r})}) for r in (4, 8, 16, 32)]
    specs.append(_spec())
    assert len({hash(s) for s in specs}) == len(specs)
    assert hash(specs[0]) == hash(_spec(**{"stage1.0": BlockChoice("se", {"reduction": 4})}))


def test_a_site_without_a_choice_has_no_attention():
    spec = _spec(**{"stage1.0": BlockChoice("se"), "stage1.1": BlockChoice()})
    assert spec.choice("stage3.0") == BlockChoice()
    assert spec.choice("stage3.0").is_none
    assert spec.choice("stage1.0") == BlockChoice("se")


def test_attended_sites_are_those_with_a_block():
    spec = _spec(
        **{"stage1.0": BlockChoice("se"), "stage1.1": BlockChoice(), "stage2.0": BlockChoice("gct")}
    )
    assert spec.attended_sites() == {"stage1.0": BlockChoice("se"), "stage2.0": BlockChoice("gct")}


def test_a_spec_read_from_a_minimal_dict_takes_the_documented_defaults():
    spec = ArchSpec.from_dict({"backbone": "resnet8"})
    assert (spec.in_channels, spec.num_classes, spec.version) == (3, 10, 1)
    assert spec.sites == {} and spec.backbone_args == {}


def test_a_spec_read_from_a_dict_keeps_its_channel_and_class_counts():
    spec = ArchSpec.from_dict({"backbone": "resnet8", "in_channels": 1, "num_classes": 100})
    assert (spec.in_channels, spec.num_classes) == (1, 100)


def test_compact_json_keeps_field_order_and_indented_json_sorts_keys():
    spec = ArchSpec(
        "resnet8",
        {"width": 16, "depth": 2},
        sites={"stage1.0": BlockChoice("se", {"reduction": 8}, "post")},
    )
    assert spec.to_json() == (
        '{"version": 1, "backbone": "resnet8", "backbone_args": {"depth": 2, "width": 16}, '
        '"in_channels": 3, "num_classes": 10, "sites": {"stage1.0": {"block": "se", '
        '"params": {"reduction": 8}, "position": "post"}}}'
    )
    # The layout of an exported arch.json (nas export writes to_json(indent=2)).
    assert spec.to_json(indent=2) == "\n".join(
        [
            "{",
            '  "backbone": "resnet8",',
            '  "backbone_args": {',
            '    "depth": 2,',
            '    "width": 16',
            "  },",
            '  "in_channels": 3,',
            '  "num_classes": 10,',
            '  "sites": {',
            '    "stage1.0": {',
            '      "block": "se",',
            '      "params": {',
            '        "reduction": 8',
            "      },",
            '      "position": "post"',
            "    }",
            "  },",
            '  "version": 1',
            "}",
        ]
    )


def test_text_that_is_not_json_is_refused_with_the_parser_message():
    with pytest.raises(ValueError) as refused:
        ArchSpec.from_json("not json")
    assert str(refused.value) == (
        "an ArchSpec must be JSON: Expecting value: line 1 column 1 (char 0)"
    )


def test_the_message_about_a_huge_non_object_is_cut_at_300_characters():
    with pytest.raises(ValueError) as refused:
        ArchSpec.from_dict("x" * 1000)
    head = 'an ArchSpec must be a JSON object such as {"backbone": "resnet20", "sites": {...}}, '
    expected = (head + "got str '" + "x" * 1000 + "'")[:300]
    assert str(refused.value) == expected
    assert len(str(refused.value)) == 300
