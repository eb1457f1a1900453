"""Constructor parameter specs and their validation, shared by the blocks and the backbones.

A :class:`ParamSpec` describes one keyword of a constructor: its default, the values it accepts
and the values a search offers. :func:`validate_params` checks a call's keywords against the
specs and is the only place that words the error, so a bad value reads the same whether it came
through ``attn_blocks.create``, a direct ``SqueezeExcite(...)`` or a backbone. The ``check_*``
functions return ``None`` for a valid value, otherwise a short reason the message quotes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ParamSpec:
    """One constructor parameter.

    ``check`` returns ``None`` for a valid value, otherwise a short reason. ``allowed`` is the
    human description of the valid values that error messages quote. ``search`` lists the values
    a search space offers by default (a subset of the valid ones). A required parameter (one
    every call passes, such as ``channels``) has the default ``None``.
    """

    name: str
    default: Any
    allowed: str
    check: Callable[[Any], str | None]
    search: tuple[Any, ...] = ()
    doc: str = ""


def validate_params(
    owner: str,
    specs: Sequence[ParamSpec],
    values: Mapping[str, Any],
    *,
    kind: str = "parameter",
) -> dict[str, Any]:
    """Return ``values`` with the defaults of the missing specs filled in, in spec order.

    Raises ``ValueError`` for a name no spec has, or for the first value (in spec order) that
    fails its check; the message starts with ``owner`` (e.g. ``"block 'se'"``) and names the
    ``kind`` of value ("parameter", "argument"), the name, the value, the reason and the allowed
    values.
    """
    names = [spec.name for spec in specs]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ValueError(
            f"{owner} got unknown {kind}(s) {unknown}; it takes {names or f'no {kind}s'}"
        )
    full = {}
    for spec in specs:
        if spec.name not in values:
            full[spec.name] = spec.default
            continue
        value = values[spec.name]
        reason = spec.check(value)
        if reason is not None:
            raise ValueError(
                f"{owner}: {kind} {spec.name}={value!r} is invalid ({reason}); "
                f"allowed: {spec.allowed}"
            )
        full[spec.name] = value
    return full


# --- checks ------------------------------------------------------------------------------------


def check_bool(value: Any) -> str | None:
    return None if isinstance(value, bool) else f"expected a bool, got {type(value).__name__}"


def check_int(value: Any) -> str | None:
    """Any int but a bool (``True`` is an int to Python, never a width to us)."""
    if isinstance(value, bool) or not isinstance(value, int):
        return f"expected an int, got {type(value).__name__}"
    return None


def check_positive_int(value: Any) -> str | None:
    reason = check_int(value)
    if reason is None and value < 1:
        reason = "must be >= 1"
    return reason


def check_odd_int(value: Any) -> str | None:
    """A positive odd int: a kernel that padding ``k // 2`` centres on each position."""
    reason = check_positive_int(value)
    if reason is None and value % 2 == 0:
        reason = "must be odd"
    return reason


def check_positive_float(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"expected a number, got {type(value).__name__}"
    return None if value > 0 and math.isfinite(value) else "must be a finite number > 0"


# --- common specs ------------------------------------------------------------------------------


def int_param(
    name: str,
    default: int | None,
    doc: str,
    search: tuple[int, ...] = (),
    allowed: str = "an int >= 1",
) -> ParamSpec:
    """A positive int parameter (``default=None`` for a required one)."""
    return ParamSpec(name, default, allowed, check_positive_int, search, doc)


def float_param(
    name: str, default: float, doc: str, allowed: str = "a finite number > 0"
) -> ParamSpec:
    """A positive finite number parameter."""
    return ParamSpec(name, default, allowed, check_positive_float, (), doc)


def bool_param(name: str, default: bool, doc: str) -> ParamSpec:
    """A flag parameter."""
    return ParamSpec(name, default, "a bool", check_bool, (), doc)


#: ``channels``, the first (required) argument of every block.
CHANNELS = int_param("channels", None, "input channels C")
