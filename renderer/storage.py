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

import contextlib
import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import stat
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from renderer.errors import ObjectNotFound, StorageError

if TYPE_CHECKING:
    from botocore.client import BaseClient

__all__ = [
    "DEFAULT_CONTENT_TYPE",
    "FileStore",
    "ObjectInfo",
    "S3Store",
    "Store",
    "check_key",
    "check_metadata",
    "open_store",
]

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
    """Return ``key`` if it is a valid object key, else raise ``ValueError``.

    Examples
    --------
    >>> check_key("2026/47/0/002/140.spd.0.gz")
    '2026/47/0/002/140.spd.0.gz'
    """
    if not isinstance(key, str) or not key:
        raise ValueError(f"an object key must be a non-empty string, not {key!r}")
    if key.startswith("/") or "\\" in key or "\0" in key:
        raise ValueError(f"an object key is a relative path with / separators, not {key!r}")
    if any(part in ("", ".", "..") for part in key.split("/")):
        raise ValueError(f"an object key has no empty, '.' or '..' part: {key!r}")
    if len(key.encode("utf-8")) > 1024:
        raise ValueError(f"an object key is at most 1024 bytes: {key[:40]!r}...")
    return key


def check_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    """The metadata with lowercased keys, or ``ValueError`` if S3 could not carry it."""
    if not metadata:
        return {}
    result: dict[str, str] = {}
    for name, value in metadata.items():
        key = str(name).lower()
        if not _METADATA_KEY.fullmatch(key):
            raise ValueError(f"metadata key {name!r}: use letters, digits, '-' and '_'")
        if not isinstance(value, str) or not _METADATA_VALUE.fullmatch(value):
            raise ValueError(f"metadata value of {name!r} must be printable ASCII: {value!r}")
        if key in result:
            raise ValueError(f"metadata key {name!r} given twice (keys are case-insensitive)")
        result[key] = value
    if sum(len(k) + len(v) for k, v in result.items()) > _METADATA_LIMIT:
        raise ValueError(f"metadata is larger than {_METADATA_LIMIT} bytes")
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

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """The objects whose keys start with ``prefix``, sorted by key, without metadata."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove an object; removing a missing object is not an error."""

    @abstractmethod
    def move(self, key: str, new_key: str) -> None:
        """Rename an object, with its metadata, replacing any object at ``new_key``."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"


def open_store(url: str) -> Store:
    """The store of a URL: ``file:///path``, a plain path, or ``s3://bucket/prefix``.

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
        return FileStore(Path(url))
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise StorageError(
                f"file URL {url!r} names a host",
                "write file:///absolute/path (three slashes) or a plain path",
            )
        return FileStore(Path(unquote(parts.path)))
    if scheme == "s3":
        if not parts.netloc:
            raise StorageError(f"S3 URL {url!r} has no bucket", "write s3://bucket/prefix")
        return S3Store(parts.netloc, unquote(parts.path))
    raise StorageError(
        f"unsupported store URL {url!r}", "use file:///path, a plain path or s3://bucket/prefix"
    )


# --- a local folder ---------------------------------------------------------------------------

_SIDECAR = ".{name}.meta.json"  # hidden, beside the object; list() skips every dotfile
_TEMP = ".{name}.{token}.tmp"
_FIX_FOLDER = "make the folder writable by this user, or set RENDERER_STORAGE to another store"


def _os_error(error: OSError, verb: str, path: Path) -> StorageError:
    """A one-line StorageError for an OSError of the local folder store."""
    code = error.errno
    if isinstance(error, PermissionError) or code in (errno.EACCES, errno.EPERM):
        return StorageError(f"permission denied to {verb} {path}", _FIX_FOLDER)
    if code == errno.EROFS:
        return StorageError(f"cannot {verb} {path}: read-only file system", _FIX_FOLDER)
    if code in (errno.ENOSPC, errno.EDQUOT):
        return StorageError(
            f"cannot {verb} {path}: no space left on the device",
            "free disk space, or set RENDERER_STORAGE to another store",
        )
    if code in (errno.ENOTDIR, errno.EEXIST):
        return StorageError(
            f"cannot {verb} {path}: a file stands where a folder is needed",
            "remove or rename that file, or set RENDERER_STORAGE to another folder",
        )
    if code == errno.EISDIR:
        return StorageError(
            f"cannot {verb} {path}: a folder stands where the object would go",
            "remove that folder or use another key",
        )
    return StorageError(f"cannot {verb} {path}: {error.strerror or error}", _FIX_FOLDER)


class FileStore(Store):
    """Objects as files under a root folder; keys are paths relative to it.

    Writes are atomic (a temporary file in the same folder, fsynced, then renamed over the
    object). Metadata, content type and the etag (MD5 of the content, computed on put) live in
    a hidden sidecar ``.NAME.meta.json`` beside the object, stamped with the object's size and
    modification time: a file changed or dropped in by hand has no valid sidecar, so it reads
    with no metadata and its MD5 is computed when asked for. Key parts must not start with
    ``.`` (kept for sidecars and temporary files). Unlike S3, a key cannot be both an object
    and a folder (``a`` and ``a/b``). Emptied folders are left in place.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().absolute()

    @property
    def url(self) -> str:
        return self.root.as_uri()

    def _path(self, key: str) -> Path:
        parts = check_key(key).split("/")
        if any(part.startswith(".") for part in parts):
            raise ValueError(
                f"a folder store key has no part starting with '.' (kept for sidecars): {key!r}"
            )
        return self.root.joinpath(*parts)

    @staticmethod
    def _sidecar(path: Path) -> Path:
        return path.with_name(_SIDECAR.format(name=path.name))

    @staticmethod
    def _write_temp(path: Path, data: bytes) -> Path:
        """Write ``data`` durably to a new hidden file beside ``path``; return its path."""
        temp = path.with_name(_TEMP.format(name=path.name, token=secrets.token_hex(6)))
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # mode minus umask
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return temp

    def put(
        self,
        key: str,
        data: bytes,
        metadata: Mapping[str, str] | None = None,
        content_type: str | None = None,
    ) -> ObjectInfo:
        path = self._path(key)
        meta = check_metadata(metadata)
        content_type = content_type or DEFAULT_CONTENT_TYPE
        etag = hashlib.md5(data, usedforsecurity=False).hexdigest()
        temps: list[Path] = []
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            temps.append(self._write_temp(path, data))
            st = temps[0].stat()
            sidecar = {
                "etag": etag,
                "size": st.st_size,
                "mtime_ns": st.st_mtime_ns,
                "content_type": content_type,
                "metadata": meta,
            }
            temps.append(self._write_temp(path, json.dumps(sidecar).encode()))
            # Object first: between the two renames the old sidecar's stamp no longer matches,
            # so readers see no metadata rather than the previous object's.
            os.replace(temps[0], path)
            os.replace(temps[1], self._sidecar(path))
        except OSError as error:
            for temp in temps:
                with contextlib.suppress(OSError):
                    temp.unlink(missing_ok=True)
            raise _os_error(error, "write", path) from error
        return ObjectInfo(key, st.st_size, etag, meta, content_type, st.st_mtime_ns / 1e9)

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(f"no object {key!r} in {self.url}", "check the key") from None
        except OSError as error:
            raise _os_error(error, "read", path) from error

    def _read_sidecar(self, path: Path, st: os.stat_result) -> dict[str, Any] | None:
        try:
            sidecar = json.loads(self._sidecar(path).read_bytes())
        except (OSError, ValueError):
            return None
        if (
            not isinstance(sidecar, dict)
            or sidecar.get("size") != st.st_size
            or sidecar.get("mtime_ns") != st.st_mtime_ns
        ):
            return None  # stale: the object was replaced or changed by hand
        return sidecar

    def _info(self, key: str, path: Path, st: os.stat_result, metadata: bool,
              sidecar: bool = True, checksum: bool = True) -> ObjectInfo:
        """``sidecar`` False: the caller knows there is none (saves an open per object).
        ``checksum`` False: no MD5 of the content when there is no sidecar (etag "")."""
        meta = (self._read_sidecar(path, st) if sidecar else None) or {}
        etag = meta.get("etag")
        if not isinstance(etag, str) and not checksum:
            etag = ""
        elif not isinstance(etag, str):
            digest = hashlib.md5(usedforsecurity=False)
            with path.open("rb") as file:
                for chunk in iter(lambda: file.read(1 << 20), b""):
                    digest.update(chunk)
            etag = digest.hexdigest()
        return ObjectInfo(
            key,
            st.st_size,
            etag,
            dict(meta.get("metadata") or {}) if metadata else {},
            (meta.get("content_type") or DEFAULT_CONTENT_TYPE) if metadata else None,
            st.st_mtime_ns / 1e9,
        )

    def head(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        try:
            st = path.stat()
            if not stat.S_ISREG(st.st_mode):
                return None
            return self._info(key, path, st, metadata=True)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as error:
            raise _os_error(error, "read", path) from error

    def list(self, prefix: str = "", *, checksums: bool = True) -> Iterator[ObjectInfo]:
        """``checksums=False``: a file without a valid sidecar is listed with an empty etag
        instead of reading it whole for its MD5 (for callers that read it anyway)."""
        if prefix.startswith("/") or "\\" in prefix or ".." in prefix.split("/"):
            raise ValueError(f"a key prefix is a relative path with / separators: {prefix!r}")
        folder = prefix.rpartition("/")[0]
        start = self.root.joinpath(*folder.split("/")) if folder else self.root
        return self._list(start, prefix, checksums)

    def _list(self, start: Path, prefix: str, checksums: bool) -> Iterator[ObjectInfo]:
        # Only folders that can hold keys with the prefix are read (listing "1" of a source
        # root does not walk "2..." or "_archive/"), and a sidecar is read only when the
        # folder listing shows one.
        found: list[tuple[str, str, bool]] = []
        pending = [(str(start), start.relative_to(self.root).as_posix() + "/")]
        while pending:
            folder, rel = pending.pop()
            rel = "" if rel == "./" else rel
            try:
                with os.scandir(folder) as it:
                    entries = list(it)
            except (FileNotFoundError, NotADirectoryError):
                continue  # nothing there
            except OSError as error:
                raise _os_error(error, "list", Path(folder)) from error
            names = {e.name for e in entries}
            for entry in entries:
                name = entry.name
                if name.startswith("."):
                    continue
                key = rel + name
                if entry.is_dir():
                    sub = key + "/"
                    if not entry.is_symlink() and (sub.startswith(prefix)
                                                   or prefix.startswith(sub)):
                        pending.append((entry.path, sub))
                elif key.startswith(prefix):
                    found.append((key, entry.path, _SIDECAR.format(name=name) in names))
        found.sort()
        for key, name, sidecar in found:
            path = Path(name)
            try:
                st = os.stat(name)
                if stat.S_ISREG(st.st_mode):
                    yield self._info(key, path, st, metadata=False, sidecar=sidecar,
                                     checksum=checksums)
            except FileNotFoundError:
                continue  # deleted while we listed
            except OSError as error:
                raise _os_error(error, "list", path) from error

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            if path.is_file():
                path.unlink(missing_ok=True)
            self._sidecar(path).unlink(missing_ok=True)
        except (NotADirectoryError, IsADirectoryError):
            return
        except OSError as error:
            raise _os_error(error, "delete", path) from error

    def move(self, key: str, new_key: str) -> None:
        source, target = self._path(key), self._path(new_key)
        try:
            if not source.is_file():
                raise ObjectNotFound(f"no object {key!r} in {self.url} to move", "check the key")
            if source == target:
                return
            target.parent.mkdir(parents=True, exist_ok=True)
            self._rename(source, target)
            sidecar = self._sidecar(source)
            if sidecar.exists():
                self._rename(sidecar, self._sidecar(target))
            else:
                self._sidecar(target).unlink(missing_ok=True)
        except OSError as error:
            raise _os_error(error, f"move {key!r} to", target) from error

    @staticmethod
    def _rename(source: Path, target: Path) -> None:
        try:
            os.replace(source, target)
        except OSError as error:
            if error.errno != errno.EXDEV:
                raise
            shutil.move(source, target)  # another file system: copy (keeping mtime) and remove


# --- S3 ---------------------------------------------------------------------------------------

_FIX_CREDENTIALS = "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE"
_FIX_ENDPOINT = "check AWS_ENDPOINT_URL (unset it for AWS itself) and the network"


class S3Store(Store):
    """Objects in an S3 bucket (or an S3-compatible service) under a key prefix, via boto3.

    Configured as boto3 is: the standard AWS variables and files for credentials and region,
    ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` for another service (MinIO, Ceph, moto).
    Connections time out after 3 s with one retry, so an unreachable endpoint fails in
    seconds. Metadata travels as S3 user metadata; objects are written in one request.
    """

    connect_timeout = 3.0
    read_timeout = 60.0
    max_attempts = 2  # the first try and one retry
    page_size = 1000  # keys per list request (S3's maximum)

    def __init__(self, bucket: str, prefix: str = "", client: BaseClient | None = None) -> None:
        self.bucket = bucket
        prefix = prefix.strip("/")
        self.prefix = f"{prefix}/" if prefix else ""
        self._client = client
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    @property
    def client(self) -> BaseClient:
        """The boto3 S3 client, made on first use (opening a store never touches the network)."""
        with self._lock:
            if self._client is None:
                self._client = self._make_client()
            return self._client

    def _make_client(self) -> BaseClient:
        import boto3
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError

        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        config = Config(
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            retries={"total_max_attempts": self.max_attempts, "mode": "standard"},
        )
        try:
            return boto3.session.Session().client(
                "s3", endpoint_url=endpoint or None, config=config
            )
        except (BotoCoreError, ValueError) as error:
            raise StorageError(f"cannot set up the S3 client: {error}", _FIX_ENDPOINT) from error

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    @contextlib.contextmanager
    def _errors(self, action: str, key: str = "") -> Iterator[None]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except (ClientError, BotoCoreError) as error:
            raise self._error(error, action, key) from error

    def _error(self, error: Exception, action: str, key: str) -> StorageError:
        """A one-line StorageError naming the cause and the fix for a boto3 error."""
        from botocore import exceptions as bx

        where = f"{self.url}{key}"
        if isinstance(error, bx.NoCredentialsError | bx.PartialCredentialsError):
            return StorageError(f"no AWS credentials to {action} {where}", _FIX_CREDENTIALS)
        if isinstance(error, bx.ConnectionError | bx.HTTPClientError):  # refused, timeouts, TLS
            endpoint = self.client.meta.endpoint_url
            return StorageError(f"cannot reach the S3 endpoint {endpoint}: {error}", _FIX_ENDPOINT)
        if isinstance(error, bx.ClientError):
            info = error.response.get("Error", {})
            code, message = str(info.get("Code", "")), str(info.get("Message", "")).strip()
            if code in ("NoSuchKey", "404", "NotFound"):
                return ObjectNotFound(f"no object {where}", "check the key")
            if code == "NoSuchBucket":
                return StorageError(
                    f"S3 bucket {self.bucket!r} does not exist",
                    "create it, or fix the bucket in RENDERER_STORAGE",
                )
            if code in ("AccessDenied", "403", "Forbidden", "AllAccessDisabled"):
                return StorageError(
                    f"access denied to {action} {where}",
                    "grant these credentials access to the bucket, or use other credentials",
                )
            if code in (
                "InvalidAccessKeyId",
                "SignatureDoesNotMatch",
                "ExpiredToken",
                "InvalidToken",
                "TokenRefreshRequired",
            ):
                return StorageError(f"S3 refused the credentials ({code})", _FIX_CREDENTIALS)
            return StorageError(
                f"S3 could not {action} {where}: {code} {message}".rstrip(),
                "retry later; if it persists, check the bucket and AWS_ENDPOINT_URL",
            )
        return StorageError(
            f"S3 could not {action} {where}: {error}",
            "check the AWS configuration (AWS_* variables, ~/.aws)",
        )

    def put(
        self,
        key: str,
        data: bytes,
        metadata: Mapping[str, str] | None = None,
        content_type: str | None = None,
    ) -> ObjectInfo:
        full, meta = self._key(key), check_metadata(metadata)
        content_type = content_type or DEFAULT_CONTENT_TYPE
        with self._errors("write", key):
            response = self.client.put_object(
                Bucket=self.bucket, Key=full, Body=data, Metadata=meta, ContentType=content_type
            )
        etag = response.get("ETag", "").strip('"')
        return ObjectInfo(key, len(data), etag, meta, content_type, None)

    def get(self, key: str) -> bytes:
        full = self._key(key)
        with self._errors("read", key):
            response = self.client.get_object(Bucket=self.bucket, Key=full)
            return response["Body"].read()

    def head(self, key: str) -> ObjectInfo | None:
        full = self._key(key)
        try:
            with self._errors("read", key):
                response = self.client.head_object(Bucket=self.bucket, Key=full)
        except ObjectNotFound:
            return None
        return ObjectInfo(
            key,
            response["ContentLength"],
            response.get("ETag", "").strip('"'),
            {k.lower(): v for k, v in response.get("Metadata", {}).items()},
            response.get("ContentType") or DEFAULT_CONTENT_TYPE,
            response["LastModified"].timestamp() if "LastModified" in response else None,
        )

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        if prefix.startswith("/") or "\\" in prefix or ".." in prefix.split("/"):
            raise ValueError(f"a key prefix is a relative path with / separators: {prefix!r}")
        return self._list(prefix)

    def _list(self, prefix: str) -> Iterator[ObjectInfo]:
        with self._errors("list", prefix):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket,
                Prefix=self.prefix + prefix,
                PaginationConfig={"PageSize": self.page_size},
            )
            for page in pages:
                for item in page.get("Contents", []):
                    yield ObjectInfo(
                        item["Key"][len(self.prefix) :],
                        item["Size"],
                        item.get("ETag", "").strip('"'),
                        {},
                        None,
                        item["LastModified"].timestamp() if "LastModified" in item else None,
                    )

    def delete(self, key: str) -> None:
        full = self._key(key)
        with self._errors("delete", key):
            self.client.delete_object(Bucket=self.bucket, Key=full)

    def move(self, key: str, new_key: str) -> None:
        source, target = self._key(key), self._key(new_key)
        if source == target:
            if not self.exists(key):
                raise ObjectNotFound(f"no object {self.url}{key} to move", "check the key")
            return
        with self._errors("move", key):
            # Copy keeps metadata and content type (MetadataDirective COPY); single request up
            # to 5 GB, like put.
            self.client.copy_object(
                Bucket=self.bucket, Key=target, CopySource={"Bucket": self.bucket, "Key": source}
            )
            self.client.delete_object(Bucket=self.bucket, Key=source)
