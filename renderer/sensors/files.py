"""Finding loop-detector files and reading them as normalised text.

A source is a local file, a local folder (its ``*.csv`` and ``*.csv.gz`` files, recursively) or
a store URL (``s3://bucket/prefix``, ``file:///path``), found and identified by
:mod:`renderer.inputs`.

Text is read in large chunks, gunzipped when the file starts with the gzip magic (whatever its
name), decoded as UTF-8 (a BOM is dropped, undecodable bytes become U+FFFD, so the row fails
validation with a reason instead of the file failing), with CR LF and lone CR turned into LF and
NUL into U+FFFD, because PostgreSQL's COPY accepts neither mixed line ends nor NUL.
"""

from __future__ import annotations

import codecs
import gzip
import zlib
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from renderer import inputs
from renderer.errors import InputError
from renderer.inputs import CHUNK, SourceFile
from renderer.sources import Layout

__all__ = ["FileUnreadable", "SourceFile", "discover", "text_chunks"]

SUFFIXES = (".csv", ".csv.gz")


class FileUnreadable(InputError):
    """The file cannot be read as text (bad gzip stream, I/O error): rejected whole.

    Ingest records it as the file's reason; an InputError, so that a caller that lets it
    through shows one line."""


def _csv(name: str) -> str | None:
    return "csv" if name.lower().endswith(SUFFIXES) else None


LAYOUT = Layout("*.csv or *.csv.gz (any folder)",
                lambda key: not key.rsplit("/", 1)[-1].startswith(".") and bool(_csv(key)))


def discover(sources: Iterable[str], *, follow_symlinks: bool = False) -> list[SourceFile]:
    """The files of some sources, in a stable order (sorted by key within each source): a
    file named directly is taken whatever its suffix; folders and store prefixes contribute
    their ``.csv`` and ``.csv.gz`` files. Links as :mod:`renderer.inputs` says."""
    return inputs.discover(sources, _csv, LAYOUT, lambda _: "csv",
                           follow_symlinks=follow_symlinks)


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
