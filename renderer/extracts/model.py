"""What a profile contributes to the extracts: :class:`Extract`\\ s made of store objects.

A profile's ``extracts`` hook (:class:`renderer.profile.Profile`) is
``extracts(store, settings) -> list[Extract]``: it lists what it has (cheaply: a listing, no
reads) and names each extract. An extract is either an archive of its members as they are
(``combine`` None: a zip), or one file made from them (``combine(bodies) -> bytes``, e.g. a
month of daily Parquet files as one). Its fingerprint, from the members' keys, sizes, etags
and times, says whether it changed since the last one.

Example
-------
>>> member = Member("0/002/140.ref.gz", "0/002/140.ref.gz", 1200, "ab12", None, "reference")
>>> len(Extract("traffic/europe", (member,)).fingerprint())
64
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from renderer.errors import InputError
from renderer.storage import Store

__all__ = ["Extract", "Member"]

_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*(/[a-z0-9][a-z0-9_.-]*)*")


@dataclass(frozen=True)
class Member:
    """One object of an extract: its name in the archive, its key in the store, what the
    listing said of it, its group (``speed``, ``reference``...) and the time it covers
    (epoch seconds; ``None``: none, or ``range_from_metadata`` to read ``rangeStart`` and
    ``rangeEnd`` from the object's metadata when the archive is built)."""

    path: str
    key: str
    size: int
    etag: str
    modified: float | None
    group: str
    range: tuple[int, int] | None = None
    range_from_metadata: bool = False


@dataclass(frozen=True)
class Extract:
    """One downloadable extract: ``name`` (``traffic/europe``, ``sensors/2026-01``) places it
    under ``extracts/`` in the store."""

    name: str
    members: tuple[Member, ...]
    info: Mapping[str, Any] = field(default_factory=dict)
    """Shown in the manifest and on the page (the region and its box, the weeks...)."""
    combine: Callable[[list[bytes]], bytes] | None = field(default=None, compare=False)
    """None: a zip of the members; else the one file made of their bodies."""
    suffix: str = ".zip"
    content_type: str = "application/zip"
    source: Store | None = field(default=None, compare=False)
    """Where the members are (None: the store the extract is written to)."""

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise InputError(f"invalid extract name {self.name!r}",
                             "use lowercase words separated by '/', e.g. traffic/europe")

    def fingerprint(self) -> str:
        """What the extract is made of, as a hash: equal means nothing changed."""
        parts = sorted((m.path, m.key, m.size, m.etag, m.modified) for m in self.members)
        text = json.dumps([self.suffix, parts, dict(self.info)], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()
