"""The declared dependencies are what the package imports: every third-party module that
code under renderer/ imports is a runtime dependency in pyproject.toml, every runtime
dependency is imported somewhere, and `renderer doctor` checks exactly those."""

from __future__ import annotations

import ast
import re
import sys
import tomllib

from renderer import doctor
from tests.test_imports import PACKAGE, ROOT, modules

# Distribution name -> the top-level module it provides, where they differ.
MODULE_OF = {"psycopg-pool": "psycopg_pool", "protobuf": "google",
             "prometheus-client": "prometheus_client"}
# Imported directly but part of a declared library's own API, which pins them: botocore's
# exceptions are what boto3 raises, starlette is FastAPI's base.
PROVIDED_BY = {"botocore": "boto3", "starlette": "fastapi"}


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[\[<>=~!; ]", d, maxsplit=1)[0].lower()
             for d in project["dependencies"]}
    return {MODULE_OF.get(n, n.replace("-", "_")) for n in names}


def _imported() -> set[str]:
    found: set[str] = set()
    for path in modules(ROOT / PACKAGE).values():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return {m for m in found
            if m not in sys.stdlib_module_names and m not in {PACKAGE, "__future__"}}


def test_runtime_imports_are_declared() -> None:
    missing = _imported() - _declared() - set(PROVIDED_BY)
    assert set(PROVIDED_BY.values()) <= _declared()
    assert not missing, f"imported by renderer/ but not in [project] dependencies: {missing}"


def test_declared_dependencies_are_imported() -> None:
    unused = _declared() - _imported()
    assert not unused, f"declared but never imported by renderer/ (test extra?): {unused}"


def test_doctor_checks_the_declared_dependencies() -> None:
    checked = {m.split(".")[0] for m in doctor.REQUIRED}
    assert checked == _declared()


def test_test_only_libraries_are_in_the_test_extra() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    test_extra = " ".join(project["optional-dependencies"]["test"])
    # mapnik: only the UTFGrid tests compare against it (shapely became a runtime
    # dependency with the map tiles' generated sample)
    assert "mapnik" in test_extra and "mapnik" not in _declared()
