"""Every import inside the packages resolves, the ones inside functions included: a module moved
in a refactor must fail here, not in the one command path that imports it lazily."""

import ast
import importlib
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("attn_blocks", "search_spaces", "nas")
# Extras imported where they are used, and tomli, Python 3.10's tomllib.
OPTIONAL = {"onnxruntime", "timm", "boto3", "optuna_dashboard", "tomli", "mlflow", "wandb"}


def _imports(path: Path, root: Path = ROOT) -> list[tuple[str, str | None]]:
    """(module, name) for each ``from X import name`` and (module, None) for ``import X``."""
    package = ".".join(path.relative_to(root).parent.parts)
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            module = importlib.util.resolve_name("." * node.level + (node.module or ""), package)
            found += [(module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(alias.name, None) for alias in node.names]
    return found


def _check(path: Path, root: Path = ROOT) -> None:
    for module, name in _imports(path, root):
        if module.split(".")[0] in OPTIONAL:
            continue
        imported = importlib.import_module(module)
        if name is not None and name != "*":
            assert hasattr(imported, name) or importlib.util.find_spec(f"{module}.{name}"), (
                f"{path.relative_to(root)}: `from {module} import {name}` does not resolve"
            )


SOURCES = sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_import_resolves(path):
    _check(path)


@pytest.mark.parametrize(
    "body",
    [
        "def run():\n    from ..no_such_module import thing\n",  # a module moved away
        "def run():\n    from .. import no_such_name\n",  # a name that is not there
    ],
)
def test_a_broken_lazy_import_is_reported(tmp_path, body):
    broken = tmp_path / "nas" / "cli" / "broken.py"
    broken.parent.mkdir(parents=True)
    broken.write_text(body)
    with pytest.raises((ModuleNotFoundError, AssertionError)):
        _check(broken, root=tmp_path)
