"""A source with nothing in its pipeline's layout says so, and where the layout is instead.

Every pipeline reads its input from a source (a folder or a store prefix) in a layout of its
own: traffic ``{start}_{end}/{level}/{tile_index}/{name}``, sensors ``*.csv[.gz]``, tracks
files named by format. When a listing finds no file in the layout, the pipeline hands the
source's keys to :func:`check_layout`: an empty source is a quiet success (a scheduled run
over an empty prefix is normal), and so is a drained one (its files consumed and archived,
a README left beside them); but a source that holds files, none of them in the layout,
raises :class:`SourceLayoutError` naming the layout, a few of the files, and the folders one
or two levels down where the layout does match: the usual mistake is a source root given
one or two folders too high (``DIR`` for ``DIR/data/<start>_<end>/...``).

Example
-------
>>> layout = Layout("{day}/{name}.csv", lambda k: k.count("/") == 1 and k.endswith(".csv"))
>>> check_layout("/in", ["data/05/a.csv", "data/06/b.csv"], layout)
Traceback (most recent call last):
...
renderer.sources.SourceLayoutError: /in holds 2 files, none in the layout {day}/{name}.csv \
(e.g. data/05/a.csv, data/06/b.csv); the layout matches one or two levels down: /in/data \
(2 files) (point the source at /in/data)
"""

from __future__ import annotations

import itertools
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from renderer.errors import RendererError
from renderer.storage import Store

__all__ = ["LIMIT", "Layout", "SourceLayoutError", "check_layout", "source_keys"]

LIMIT = 10_000
"""Keys read at most to diagnose a source (ten S3 listing pages)."""


class SourceLayoutError(RendererError):
    """A source holds files but none in its pipeline's layout (a runtime failure, exit 1:
    the source, not the command line, is wrong)."""


def _never(key: str) -> bool:
    return False


@dataclass(frozen=True)
class Layout:
    """A pipeline's input layout: how to show it, and whether a key (relative to the source
    root, ``/`` separated) is in it; ``ignore``: keys that are not input (an archive)."""

    description: str
    matches: Callable[[str], bool]
    ignore: Callable[[str], bool] = _never


def source_keys(source: Store | Path) -> Iterator[str]:
    """The keys of a source relative to its root, hidden files and folders left out; a
    folder is walked in name order, a store listed without checksums."""
    if isinstance(source, Store):
        for info in source.list("", checksums=False):
            if not any(part.startswith(".") for part in info.key.split("/")):
                yield info.key
        return
    for folder, dirs, files in os.walk(source):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        rel = Path(folder).relative_to(source)
        for name in sorted(files):
            if not name.startswith("."):
                yield (rel / name).as_posix()


def _join(where: str, folder: str) -> str:
    return f"{where.rstrip('/')}/{folder}"


def check_layout(where: str, keys: Iterable[str], layout: Layout, *,
                 limit: int = LIMIT) -> None:
    """Return quietly when ``keys`` (a source with no file in ``layout``) is empty or holds
    keys the layout ignores (an archive of consumed files: the source is right, drained); else
    raise :class:`SourceLayoutError` (see the module docstring). Reads at most ``limit``
    keys."""
    files: list[str] = []
    below: Counter[str] = Counter()
    archived = False
    read = 0
    for key in itertools.islice(keys, limit):
        read += 1
        if layout.ignore(key):
            archived = True
            continue
        files.append(key)
        parts = key.split("/")
        for depth in (1, 2):
            if len(parts) > depth and layout.matches("/".join(parts[depth:])):
                below["/".join(parts[:depth])] += 1
    if not files or archived:  # empty, or drained: what it held was consumed and archived
        return
    count = f"{len(files):,}" + ("+" if read == limit else "")
    message = (f"{where} holds {count} files, none in the layout {layout.description} "
               f"(e.g. {', '.join(files[:3])})")
    if not below:
        raise SourceLayoutError(message, f"put the files in the layout {layout.description}, "
                                         "or point the source at the folder that holds it")
    found = below.most_common(3)
    places = ", ".join(f"{_join(where, folder)} ({n:,} files)" for folder, n in found)
    raise SourceLayoutError(f"{message}; the layout matches one or two levels down: {places}",
                            f"point the source at {_join(where, found[0][0])}")
