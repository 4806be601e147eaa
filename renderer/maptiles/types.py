"""Region types and the DAG their parent fields make (no file reader imported here: the
worker loads this pipeline's kinds, and GDAL's import costs seconds on a busy machine)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from renderer import db
from renderer.errors import InputError

__all__ = ["TYPE_NAME", "check_dag", "check_type_name", "type_graph"]

TYPE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,62}$")


def check_type_name(name: str) -> str:
    if not TYPE_NAME.match(name):
        raise InputError(f"region type {name!r} is not a plain name",
                         "use letters, digits and _ (starting with a letter), as Province")
    return name


def type_graph(conn: db.Connection) -> dict[str, list[str]]:
    """Each region type and its parent types."""
    return {r["type"]: list(r["parent_types"])
            for r in conn.execute(db.query("maptiles.type_graph"))}


def check_dag(graph: Mapping[str, Sequence[str]]) -> list[str]:
    """The types in an order where parents come first; InputError on a cycle."""
    order: list[str] = []
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(node: str, path: list[str]) -> None:
        if state.get(node) == 2:
            return
        if state.get(node) == 1:
            cycle = " > ".join([*path[path.index(node):], node])
            raise InputError(f"region types would form a cycle: {cycle}",
                             "a type's parent fields must name types above it")
        state[node] = 1
        for parent in graph.get(node, ()):
            visit(parent, [*path, node])
        state[node] = 2
        order.append(node)

    for node in sorted(graph):
        visit(node, [])
    return order


