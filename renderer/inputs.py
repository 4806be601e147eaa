"""The input files of the ingests that keep a file ledger (sensors, tracks): found under
their roots, identified, and what a run did with each.

A source is a local file, a local folder (searched recursively; names with a part starting
with ``.`` skipped) or a store prefix (``s3://bucket/prefix``, ``file:///path``). Each file
gets its ledger identity: key (absolute path, or the object's store URL), size and MD5 checksum,
which for a store object is the listing's etag, so that a file already ingested is recognised
without being downloaded.

Symbolic links in a folder are not followed: a link to ``/etc/shadow`` dropped into a source
is never read. With ``follow_symlinks`` a link is followed when it leads to a file inside the
folder, and a link and its target are read once. A file named on the command line is read as
named.
"""

from __future__ import annotations

import gzip
import hashlib
import io
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, Generic, TypeVar, cast

from renderer.errors import InputError
from renderer.sources import Layout, check_layout, source_keys
from renderer.storage import Store, open_store

__all__ = ["FileResult", "IngestReport", "SourceFile", "discover", "md5_of"]

CHUNK = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class SourceFile:
    """One input file and its ledger identity."""

    key: str
    """Absolute path, or the object's store URL (``s3://bucket/prefix/name.csv``)."""
    size: int
    checksum: str
    """MD5 hex of the bytes as stored (for a store object, its etag)."""
    format: str = ""
    """What its pipeline reads it as (tracks: csv, ndjson, nmea, fixes)."""
    path: Path | None = None
    store: Store | None = None
    store_key: str | None = None

    def open(self) -> BinaryIO:
        """The file's bytes, as stored (maybe gzip)."""
        if self.path is not None:
            return open(self.path, "rb")
        assert self.store is not None and self.store_key is not None
        return io.BytesIO(self.store.get(self.store_key))

    def open_plain(self) -> BinaryIO:
        """The file's bytes, gunzipped when they start with the gzip magic (whatever its
        name)."""
        if self.path is not None:
            with open(self.path, "rb") as probe:
                zipped = probe.read(2) == GZIP_MAGIC
            # gzip.open owns the file it opens (a GzipFile given a fileobj leaves it open)
            return cast(BinaryIO, gzip.open(self.path, "rb")) if zipped \
                else open(self.path, "rb")
        stream = self.open()
        zipped = stream.read(2) == GZIP_MAGIC
        stream.seek(0)
        return cast(BinaryIO, gzip.GzipFile(fileobj=stream)) if zipped else stream


def md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _hidden(relative: str) -> bool:
    return any(part.startswith(".") for part in relative.split("/"))


def _inside(path: Path, root: Path, follow_symlinks: bool) -> bool:
    """Whether a file found under ``root`` may be read: not through any symbolic link, or
    (``follow_symlinks``) through links that stay inside ``root``."""
    real = path.resolve()
    if not follow_symlinks:
        return real == root / path.relative_to(root)
    return real.is_relative_to(root)


def discover(sources: Iterable[str], format_of: Callable[[str], str | None], layout: Layout,
             named: Callable[[Path], str], *,
             follow_symlinks: bool = False) -> list[SourceFile]:
    """The files of some sources, in a stable order (sorted by key within each source).

    ``format_of`` gives a file name's format, or None for a file that is not input (folders
    and store prefixes contribute only input files); ``named`` gives the format of a file
    named directly (or raises :class:`InputError`); ``layout`` is what a source holding files
    but no input is told (:func:`renderer.sources.check_layout`).
    """
    found: list[SourceFile] = []
    for source in sources:
        if "://" in source:
            store = open_store(source)
            base = store.url.rstrip("/") + "/"
            chosen = [(o, f) for o in store.list("")
                      if not _hidden(o.key) and (f := format_of(o.key.rsplit("/", 1)[-1]))]
            if not chosen:  # empty: nothing to do; files, none input: say so
                check_layout(store.url, source_keys(store), layout)
            found.extend(SourceFile(base + o.key, o.size, o.etag, f, store=store,
                                    store_key=o.key) for o, f in chosen)
            continue
        path = Path(source).expanduser()
        if path.is_dir():
            root = path.resolve()
            files = [(p, f) for p in sorted(root.rglob("*"))
                     if (f := format_of(p.name)) and p.is_file()
                     and not _hidden(p.relative_to(root).as_posix())
                     and _inside(p, root, follow_symlinks)]
            if not files:
                check_layout(str(root), source_keys(root), layout)
            local = {f.key: f for f in (_local(p, fmt) for p, fmt in files)}  # a link and
            found.extend(local[k] for k in sorted(local))                     # its target: once
        elif path.is_file():
            found.append(_local(path, named(path)))
        else:
            raise InputError(f"{source} does not exist", "check the path")
    return found


def _local(path: Path, fmt: str) -> SourceFile:
    path = path.resolve()
    return SourceFile(str(path), path.stat().st_size, md5_of(path), fmt, path=path)


@dataclass(frozen=True)
class FileResult:
    """What happened to one file."""

    COUNTS: ClassVar[tuple[str, ...]] = ("rows_read", "rows_accepted", "rows_rejected")

    key: str
    status: str
    """consumed, rejected (whole file), skipped (already in the ledger) or raced (another
    process recorded the same version first)."""
    rows_read: int = 0
    rows_accepted: int = 0
    rows_rejected: int = 0
    reason: str | None = None
    days: tuple[date, ...] = ()
    """The days the file changed."""


R = TypeVar("R", bound=FileResult)


@dataclass
class IngestReport(Generic[R]):
    """The files of one ingest run: their outcomes, row counts summed, and the days they
    changed. ``counts`` are the row counts its results carry (``FileResult.COUNTS`` of the
    pipeline's result type)."""

    counts: tuple[str, ...] = FileResult.COUNTS
    files: list[R] = field(default_factory=list)

    @property
    def days(self) -> list[date]:
        return sorted({d for f in self.files for d in f.days})

    def count(self, status: str) -> int:
        return sum(f.status == status for f in self.files)

    @property
    def rows(self) -> dict[str, int]:
        return {k: sum(getattr(f, k) for f in self.files) for k in self.counts}

    def as_dict(self) -> dict[str, Any]:
        return {"files": [asdict(f) for f in self.files], "rows": self.rows,
                "days": self.days}
