"""Parameter validation: one mechanism for ``create()`` and for direct construction.

Every registered block rejects every bad value of every parameter (and of ``channels``) with a
``ValueError`` that names the block and the parameter, and the message is the same whether the
block is built by name or by its class.
"""

import inspect

import pytest
import torch
from torch import nn

import attn_blocks
from attn_blocks import registry
from attn_blocks.params import (
    ParamSpec,
    check_odd_int,
    check_positive_float,
    check_positive_int,
    float_param,
    int_param,
    validate_params,
)
from attn_blocks.se import SqueezeExcite

BLOCKS = attn_blocks.available()

#: Bad values by check; a parameter with its own check lists its own in ``_BAD_BY_PARAM``.
_BAD_BY_CHECK = {
    check_positive_int: (0, -1, True, 2.5, "x"),
    check_positive_float: (0, -1.0, float("nan"), float("inf"), True, "x"),
    check_odd_int: (0, -1, True, 2.5, "x", 4),
}
_BAD_BY_PARAM = {("eca", "kernel_size"): (0, -1, True, 2.5, "x", 4, None, "auto")}
BAD_CHANNELS = (0, -3, True, 2.5)


def _bad_values(name: str, spec: ParamSpec) -> tuple:
    return _BAD_BY_PARAM.get((name, spec.name), _BAD_BY_CHECK.get(spec.check, ()))


BAD_CASES = [
    pytest.param(name, spec.name, value, id=f"{name}-{spec.name}={value!r}")
    for name in BLOCKS
    for spec in attn_blocks.info(name).params
    for value in _bad_values(name, spec)
]
VALID_CASES = [
    pytest.param(name, {spec.name: value}, id=f"{name}-{spec.name}={value!r}")
    for name in BLOCKS
    for spec in attn_blocks.info(name).params
    for value in dict.fromkeys((spec.default, *spec.search))
] + [pytest.param(name, {}, id=f"{name}-defaults") for name in BLOCKS]


def _messages(name: str, channels, **params) -> tuple[str, str]:
    """The error of ``create()`` and of the block's class for the same arguments."""
    with pytest.raises(ValueError) as created:
        attn_blocks.create(name, channels, **params)
    with pytest.raises(ValueError) as direct:
        attn_blocks.info(name).cls(channels, **params)
    return str(created.value), str(direct.value)


def test_every_parameter_has_bad_values():
    missing = [
        (name, spec.name)
        for name in BLOCKS
        for spec in attn_blocks.info(name).params
        if not _bad_values(name, spec)
    ]
    assert not missing, f"add bad values for {missing} to _BAD_BY_PARAM"


@pytest.mark.parametrize(("name", "param", "value"), BAD_CASES)
def test_bad_parameter_same_error_through_create_and_class(name, param, value):
    created, direct = _messages(name, 16, **{param: value})
    assert created == direct
    assert created.startswith(f"block {name!r}: parameter {param}={value!r} is invalid (")
    assert created.endswith(f"allowed: {attn_blocks.info(name).param(param).allowed}")


@pytest.mark.parametrize("channels", BAD_CHANNELS)
@pytest.mark.parametrize("name", BLOCKS)
def test_bad_channels_same_error_through_create_and_class(name, channels):
    created, direct = _messages(name, channels)
    assert created == direct
    assert created.startswith(f"block {name!r}: parameter channels={channels!r} is invalid (")
    with pytest.raises(ValueError) as keyword:
        attn_blocks.info(name).cls(channels=channels)
    assert str(keyword.value) == created


def test_positional_parameter_is_validated():
    assert _messages("se", 16, reduction=0)[0] == _error(lambda: SqueezeExcite(16, 0))


def test_channels_are_checked_before_the_parameters():
    created, direct = _messages("bam", 0, reduction=0)
    assert created == direct and "channels=0" in created


@pytest.mark.parametrize(("name", "params"), VALID_CASES)
def test_valid_values_build_the_same_block_either_way(name, params):
    torch.manual_seed(0)
    created = attn_blocks.create(name, 8, **params)
    torch.manual_seed(0)
    direct = attn_blocks.info(name).cls(8, **params)
    x = torch.randn(2, 8, 5, 5)
    torch.testing.assert_close(direct(x), created(x))
    assert direct(x).shape == x.shape


@pytest.mark.parametrize("name", BLOCKS)
def test_signature_is_kept_and_its_defaults_are_the_registry_defaults(name):
    """The constructor checks only what a call passes, so its defaults must be valid: the
    registry's."""
    block = attn_blocks.info(name)
    parameters = inspect.signature(block.cls).parameters
    assert next(iter(parameters)) == "channels"
    assert {k: parameters[k].default for k in block.param_names} == block.defaults


def test_subclasses_keep_the_validation():
    class PlainSE(SqueezeExcite):
        pass

    class WideSE(SqueezeExcite):
        def __init__(self, channels: int, widen: int = 2) -> None:
            super().__init__(channels * widen, reduction=4)

    assert "reduction" in inspect.signature(PlainSE).parameters
    assert _error(lambda: PlainSE(16, reduction=0)) == _messages("se", 16, reduction=0)[0]
    assert _error(lambda: WideSE(8, widen=0)).startswith("block 'se': parameter channels=0 ")
    block = WideSE(8)
    assert block.hidden_channels == 4
    assert block(torch.randn(2, 16, 3, 3)).shape == (2, 16, 3, 3)


def test_register_wraps_new_blocks(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    @attn_blocks.register(
        "scaled_test",
        family="channel",
        paper="test",
        params=(float_param("scale", 1.0, "output scale"),),
    )
    class Scaled(nn.Module):
        def __init__(self, channels: int, scale: float = 1.0, label: str = "") -> None:
            super().__init__()
            self.scale = scale
            self.label = label

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * self.scale

    assert _messages("scaled_test", 4, scale=0)[0].startswith(
        "block 'scaled_test': parameter scale=0 is invalid"
    )
    assert Scaled(4, label=None).label is None  # not a registered parameter: passed through
    with pytest.raises(TypeError):
        Scaled(4, shift=1.0)


def test_validate_params_fills_defaults_and_checks_in_spec_order():
    specs = (int_param("a", 1, "first"), int_param("b", 2, "second"))
    assert validate_params("thing 't'", specs, {"b": 5}) == {"a": 1, "b": 5}
    with pytest.raises(ValueError, match=r"^thing 't': argument a=0 is invalid \(must be >= 1\)"):
        validate_params("thing 't'", specs, {"b": 0, "a": 0}, kind="argument")
    with pytest.raises(ValueError, match=r"thing 't' got unknown parameter\(s\) \['c'\]; .*'a'"):
        validate_params("thing 't'", specs, {"c": 1})


def _error(build) -> str:
    with pytest.raises(ValueError) as error:
        build()
    return str(error.value)
