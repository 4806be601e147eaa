"""The local-folder backend: objects are files, metadata a hidden sidecar beside each,
writes atomic (a temporary file renamed into place)."""

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
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from renderer.errors import InvalidKey, ObjectNotFound, StorageError
from renderer.storage.base import (
    DEFAULT_CONTENT_TYPE,
    ObjectInfo,
    Store,
    check_key,
    check_metadata,
)

# A folder opened by name only when it is no symbolic link (ELOOP otherwise).
_FOLDER_NOFOLLOW = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
_SIDECAR = ".{name}.meta.json"  # hidden, beside the object; list() skips every dotfile
_TEMP = ".{name}.{token}.tmp"
_TEMP_NAME = re.compile(r"\..+\.[0-9a-f]{12}\.tmp")
TEMP_GRACE_SECONDS = 3600.0
"""A temporary file older than this is a crashed writer's (a write takes seconds, not an
hour), and the next write to its folder removes it; a younger one may be a concurrent
writer's and is left alone."""
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

    def __init__(self, root: str | os.PathLike[str],
                 temp_grace: float = TEMP_GRACE_SECONDS, *,
                 follow_symlinks: bool = False) -> None:
        self.temp_grace = temp_grace
        self.follow_symlinks = follow_symlinks
        self._swept: dict[Path, float] = {}  # folder -> when this process last swept it
        self._real_root: str | None = None
        try:
            self.root = Path(root).expanduser().absolute()
        except RuntimeError as error:  # "~name" of an unknown user, or no home at all
            raise StorageError(f"cannot find the folder {root}: {error}",
                               "write an absolute path in RENDERER_STORAGE") from error

    @property
    def url(self) -> str:
        return self.root.as_uri()

    @staticmethod
    def _parts(key: str) -> list[str]:
        parts = check_key(key).split("/")
        if any(part.startswith(".") for part in parts):
            raise InvalidKey(
                f"a folder store key has no part starting with '.' (kept for sidecars): {key!r}"
            )
        return parts

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*self._parts(key))

    def _inside(self, path: Path) -> bool:
        """Whether reading ``path`` (under the root) goes through no symbolic link, or with
        ``follow_symlinks`` only through links that stay inside the root: a link to
        ``/etc/shadow`` dropped into a source folder is never read."""
        if self._real_root is None:  # resolved once: a get is one realpath, not two
            self._real_root = os.path.realpath(self.root)
        root, real = self._real_root, os.path.realpath(path)
        if not self.follow_symlinks:
            return real == os.path.join(root, path.relative_to(self.root))
        return real.startswith(root.rstrip("/") + "/")

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
            self._sweep(path.parent)
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

    def put_plain(self, key: str, data: bytes) -> None:
        """Write an object atomically with no sidecar, removing a previous one: for folders
        that other tools read as they are (a Hive-partitioned export), where a hidden
        ``.NAME.meta.json`` beside every data file is clutter. Reads back with no metadata."""
        path = self._path(key)
        temp: Path | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            temp = self._write_temp(path, data)
            os.replace(temp, path)
            temp = None
            self._sidecar(path).unlink(missing_ok=True)
        except OSError as error:
            if temp is not None:
                with contextlib.suppress(OSError):
                    temp.unlink(missing_ok=True)
            raise _os_error(error, "write", path) from error

    def _sweep(self, folder: Path) -> None:
        """Remove the stale temporary files of a folder (a writer killed mid-write leaves
        one), at most once per grace period per folder and process: a put does not scan a
        large folder every time."""
        now = time.monotonic()
        if now - self._swept.get(folder, -self.temp_grace) < self.temp_grace:
            return
        self._swept[folder] = now
        for temp in self._stale_temps(folder, recursive=False):
            with contextlib.suppress(OSError):
                temp.unlink()

    def _stale_temps(self, folder: Path, recursive: bool) -> Iterator[Path]:
        cutoff = time.time() - self.temp_grace
        pending = [folder]
        while pending:
            try:
                with os.scandir(pending.pop()) as it:
                    entries = list(it)
            except OSError:
                continue  # gone, or unreadable: nothing to sweep there
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        if recursive:
                            pending.append(Path(entry.path))
                    elif (_TEMP_NAME.fullmatch(entry.name)
                          and entry.stat(follow_symlinks=False).st_mtime < cutoff):
                        yield Path(entry.path)
                except OSError:
                    continue

    def stale_temps(self) -> list[Path]:
        """Temporary files left by writers that died mid-write (older than the grace
        period), anywhere under the root; ``store ls`` hides them, ``renderer doctor``
        shows them."""
        return sorted(self._stale_temps(self.root, recursive=True))

    def clean_temps(self) -> int:
        """Remove :meth:`stale_temps`; return how many were removed."""
        removed = 0
        for temp in self.stale_temps():
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
                removed += 1
        return removed

    def _read_nofollow(self, parts: list[str]) -> bytes:
        """The bytes of the key of ``parts``, opened a part at a time from the root with
        O_NOFOLLOW: a link anywhere below the root fails (ELOOP) instead of being read. The
        rule of :meth:`_inside` without ``follow_symlinks``, without a realpath of the file
        (a stat per part of its whole path) nor a Path."""
        if self._real_root is None:
            self._real_root = os.path.realpath(self.root)
        fd = os.open(self._real_root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for part in parts[:-1]:
                inner = os.open(part, _FOLDER_NOFOLLOW, dir_fd=fd)
                os.close(fd)
                fd = inner
            inner = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW, dir_fd=fd)
        finally:
            os.close(fd)
        with os.fdopen(inner, "rb") as file:
            return file.read()

    def get(self, key: str) -> bytes:
        parts = self._parts(key)
        try:
            if not self.follow_symlinks:
                return self._read_nofollow(parts)
            path = self.root.joinpath(*parts)
            if not self._inside(path):
                raise FileNotFoundError(path)
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(f"no object {key!r} in {self.url}", "check the key") from None
        except OSError as error:
            if error.errno == errno.ELOOP:  # a link below the root: never read
                raise ObjectNotFound(f"no object {key!r} in {self.url}", "check the key"
                                     ) from None
            raise _os_error(error, "read", self.root.joinpath(*parts)) from error

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

    def _info(self, key: str, path: Path | str, st: os.stat_result, metadata: bool,
              sidecar: bool = True, checksum: bool = True) -> ObjectInfo:
        """``sidecar`` False: the caller knows there is none (saves an open per object).
        ``checksum`` False: no MD5 of the content when there is no sidecar (etag "").
        ``path`` may be a str: a listing makes no Path of a file it need not open."""
        meta = (self._read_sidecar(Path(path), st) if sidecar else None) or {}
        etag = meta.get("etag")
        if not isinstance(etag, str) and not checksum:
            etag = ""
        elif not isinstance(etag, str):
            digest = hashlib.md5(usedforsecurity=False)
            with open(path, "rb") as file:
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
            if not stat.S_ISREG(st.st_mode) or not self._inside(path):
                return None
            return self._info(key, path, st, metadata=True)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as error:
            raise _os_error(error, "read", path) from error

    def _list(self, prefix: str, checksums: bool) -> Iterator[ObjectInfo]:
        """``checksums=False``: a file without a valid sidecar is listed with an empty etag
        instead of reading it whole for its MD5."""
        folder = prefix.rpartition("/")[0]
        start = self.root.joinpath(*folder.split("/")) if folder else self.root
        return self._walk(start, prefix, checksums)

    def _walk(self, start: Path, prefix: str, checksums: bool) -> Iterator[ObjectInfo]:
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
                elif key.startswith(prefix) and (not entry.is_symlink()
                                                 or self._inside(Path(entry.path))):
                    found.append((key, entry.path, _SIDECAR.format(name=name) in names))
        found.sort()
        for key, name, sidecar in found:
            try:
                st = os.stat(name)
                if stat.S_ISREG(st.st_mode):
                    yield self._info(key, name, st, metadata=False, sidecar=sidecar,
                                     checksum=checksums)
            except FileNotFoundError:
                continue  # deleted while we listed
            except OSError as error:
                raise _os_error(error, "list", Path(name)) from error

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
