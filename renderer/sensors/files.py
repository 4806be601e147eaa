"""Finding loop-detector files and reading them as normalised text.

A source is a local file, a local folder (its ``*.csv`` and ``*.csv.gz`` files, recursively) or
a store URL (``s3://bucket/prefix``, ``file:///path``). Each file gets a ledger identity: its
key (absolute path, or the store URL of the object), size and MD5 checksum, which for store
objects is the listing's etag, so an S3 file already ingested is recognised without being
downloaded.

Text is read in large chunks, gunzipped when the file starts with the gzip magic (whatever its
name), decoded as UTF-8 (a BOM is dropped, undecodable bytes become U+FFFD, so the row fails
validation with a reason instead of the file failing), with CR LF and lone CR turned into LF and
NUL into U+FFFD, because PostgreSQL's COPY accepts neither mixed line ends nor NUL.
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import io
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from renderer.errors import InputError
from renderer.sources import Layout, check_layout, source_keys
from renderer.storage import Store, open_store

__all__ = ["FileUnreadable", "SourceFile", "discover", "text_chunks"]

SUFFIXES = (".csv", ".csv.gz")
CHUNK = 1 << 20


class FileUnreadable(InputError):
    """The file cannot be read as text (bad gzip stream, I/O error): rejected whole.

    Ingest records it as the file's reason; an InputError, so that a caller that lets it
    through shows one line."""


@dataclass(frozen=True)
class SourceFile:
    """One input file and its ledger identity."""

    key: str
    """Absolute path, or the object's store URL (``s3://bucket/prefix/name.csv``)."""
    size: int
    checksum: str
    """MD5 hex of the content (a store's etag)."""
    path: Path | None = None
    store: Store | None = None
    store_key: str | None = None

    def open(self) -> BinaryIO:
        """The file's bytes, as stored (maybe gzip)."""
        if self.path is not None:
            return open(self.path, "rb")
        assert self.store is not None and self.store_key is not None
        return io.BytesIO(self.store.get(self.store_key))


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _local(path: Path) -> SourceFile:
    path = path.resolve()
    return SourceFile(str(path), path.stat().st_size, _md5(path), path=path)


def _wanted(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return not base.startswith(".") and base.lower().endswith(SUFFIXES)


LAYOUT = Layout("*.csv or *.csv.gz (any folder)", _wanted)


def _inside(path: Path, root: Path, follow_symlinks: bool) -> bool:
    """Whether a file found under ``root`` may be read: not through any symbolic link, or
    (``follow_symlinks``) through links that stay inside ``root``."""
    real = path.resolve()
    if not follow_symlinks:
        return real == root / path.relative_to(root)
    return real.is_relative_to(root)


def discover(sources: Iterable[str], *, follow_symlinks: bool = False) -> list[SourceFile]:
    """The files of some sources, in a stable order (sorted by key within each source).

    A file named directly is taken whatever its suffix; folders and store prefixes contribute
    their ``.csv`` and ``.csv.gz`` files. Symbolic links in a folder are skipped, or with
    ``follow_symlinks`` followed when they lead to a file inside the folder: a link to
    ``/etc/shadow`` dropped into a source is never read.
    """
    found: list[SourceFile] = []
    for source in sources:
        if "://" in source:
            store = open_store(source)
            objects = [o for o in store.list("") if _wanted(o.key)]
            if not objects:  # empty: nothing to do; files, none .csv: say so
                check_layout(store.url, source_keys(store), LAYOUT)
            base = store.url.rstrip("/") + "/"
            found.extend(SourceFile(base + o.key, o.size, o.etag, store=store, store_key=o.key)
                         for o in objects)
            continue
        path = Path(source).expanduser()
        if path.is_dir():
            path = path.resolve()
            files = sorted(p for p in path.rglob("*") if p.is_file() and _wanted(p.name)
                           and not any(part.startswith(".") for part in p.relative_to(path).parts)
                           and _inside(p, path, follow_symlinks))
            if not files:
                check_layout(str(path), source_keys(path), LAYOUT)
            local = {f.key: f for f in map(_local, files)}  # a link and its target: once
            found.extend(local[k] for k in sorted(local))
        elif path.is_file():
            found.append(_local(path))
        else:
            raise InputError(f"{source} does not exist", "check the path")
    return found


def _raw_chunks(stream: BinaryIO) -> Iterator[bytes]:
    head = stream.read(2)
    stream.seek(0)
    body: gzip.GzipFile | BinaryIO = (gzip.GzipFile(fileobj=stream) if head == b"\x1f\x8b"
                                      else stream)
    try:
        while block := body.read(CHUNK):
            yield block
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
        raise FileUnreadable(f"unreadable: {exc}") from exc


def text_chunks(stream: BinaryIO) -> Iterator[str]:
    """The file's text in chunks, with LF line ends only and no NUL characters."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
    carry = ""
    blocks = _raw_chunks(stream)
    while True:
        block = next(blocks, None)
        text = carry + decoder.decode(block or b"", final=block is None)
        carry = ""
        if block is not None and text.endswith("\r"):  # maybe the CR of a CR LF
            text, carry = text[:-1], "\r"
        if text:
            yield text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "\ufffd")
        if block is None:
            return
