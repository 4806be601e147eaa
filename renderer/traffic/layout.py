"""Where reporter files sit in a source, and what a histogram work item is called.

A source root (a folder, ``file:///...`` or ``s3://bucket/prefix``) holds reporter files at
``{start}_{end}/{level}/{tile_index}/{name}``: ``start`` a multiple of 3600 (epoch seconds),
``end = start + 3599``, ``tile_index`` in decimal. One (tile, hour) :class:`Prefix` is one
``histogram`` work item, keyed ``{level}/{tile_index}/{hour}`` and grouped
``{level0_index}/{iso_week}`` for the weekly speed tile. Consumed files may be moved under
``_archive/`` in the same root, which listings skip.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from renderer import tiles
from renderer.errors import InputError
from renderer.storage import FileStore, ObjectInfo, S3Store, Store, open_store
from renderer.traffic.weeks import week_of_hour

__all__ = [
    "AFTER_CHOICES",
    "ARCHIVE",
    "Prefix",
    "fingerprint",
    "list_source",
    "parse_key",
    "relative_key",
    "source_store",
]

ARCHIVE = "_archive/"
AFTER_CHOICES = ("archive", "delete", "keep")
_RANGE = re.compile(r"([0-9]{1,12})_([0-9]{1,12})")


@dataclass(frozen=True, order=True)
class Prefix:
    """One (tile, hour) folder of a source: the unit of a ``histogram`` item."""

    level: int
    index: int
    hour: int

    @property
    def tile(self) -> tiles.Tile:
        return tiles.Tile(self.level, self.index)

    @property
    def folder(self) -> str:
        """``1477947600_1477951199/0/3105/``: the key prefix of its files in the source."""
        start = self.hour * 3600
        return f"{start}_{start + 3599}/{self.level}/{self.index}/"

    @property
    def key(self) -> str:
        """The work item key ``{level}/{tile_index}/{hour}``."""
        return f"{self.level}/{self.index}/{self.hour}"

    @functools.cached_property  # in the instance's __dict__: fields, order and hash are unchanged
    def level0(self) -> int:
        """Index of the level-0 tile that contains this tile."""
        return tiles.ancestor(self.tile).index

    @functools.cached_property
    def week(self) -> str:
        return week_of_hour(self.hour)

    @property
    def group(self) -> str:
        """The fan-in group ``{level0_index}/{iso_week}``."""
        return f"{self.level0}/{self.week}"

    @classmethod
    @functools.lru_cache(maxsize=4096)  # immutable; the stages of an item parse it 3 times
    def from_item_key(cls, key: str) -> Prefix:
        """The prefix of a work item key; ValueError when it is not one.

        Examples
        --------
        >>> Prefix.from_item_key("1/49862/410562").group
        '3105/2016-W44'
        """
        parts = key.split("/")
        if len(parts) != 3 or not all(p.isdigit() and p.isascii() for p in parts):
            raise ValueError(f"a histogram item key is level/tile_index/hour, not {key!r}")
        level, index, hour = (int(p) for p in parts)
        tiles.bounds(tiles.Tile(level, index))  # validates the tile
        return cls(level, index, hour)

    @classmethod
    def parse(cls, key: str) -> Prefix:
        """:meth:`from_item_key`, under the name every stage key type has."""
        return cls.from_item_key(key)


def parse_key(key: str) -> Prefix | None:
    """The (tile, hour) prefix of a source object key, or None when the key is not in the
    layout (or is archived).

    Examples
    --------
    >>> parse_key("1477872000_1477875599/0/3105/reporter-0.csv.gz")
    Prefix(level=0, index=3105, hour=410520)
    >>> parse_key("1477872000_1477875600/0/3105/x.csv") is None  # end is not start + 3599
    True
    """
    parts = key.split("/")
    if len(parts) < 4 or not parts[-1] or key.startswith(ARCHIVE):
        return None
    return _folder_prefix(parts[0], parts[1], parts[2])


@functools.lru_cache(maxsize=4096)  # a folder holds several files: each parsed once
def _folder_prefix(hours: str, level: str, index: str) -> Prefix | None:
    """:func:`parse_key` of the first three parts of a key."""
    match = _RANGE.fullmatch(hours)
    if match is None:
        return None
    start, end = int(match[1]), int(match[2])
    if start % 3600 or end != start + 3599:
        return None
    if not (level.isdigit() and index.isdigit() and level.isascii() and index.isascii()):
        return None
    try:
        t = tiles.parse_tile(f"{level}/{index}")
    except ValueError:
        return None
    return Prefix(t.level, t.index, start // 3600)


def fingerprint(files: Iterable[tuple[str, int, str]]) -> str:
    """A short hash of a set of (key, size, checksum): the item's input fingerprint.

    Examples
    --------
    >>> fingerprint([("a", 1, "x")]) == fingerprint([("a", 1, "x")])
    True
    """
    digest = hashlib.sha256()
    for key, size, checksum in sorted(files):
        digest.update(f"{key}\0{size}\0{checksum}\n".encode())
    return digest.hexdigest()[:32]


@functools.lru_cache(maxsize=32)
def _cached_store(url: str, pid: int, follow_symlinks: bool) -> Store:
    return open_store(url, follow_symlinks=follow_symlinks)


def source_store(source_url: str, follow_symlinks: bool = False) -> Store:
    """The store of a source root, one per process (boto3 clients do not survive a fork).

    A plain path is made absolute, so the URL recorded in work items means the same folder to
    every worker. A missing local folder is an :class:`InputError`.
    """
    url = source_url
    if "://" not in url:
        url = Path(url).expanduser().absolute().as_uri()
    store = _cached_store(url, os.getpid(), follow_symlinks)
    if isinstance(store, FileStore) and not store.root.is_dir():
        raise InputError(f"source folder {store.root} does not exist",
                         "check --source (a folder or s3://bucket/prefix)")
    return store


def _tops(store: Store) -> list[tuple[str, bool]]:
    """Prefixes that list a source outside ``_archive/`` in key order, a piece at a time,
    each with whether it names one object only: only keys starting with a digit can be in
    the layout, so ten listings by first digit skip the archive without reading it; a
    folder store lists each folder of its root alone (an hour's), so the first hours come
    before the whole tree is walked."""
    if not isinstance(store, FileStore):
        return [(digit, False) for digit in "0123456789"]
    try:
        with os.scandir(store.root) as entries:
            tops = sorted((e.name, e.is_dir(follow_symlinks=False)) for e in entries
                          if e.name[:1].isdigit())
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [(name + "/", False) if folder else (name, True) for name, folder in tops]


def list_source(store: Store) -> Iterator[tuple[Prefix | None, ObjectInfo]]:
    """Every object of a source outside ``_archive/``, with its prefix (None: not in the
    layout), in key order. Listed without reading the files: a folder store's file without
    a sidecar has an empty etag (the submit checksums only the files whose key the ledger
    knows)."""
    for top, one in _tops(store):
        for info in store.list(top, checksums=False):
            if not one or info.key == top:
                yield parse_key(info.key), info


def relative_key(store: Store, key: str) -> str:
    """An object key as a notification names it (bucket key or absolute path), relative to
    the source root; the key itself when it is already relative."""
    key = key.lstrip("/") if isinstance(store, S3Store) else key
    if isinstance(store, S3Store) and store.prefix and key.startswith(store.prefix):
        return key[len(store.prefix):]
    if isinstance(store, FileStore) and key.startswith("/"):
        try:
            return Path(key).relative_to(store.root).as_posix()
        except ValueError:
            return key
    return key
