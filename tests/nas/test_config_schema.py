"""nas.config.json_schema(): the study TOML file as JSON Schema (draft 2020-12), for editors."""

import sys
from pathlib import Path

import jsonschema
import pytest

from nas.config import ConfigError, StudyConfig, json_schema

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = [
    *sorted((ROOT / "studies").glob("*.toml")),
    ROOT / "tests" / "fixtures" / "study_v0_1_0" / "study.toml",
]


@pytest.fixture(scope="module")
def validator():
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _sections(schema: dict) -> dict[str, dict]:
    """Each section's schema (``$defs`` entry), by TOML table name."""
    return {
        name: schema["$defs"][prop["$ref"].rsplit("/", 1)[1]]
        for name, prop in schema["properties"].items()
    }


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_and_their_stored_form_validate(validator, path):
    validator.validate(tomllib.loads(path.read_text()))
    validator.validate(StudyConfig.load(path).to_dict())


@pytest.mark.parametrize(
    ("section", "values"),
    [
        ("colour", {}),
        ("study", {"n_trails": 3}),
        ("data", {"batch_size": "64"}),
        ("study", {"seed": True}),
        ("objectives", {"minimize": "flops"}),
        ("objectives", {"constraints": {"energy": 1}}),
        ("training", {"epochs": 0}),
        ("training", {"optimizer": "lion"}),
    ],
)
def test_typos_and_wrong_types_do_not_validate(validator, tiny_config, section, values):
    data = tiny_config()
    validator.validate(data)
    data.setdefault(section, {}).update(values)
    assert not validator.is_valid(data)


def test_every_section_is_closed_and_documented():
    schema = json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["additionalProperties"] is False and schema["required"] == ["training"]
    sections = _sections(schema)
    assert set(sections) == {
        "study",
        "data",
        "backbone",
        "space",
        "training",
        "pruning",
        "objectives",
        "evaluation",
        "search",
        "tracking",
    }
    for name, section in sections.items():
        assert section["additionalProperties"] is False, name
        for field, prop in section["properties"].items():
            assert prop.get("description") and prop.get("allowed"), f"{name}.{field}"
    assert sections["training"]["required"] == ["epochs"]
    assert sections["study"]["properties"]["sampler"]["default"] == "additive"
    assert sections["space"]["properties"]["blocks"]["default"] == [
        "none",
        "se",
        "eca",
        "cbam",
        "simam",
    ]


def _numeric_fields() -> list[tuple[str, str]]:
    """(section, field) of every setting the schema types as an integer or a number."""
    found = []
    for name, section in _sections(json_schema()).items():
        for field, prop in section["properties"].items():
            types = {prop.get("type"), *(option.get("type") for option in prop.get("anyOf", []))}
            if types & {"integer", "number"}:
                found.append((name, field))
    return found


@pytest.mark.parametrize(("section", "field"), _numeric_fields())
@pytest.mark.parametrize("value", [True, "1"], ids=["bool", "str"])
def test_numbers_refuse_booleans_and_strings(tiny_config, section, field, value):
    data = tiny_config()
    data.setdefault(section, {})[field] = value
    with pytest.raises(ConfigError, match=rf"^{section}\.{field} must be .*, got {value!r}$"):
        StudyConfig.from_dict(data)
