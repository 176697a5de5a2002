"""The package table of docs/architecture.md, enforced: which package may import which.

Every import in every module (at any depth, including those inside functions) is read with `ast`
and checked against the table; `core` may use the standard library and PyYAML only. Names that a
third-party library keeps private (a leading underscore) are neither imported nor read from it.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest

ROOT: Final = Path(__file__).resolve().parents[1]
OURS: Final = ("core", "firmware_adapters", "rules", "edge_agent", "cloud_ingest", "simulators")
MAY_IMPORT: Final[dict[str, frozenset[str]]] = {
    "core": frozenset(),
    "firmware_adapters": frozenset({"core"}),
    "rules": frozenset({"core"}),
    "edge_agent": frozenset({"core", "firmware_adapters", "rules"}),
    "cloud_ingest": frozenset({"core", "rules"}),
    "simulators": frozenset({"core", "firmware_adapters"}),
}
CORE_THIRD_PARTY: Final = frozenset({"yaml", "orjson"})
"""PyYAML for the one YAML loader; orjson for the envelope reader (both sides of the uplink have it)."""


def _modules(package: str) -> Iterator[Path]:
    yield from sorted((ROOT / package).rglob("*.py"))


def _imports(path: Path) -> Iterator[tuple[int, str, tuple[str, ...]]]:
    """`(line, module, names)` of every absolute import in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, ()
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module, tuple(alias.name for alias in node.names)


def _third_party(module: str) -> bool:
    top = module.split(".", maxsplit=1)[0]
    return top not in OURS and top not in sys.stdlib_module_names and top != "__future__"


def _forbidden_arrows(package: str) -> list[str]:
    allowed = MAY_IMPORT[package] | {package}
    found: list[str] = []
    for path in _modules(package):
        for line, module, _ in _imports(path):
            top = module.split(".")[0]
            where = f"{path.relative_to(ROOT)}:{line}"
            if top in OURS and top not in allowed:
                found.append(f"{where}: {package} imports {module}")
            elif package == "core" and _third_party(module) and top not in CORE_THIRD_PARTY:
                found.append(f"{where}: core imports third-party {module}")
    return found


@pytest.mark.parametrize("package", OURS)
def test_package_imports_only_what_the_table_allows(package: str) -> None:
    assert _forbidden_arrows(package) == []


def _private_uses(path: Path) -> Iterator[str]:
    """Private names imported from, or read as attributes of, a third-party module."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    bound: set[str] = set()
    for line, module, names in _imports(path):
        if not _third_party(module):
            continue
        bound.add(module.split(".")[0])
        for name in names:
            if name.startswith("_") and not name.startswith("__"):
                yield f"{_where(path)}:{line}: imports {module}.{name}"
            bound.add(name)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            bound.update(alias.asname or alias.name for alias in node.names if alias.asname)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and isinstance(node.value, ast.Name)
            and node.value.id in bound
        ):
            yield f"{_where(path)}:{node.lineno}: reads {node.value.id}.{node.attr}"
    yield from _private_overrides(path, tree)


def _where(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name


def _third_party_names(tree: ast.Module) -> dict[str, str]:
    """Each name bound by a third-party import, as `module` or `module:attribute`."""
    origin: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _third_party(alias.name):
                    if alias.asname:
                        origin[alias.asname] = alias.name
                    else:
                        top = alias.name.split(".", maxsplit=1)[0]
                        origin[top] = top
        elif (
            isinstance(node, ast.ImportFrom)
            and node.level == 0
            and node.module
            and _third_party(node.module)
        ):
            for alias in node.names:
                origin[alias.asname or alias.name] = f"{node.module}:{alias.name}"
    return origin


def _third_party_bases(tree: ast.Module, cls: ast.ClassDef) -> Iterator[type]:
    """The classes of third-party libraries that `cls` derives from."""
    origin = _third_party_names(tree)
    for base in cls.bases:
        head, _, rest = ast.unparse(base).partition(".")
        if head not in origin:
            continue
        module, _, name = origin[head].partition(":")
        target: object = importlib.import_module(module)
        for part in ([name] if name else []) + (rest.split(".") if rest else []):
            target = getattr(target, part)
        if isinstance(target, type):
            yield target


def _private_overrides(path: Path, tree: ast.Module) -> Iterator[str]:
    """Private names of a third-party base class that a subclass of ours defines, reads or writes."""
    for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
        bases = list(_third_party_bases(tree, cls))
        if not bases:
            continue
        base_text = "\n".join(inspect.getsource(b) for b in bases)
        for node in ast.walk(cls):
            name = (
                node.name
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                else node.attr
                if isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "self"
                else ""
            )
            private = name.startswith("_") and not name.startswith("__")
            if private and (f"def {name}(" in base_text or f"self.{name}" in base_text):
                line = getattr(node, "lineno", cls.lineno)
                yield f"{_where(path)}:{line}: {cls.name} uses the base's private {name}"


@pytest.mark.parametrize("package", OURS)
def test_no_private_name_of_a_third_party_library_is_used(package: str) -> None:
    assert [use for path in _modules(package) for use in _private_uses(path)] == []


def test_the_checks_see_forbidden_imports_and_private_names(tmp_path: Path) -> None:
    module = tmp_path / "bad.py"
    module.write_text(
        "import os\n"
        "from yaml import _x\n"
        "import pydantic\n"
        "from pydantic import BaseModel\n"
        "class M(BaseModel):\n"
        "    def _iter(self): ...\n"
        "    def _mine(self):\n"
        "        self._own = 1\n"
        "        return self._setattr_handler\n"
        "pydantic._internal\n"
    )
    assert [m for _, m, _ in _imports(module)] == ["os", "yaml", "pydantic", "pydantic"]
    assert sorted(f.split(": ", 1)[1] for f in _private_uses(module)) == [
        "M uses the base's private _iter",
        "M uses the base's private _setattr_handler",
        "imports yaml._x",
        "reads pydantic._internal",
    ]
