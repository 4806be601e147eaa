"""The object store interface: keys, metadata, :class:`ObjectInfo` and :class:`Store`,
which both backends implement alike (see :mod:`renderer.storage`)."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from renderer.errors import InvalidKey, InvalidMetadata

DEFAULT_CONTENT_TYPE = "application/octet-stream"
"""Content type of objects put without one."""

_METADATA_KEY = re.compile(r"[a-z0-9][a-z0-9_-]*")
_METADATA_VALUE = re.compile(r"[\x20-\x7e]*")
_METADATA_LIMIT = 2048  # bytes of keys and values together: S3's limit for user metadata


@dataclass(frozen=True)
class ObjectInfo:
    """What a store knows about an object without reading it."""

    key: str
    size: int
    etag: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    content_type: str | None = None
    modified: float | None = None
    """Last modification, epoch seconds (None in what ``S3Store.put`` returns: S3 does not say)."""


def check_key(key: str) -> str:
    """Return ``key`` if it is a valid object key, else raise :class:`~renderer.errors.InvalidKey`.

    Examples
    --------
    >>> check_key("2026/47/0/002/140.spd.0.gz")
    '2026/47/0/002/140.spd.0.gz'
    """
    if not isinstance(key, str) or not key:
        raise InvalidKey(f"an object key must be a non-empty string, not {key!r}")
    if key.startswith("/") or "\\" in key or "\0" in key:
        raise InvalidKey(f"an object key is a relative path with / separators, not {key!r}")
    if any(part in ("", ".", "..") for part in key.split("/")):
        raise InvalidKey(f"an object key has no empty, '.' or '..' part: {key!r}")
    if len(key.encode("utf-8")) > 1024:
        raise InvalidKey(f"an object key is at most 1024 bytes: {key[:40]!r}...")
    return key


def check_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    """The metadata with lowercased keys, or :class:`~renderer.errors.InvalidMetadata` if S3
    could not carry it."""
    if not metadata:
        return {}
    result: dict[str, str] = {}
    for name, value in metadata.items():
        key = str(name).lower()
        if not _METADATA_KEY.fullmatch(key):
            raise InvalidMetadata(f"metadata key {name!r}: use letters, digits, '-' and '_'")
        if not isinstance(value, str) or not _METADATA_VALUE.fullmatch(value):
            raise InvalidMetadata(f"metadata value of {name!r} must be printable ASCII: {value!r}")
        if key in result:
            raise InvalidMetadata(f"metadata key {name!r} given twice (keys are case-insensitive)")
        result[key] = value
    if sum(len(k) + len(v) for k, v in result.items()) > _METADATA_LIMIT:
        raise InvalidMetadata(f"metadata is larger than {_METADATA_LIMIT} bytes")
    return result


class Store(ABC):
    """An object store: keys to bytes with a little metadata."""

    @property
    @abstractmethod
    def url(self) -> str:
        """The URL that :func:`open_store` opens this store from."""

    @abstractmethod
    def put(
        self,
        key: str,
        data: bytes,
        metadata: Mapping[str, str] | None = None,
        content_type: str | None = None,
    ) -> ObjectInfo:
        """Write an object whole, replacing any object of that key (atomically)."""

    @abstractmethod
    def get(self, key: str) -> bytes:
        """The content of an object; :class:`ObjectNotFound` if there is none."""

    @abstractmethod
    def head(self, key: str) -> ObjectInfo | None:
        """Size, etag, metadata and content type of an object, or None if there is none."""

    def exists(self, key: str) -> bool:
        """Whether an object of that key exists."""
        return self.head(key) is not None

    def list(self, prefix: str = "", *, checksums: bool = True) -> Iterator[ObjectInfo]:
        """The objects whose keys start with ``prefix``, sorted by key, without metadata.

        ``checksums=False`` lets a backend for which the MD5 is not free (a folder: it reads
        the file whole) list an empty etag instead, for callers that read the object anyway.
        """
        if prefix.startswith("/") or "\\" in prefix or ".." in prefix.split("/"):
            raise InvalidKey(f"a key prefix is a relative path with / separators: {prefix!r}")
        return self._list(prefix, checksums)

    @abstractmethod
    def _list(self, prefix: str, checksums: bool) -> Iterator[ObjectInfo]:
        """:meth:`list` of a prefix already checked."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove an object; removing a missing object is not an error."""

    @abstractmethod
    def move(self, key: str, new_key: str) -> None:
        """Rename an object, with its metadata, replacing any object at ``new_key``."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"
