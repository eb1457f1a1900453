"""The validation machinery every section shares: strict scalars, allowed-values metadata on each
field, and pydantic's errors turned into one line that names the field (``data.batch_size``, or
``DataConfig.batch_size`` when a class is built directly) and the values it allows."""

from __future__ import annotations

import functools
from dataclasses import fields
from typing import Annotated, Any, TypeVar, get_args, get_origin

from pydantic import (
    ConfigDict,
    Field,
    Strict,
    StrictFloat,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)
from pydantic.dataclasses import is_pydantic_dataclass
from pydantic.fields import FieldInfo
from pydantic_core import ArgsKwargs, PydanticCustomError, PydanticUndefined


def _keep_int(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """Validate a number as a float but keep an int an int (a stored 1 must read back as 1)."""
    number = handler(value)
    return value if isinstance(value, int) else number


# Scalars are strict (a bool is never a number, "5" never an int, 2.0 never an int); sequences
# take lists (TOML and JSON arrays) as well as tuples.
_Int = Annotated[int, Strict()]
_Number = Annotated[StrictFloat, WrapValidator(_keep_int)]
_PositiveNumber = Annotated[StrictFloat, Field(gt=0), WrapValidator(_keep_int)]
_T = TypeVar("_T")


class ConfigError(ValueError):
    """A study configuration is invalid; the message names the field and the fix."""


_CONFIG = ConfigDict(extra="forbid")
_CROSS_FIELD = "cross_field"
_UNKNOWN_KEY = ("unexpected_keyword_argument", "extra_forbidden")


def _field(default: Any = PydanticUndefined, *, allowed: str, doc: str = "", **kwargs: Any) -> Any:
    """A field with its meaning (``doc``: the schema's description) and the values it allows
    (``allowed``: the end of "<field> must be ..." in errors, and the schema's ``allowed``)."""
    return Field(default, description=doc or None, json_schema_extra={"allowed": allowed}, **kwargs)


def _one_of(values: tuple[str, ...]) -> str:
    return f"one of {list(values)}"


def _distinct(values: tuple[_T, ...]) -> tuple[_T, ...]:
    if len(set(values)) != len(values):
        raise ValueError("a value is listed twice")
    return values


def _invalid(field: str, problem: str) -> PydanticCustomError:
    """A cross-field error on ``field``; it reads ``<section>.<field> <problem>``."""
    return PydanticCustomError(
        _CROSS_FIELD, "{field} {problem}", {"field": field, "problem": problem}
    )


def _allowed_of(info: Any) -> Any:
    """The ``allowed`` phrase of a FieldInfo made by :func:`_field` (None for anything else)."""
    extra = info.json_schema_extra if isinstance(info, FieldInfo) else None
    return extra.get("allowed") if isinstance(extra, dict) else None


def _unwrap(tp: Any) -> tuple[Any, str | None]:
    """(``tp`` without ``Annotated``, the allowed values its metadata names, if any)."""
    if get_origin(tp) is not Annotated:
        return tp, None
    base, *metadata = get_args(tp)
    return base, next((a for a in map(_allowed_of, metadata) if a), None)


def _locate(owner: Any, loc: tuple[int | str, ...]) -> tuple[list[str], str | None, bool, Any]:
    """Follow a pydantic error location through dataclass fields, table keys and list items.

    Returns the path (fields and table keys; list indices and union members are left out), the
    allowed values of the innermost described part, whether the error is about a table key, and
    the type reached (for unknown keys: the dataclass whose fields are allowed).
    """
    path: list[str] = []
    allowed = None
    tp = owner
    for i, part in enumerate(loc):
        tp, own = _unwrap(tp)
        allowed = own or allowed
        if is_pydantic_dataclass(tp) and part in tp.__pydantic_fields__:
            info = tp.__pydantic_fields__[part]
            path.append(str(part))
            tp, allowed = info.annotation, _allowed_of(info)
        elif get_origin(tp) is dict and isinstance(part, str):
            key_type, value_type = get_args(tp)
            if loc[i + 1 : i + 2] == ("[key]",):
                return path, _unwrap(key_type)[1] or allowed, True, tp
            path.append(part)
            tp = value_type
        elif get_origin(tp) is tuple and isinstance(part, int):
            tp = get_args(tp)[0]
        else:
            break
    tp, own = _unwrap(tp)
    return path, own or allowed, False, tp


def _message(exc: ValidationError, owner: type, prefix: str) -> str:
    """One line from a ValidationError of ``owner``: unknown keys with the allowed ones first,
    else the first error as ``<prefix>.<field path> must be <allowed values>, got <value>``."""
    errors = exc.errors()
    lead = f"{prefix}: " if prefix else ""
    unknown = [e for e in errors if e["type"] in _UNKNOWN_KEY]
    if unknown:
        parent = unknown[0]["loc"][:-1]
        keys = [".".join(map(str, e["loc"])) for e in unknown if e["loc"][:-1] == parent]
        tp = _locate(owner, parent)[3]
        noun = getattr(tp, "KEY_NOUN", "key")  # the study file's keys are its sections
        allowed = sorted(f.name for f in fields(tp) if f.init)
        return f"{lead}unknown {noun}(s) {keys}; allowed: {allowed}"
    error = errors[0]
    path, allowed, key, _ = _locate(owner, error["loc"])
    where = ".".join([prefix, *path] if prefix else path)
    ctx = error.get("ctx", {})
    if error["type"] == _CROSS_FIELD:
        return f"{'.'.join(filter(None, [where, ctx['field']]))} {ctx['problem']}"
    if error["type"] == "value_error" and not path:
        return f"{lead}{ctx['error']}"
    if error["type"] == "missing":
        return f"{where} is required; it must be {allowed}"
    if allowed:
        return f"{where}{' keys' if key else ''} must be {allowed}, got {error['input']!r}"
    return f"{where or prefix}: {error['msg']} (got {error['input']!r})"


def _validate(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any], prefix: str) -> None:
    """Validate ``args``/``kwargs`` into ``instance`` (what a pydantic dataclass ``__init__``
    does), with errors as one-line ConfigErrors whose field paths start with ``prefix``."""
    cls = type(instance)
    try:
        cls.__pydantic_validator__.validate_python(ArgsKwargs(args, kwargs), self_instance=instance)
    except ValidationError as exc:
        raise ConfigError(_message(exc, cls, prefix)) from None


_C = TypeVar("_C", bound=type)


def _one_line_errors(cls: _C) -> _C:
    """Make ``cls(...)`` raise a one-line ConfigError naming ``Class.field`` (pydantic's own
    ValidationError spans several lines and does not name the class with the field)."""
    init = cls.__init__

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        _validate(self, args, kwargs, cls.__name__)

    cls.__init__ = __init__  # type: ignore[misc]
    return cls


def _build(cls: type[_T], kwargs: dict[str, Any], prefix: str) -> _T:
    """``cls(**kwargs)`` with error paths under ``prefix`` instead of the class name."""
    instance = cls.__new__(cls)
    _validate(instance, (), kwargs, prefix)
    return instance


# -- sections -----------------------------------------------------------------------------------
