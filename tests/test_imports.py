"""Import hygiene of the package, read from the source (nothing is imported):

- no import cycle among ``renderer`` modules. Every import counts, a function-level one too
  (it only moves the cycle to run time); imports under ``if TYPE_CHECKING:`` do not (they
  never run). Importing ``a.b`` is an edge to ``a.b`` only: that Python runs ``a/__init__``
  first is not a dependency the importing module chose;
- only the connector (``renderer/db.py``) imports the driver, ``psycopg`` or ``psycopg_pool``,
  wherever and however.

Generated code (``renderer/formats/*_pb2.py``, ``renderer/formats/histogram/``) is left out.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "renderer"
DRIVER = {"psycopg", "psycopg_pool"}
CONNECTOR = "renderer.db"


def _generated(path: Path, package_root: Path) -> bool:
    rel = path.relative_to(package_root).as_posix()
    return rel.startswith("formats/histogram/") or (
        rel.startswith("formats/") and path.name.endswith("_pb2.py"))


def modules(package_root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every non-generated module under ``package_root``."""
    found = {}
    for path in sorted(package_root.rglob("*.py")):
        if _generated(path, package_root):
            continue
        parts = [package_root.name, *path.relative_to(package_root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _type_checking(test: ast.expr) -> bool:
    return ((isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
            or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def _imports(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement under ``node``, at any depth, except under TYPE_CHECKING."""
    for child in ast.iter_child_nodes(node):
        yield from _visit(child)


def _visit(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node
    elif isinstance(node, ast.If) and _type_checking(node.test):
        for statement in node.orelse:  # the else branch does run
            yield from _visit(statement)
    else:
        yield from _imports(node)


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of ``known`` that a module imports: ``import a.b`` and ``from a import b``
    give ``a.b`` when that is a module; ``from a import name`` gives ``a``."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in _imports(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
            continue
        base = node.module or ""
        if node.level:  # relative: counted from the package holding this module
            anchor = name.split(".")
            anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
            base = ".".join([*anchor, base] if base else anchor)
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            found.add(sub if sub in known else base)
    return (found & known) - {name}


def import_graph(package_root: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports."""
    known = modules(package_root)
    return {name: imported_modules(name, path, set(known)) for name, path in known.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def driver_importers(package_root: Path) -> list[str]:
    """Modules that import psycopg or psycopg_pool (any submodule, TYPE_CHECKING included)."""
    found = []
    for name, path in modules(package_root).items():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom)
                     and not node.level else [])
            if any(n.split(".")[0] in DRIVER for n in names):
                found.append(name)
                break
    return sorted(found)


# -- the checkers, on a package made for them ----------------------------------------------

def _package(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / "pkg" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pkg"


def test_checkers_find_what_they_look_for(tmp_path: Path) -> None:
    pkg = _package(tmp_path, {
        "__init__.py": "",
        "a.py": "from pkg import b\n",
        "b.py": "def f():\n    from pkg.c import thing\n",  # function level: counts
        "c.py": "import pkg.a\nimport psycopg\n",
        "d.py": ("from typing import TYPE_CHECKING\n"
                 "if TYPE_CHECKING:\n    from pkg import e\n    import psycopg_pool\n"
                 "else:\n    import pkg.sub.x\n"),
        "e.py": "from . import d\n",  # relative
        "sub/__init__.py": "from pkg.sub import x\n",  # a package importing its submodule
        "sub/x.py": "from ..a import name\n",
        "formats/__init__.py": "",
        "formats/thing_pb2.py": "from pkg import formats\nimport psycopg\n",  # generated
    })
    assert "pkg.formats.thing_pb2" not in modules(pkg)
    graph = import_graph(pkg)
    assert graph["pkg.sub"] == {"pkg.sub.x"} and graph["pkg.sub.x"] == {"pkg.a"}
    assert graph["pkg.e"] == {"pkg.d"} and graph["pkg.d"] == {"pkg.sub.x"}
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.c"]]
    assert driver_importers(pkg) == ["pkg.c", "pkg.d"]


# -- the package ---------------------------------------------------------------------------

def test_no_import_cycles() -> None:
    found = cycles(import_graph(ROOT / PACKAGE))
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_only_the_connector_imports_the_driver() -> None:
    others = [m for m in driver_importers(ROOT / PACKAGE) if m != CONNECTOR]
    assert not others, ("import psycopg only in renderer/db.py (use db.Connection, db.Jsonb, "
                        "db.sql, db.dict_row, db.PoolTimeout); also imported by: "
                        + ", ".join(others))


def test_the_connector_is_where_the_driver_is() -> None:
    assert CONNECTOR in driver_importers(ROOT / PACKAGE)
    assert CONNECTOR in modules(ROOT / PACKAGE)
