"""The house rules of ``src/uae``, checked on its source: public seams, the top of the layering, a light ``import uae``."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "src" / "uae"
NAMEDTUPLE_API = {"_replace", "_asdict", "_fields", "_make"}
"""Attributes that start with ``_`` but are public API (``typing.NamedTuple``)."""


def _modules() -> list[tuple[str, ast.Module]]:
    return [(str(path.relative_to(PACKAGE.parent)), ast.parse(path.read_text(encoding="utf-8")))
            for path in sorted(PACKAGE.rglob("*.py"))]


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _imported_uae_modules(tree: ast.Module) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("uae"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("uae"))
    return found


def test_the_source_tree_is_found() -> None:
    assert len(_modules()) > 40


def test_no_module_imports_a_private_name_of_another() -> None:
    offenders = [
        f"{path}:{node.lineno} from {node.module or '.' * node.level} import {alias.name}"
        for path, tree in _modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("uae"))
        for alias in node.names
        if _private(alias.name)
    ]
    assert offenders == [], "make these seams public:\n" + "\n".join(offenders)


def test_no_module_reaches_into_another_objects_private_attributes() -> None:
    offenders = [
        f"{path}:{node.lineno} {ast.unparse(node)}"
        for path, tree in _modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and _private(node.attr) and node.attr not in NAMEDTUPLE_API
        and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
    ]
    assert offenders == [], "use the object's public API:\n" + "\n".join(offenders)


@pytest.mark.parametrize("top", ["uae.cli", "uae.serving", "uae.pipeline"])
def test_the_top_of_the_house_is_imported_only_from_above(top: str) -> None:
    allowed = {"uae/__init__.py"} | ({"uae/cli.py"} if top != "uae.cli" else set())  # the facade and the command
    importers = sorted(path for path, tree in _modules()
                       if path not in allowed and not path.startswith(top.replace(".", "/"))
                       and any(m == top or m.startswith(top + ".") for m in _imported_uae_modules(tree)))
    assert importers == [], f"{top} is imported by modules below it: {importers}"


def test_import_uae_is_light_and_its_public_names_resolve() -> None:
    code = ("import sys, uae; assert 'torch' not in sys.modules, 'import uae pulled in torch'; "
            "assert uae.Retriever.__name__ == 'Retriever' and callable(uae.run_pipeline) and uae.DataError; "
            "missing = [n for n in uae.__all__ if getattr(uae, n, None) is None]; assert not missing, missing")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(PACKAGE.parent)})
    assert result.returncode == 0, result.stderr
