"""Object store: one small interface, a local-folder backend and an S3 backend.

``open_store(url)`` takes ``file:///path``, a plain path or ``s3://bucket/prefix``. Both
backends behave alike (the same test suite runs on both):

- keys are ``/``-separated relative paths: no leading ``/``, no empty, ``.`` or ``..`` part, no
  backslash; listing is recursive and sorted by key; a prefix is a string prefix, as in S3
  (``a/b`` lists ``a/b/c`` and ``a/bc``);
- user metadata is a small ``str -> str`` mapping whose keys are lowercased (S3 lowercases them
  on the wire, so ``rangeStart`` reads back as ``rangestart``); values are printable ASCII;
- ``etag`` is the MD5 hex of the content, which S3 reports for objects written in one part (we
  always write in one part, so objects are limited to S3's 5 GB) and which stays the same when
  an object is moved or copied;
- ``list()`` returns key, size, etag and modification time but no metadata (S3 lists none);
  ``head()`` returns everything;
- every failure is a :class:`~renderer.errors.StorageError` naming the cause and the fix; a
  missing object on ``get`` or ``move`` is :class:`~renderer.errors.ObjectNotFound`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import unquote, urlsplit

from renderer.errors import StorageError
from renderer.storage.base import (
    DEFAULT_CONTENT_TYPE,
    ObjectInfo,
    Store,
    check_key,
    check_metadata,
)
from renderer.storage.files import FileStore
from renderer.storage.s3 import S3Store

__all__ = [
    "DEFAULT_CONTENT_TYPE",
    "FileStore",
    "ObjectInfo",
    "S3Store",
    "Store",
    "check_key",
    "check_metadata",
    "open_store",
    "within",
]


def open_store(url: str, *, follow_symlinks: bool = False) -> Store:
    """The store of a URL: ``file:///path``, a plain path, or ``s3://bucket/prefix``.

    A folder store reads no file through a symbolic link, or with ``follow_symlinks`` only
    through links that stay inside its root.

    Examples
    --------
    >>> open_store("s3://tiles/prod").url
    's3://tiles/prod/'
    >>> open_store("/srv/tiles").url
    'file:///srv/tiles'
    """
    if "://" not in url:
        if not url.strip():
            raise StorageError("the store URL is empty", "set RENDERER_STORAGE or leave it unset")
        return FileStore(Path(url), follow_symlinks=follow_symlinks)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise StorageError(
                f"file URL {url!r} names a host",
                "write file:///absolute/path (three slashes) or a plain path",
            )
        return FileStore(Path(unquote(parts.path)), follow_symlinks=follow_symlinks)
    if scheme == "s3":
        if not parts.netloc:
            raise StorageError(f"S3 URL {url!r} has no bucket", "write s3://bucket/prefix")
        return S3Store(parts.netloc, unquote(parts.path))
    raise StorageError(
        f"unsupported store URL {url!r}", "use file:///path, a plain path or s3://bucket/prefix"
    )


def _location(store: Store) -> tuple[str, str]:
    """(scheme and bucket, path with a trailing /) of a store's root, symlinks resolved."""
    if isinstance(store, FileStore):
        return "file", os.path.realpath(store.root).rstrip("/") + "/"
    assert isinstance(store, S3Store)
    return f"s3:{store.bucket}", "/" + store.prefix


def within(url: str, roots: Iterable[str]) -> bool:
    """Whether the store at ``url`` is one of ``roots`` or lies under one (a folder inside
    it, a longer S3 prefix of the same bucket). Local paths are compared with symlinks and
    ``..`` resolved, so a link or ``a/../..`` inside a root cannot lead out of it.

    Examples
    --------
    >>> within("/srv/traffic/2026", ["/srv/traffic"]), within("/etc", ["/srv/traffic"])
    (True, False)
    """
    scheme, path = _location(open_store(url))
    for root in roots:
        root_scheme, root_path = _location(open_store(root))
        if scheme == root_scheme and path.startswith(root_path):
            return True
    return False
