"""Build and publish an extract: the archive (or file), its manifest, written atomically.

Layout under the store's ``extracts/``:

- ``extracts/{name}/{generated}.zip`` (or ``.parquet``): the download, a new key each time;
- ``extracts/{name}.json``: its manifest, which names the download (key, size, SHA-256).

The download is written first, then the manifest that points at it, then the previous
download is deleted: every manifest a reader sees names a complete download that matches it
(each object is written whole, by a rename on a folder and by one PUT on S3). An extract whose
fingerprint equals the manifest's is skipped: nothing is read or written.

Zip, not tar + zstd: speed and reference tiles are gzip already (a second compressor gains
nothing on them), zip reads one member without unpacking the rest, every system opens it, and
Python writes it without a new dependency. Gzip members are stored as they are; the manifest
and the GeoJSON are deflated.

The manifest (also inside the zip as ``manifest.json``, without the download's own hash)::

    {"name": "traffic/europe", "generated_at": "...", "fingerprint": "...", "info": {...},
     "files": [{"path": ..., "size": ..., "sha256": ..., "group": ..., "start": ..., "end": ...}],
     "time_ranges": {"speed": {"start": ..., "end": ...}, ...},
     "download": {"key": ..., "size": ..., "sha256": ...}}
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from renderer.errors import ObjectNotFound
from renderer.extracts.model import Extract, Member
from renderer.storage import Store

__all__ = ["PREFIX", "Published", "manifest_key", "publish", "read_manifests"]

log = logging.getLogger(__name__)

PREFIX = "extracts/"
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Published:
    """What :func:`publish` did: ``skipped`` (unchanged), or the new download's manifest."""

    name: str
    skipped: bool
    manifest: dict[str, Any] | None = None


def manifest_key(name: str) -> str:
    return f"{PREFIX}{name}.json"


def read_manifest(store: Store, name: str) -> dict[str, Any] | None:
    try:
        found = json.loads(store.get(manifest_key(name)))
    except ObjectNotFound:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError):
        log.warning("extract manifest %s is not JSON: rebuilding it", manifest_key(name))
        return None
    return found if isinstance(found, dict) else None


def read_manifests(store: Store) -> list[dict[str, Any]]:
    """Every published manifest, by name."""
    found = []
    for info in store.list(PREFIX, checksums=False):
        if info.key.endswith(".json"):
            manifest = read_manifest(store, info.key[len(PREFIX):-len(".json")])
            if manifest is not None and "download" in manifest:
                found.append(manifest)
    return sorted(found, key=lambda m: str(m.get("name")))


def _iso(epoch: int | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC).isoformat()


def _range(source: Store, member: Member) -> tuple[int, int] | None:
    if not member.range_from_metadata:
        return member.range
    info = source.head(member.key)
    meta = info.metadata if info is not None else {}
    try:
        return int(meta["rangestart"]), int(meta["rangeend"])
    except (KeyError, ValueError):
        return None


def _file_entry(member: Member, body: bytes, span: tuple[int, int] | None) -> dict[str, Any]:
    return {"path": member.path, "size": len(body), "sha256": hashlib.sha256(body).hexdigest(),
            "group": member.group, "start": _iso(span[0]) if span else None,
            "end": _iso(span[1]) if span else None}


def _time_ranges(spans: list[tuple[str, tuple[int, int] | None]]) -> dict[str, Any]:
    by_group: dict[str, tuple[int, int]] = {}
    for group, span in spans:
        if span is None:
            continue
        lo, hi = by_group.get(group, span)
        by_group[group] = (min(lo, span[0]), max(hi, span[1]))
    return {g: {"start": _iso(lo), "end": _iso(hi)} for g, (lo, hi) in sorted(by_group.items())}


def _zip(extract: Extract, bodies: list[bytes], manifest: dict[str, Any],
         when: datetime) -> bytes:
    out = io.BytesIO()
    stamp = when.timetuple()[:6]
    with zipfile.ZipFile(out, "w", allowZip64=True) as archive:
        info = zipfile.ZipInfo(MANIFEST, date_time=stamp)
        info.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(info, json.dumps(manifest, indent=1))
        for member, body in zip(extract.members, bodies, strict=True):
            info = zipfile.ZipInfo(member.path, date_time=stamp)
            info.compress_type = (zipfile.ZIP_STORED if member.path.endswith(".gz")
                                  else zipfile.ZIP_DEFLATED)
            archive.writestr(info, body)
    return out.getvalue()


def publish(store: Store, extract: Extract, *, now: datetime | None = None,
            force: bool = False) -> Published:
    """Build and write one extract, unless its manifest says it is unchanged (``force``:
    build it anyway)."""
    fingerprint = extract.fingerprint()
    previous = read_manifest(store, extract.name)
    old_key = (previous or {}).get("download", {}).get("key")
    if not force and previous and previous.get("fingerprint") == fingerprint and (
            old_key and store.exists(old_key)):
        return Published(extract.name, skipped=True)
    when = (now or datetime.now(UTC)).replace(microsecond=0)
    source = extract.source or store
    bodies = [source.get(m.key) for m in extract.members]
    spans = [(m.group, _range(source, m)) for m in extract.members]
    manifest: dict[str, Any] = {
        "name": extract.name, "generated_at": when.isoformat(), "fingerprint": fingerprint,
        "info": dict(extract.info), "format": extract.suffix.lstrip("."),
        "time_ranges": _time_ranges(spans)}
    if extract.combine is None:
        manifest["files"] = [_file_entry(m, b, s)
                             for m, b, (_, s) in zip(extract.members, bodies, spans, strict=True)]
        data = _zip(extract, bodies, manifest, when)
    else:
        data = extract.combine(bodies)
        manifest["sources"] = [_file_entry(m, b, s) for m, b, (_, s)
                               in zip(extract.members, bodies, spans, strict=True)]
        filename = extract.name.replace("/", "-") + extract.suffix
        manifest["files"] = [{"path": filename, "size": len(data),
                              "sha256": hashlib.sha256(data).hexdigest(), "group": "data",
                              **manifest["time_ranges"].get("data", {})}]
    key = f"{PREFIX}{extract.name}/{when:%Y%m%dT%H%M%SZ}{extract.suffix}"
    store.put(key, data, content_type=extract.content_type)
    manifest["download"] = {"key": key, "size": len(data),
                            "sha256": hashlib.sha256(data).hexdigest()}
    store.put(manifest_key(extract.name), json.dumps(manifest, indent=1).encode(),
              content_type="application/json")
    if old_key and old_key != key:
        store.delete(old_key)
    log.info("extract %s: %d files, %d bytes -> %s", extract.name, len(extract.members),
             len(data), key)
    return Published(extract.name, skipped=False, manifest=manifest)
