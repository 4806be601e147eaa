"""Submitting reporter files: list a source, find the files the ledger lacks, enqueue one
``histogram`` item per (tile, hour) prefix that has any.

The source is listed without reading its files; only a file whose key and size the ledger
holds is checksummed, to tell a consumed file from one rewritten in place. Each item's
fingerprint hashes its new files' (key, size, checksum, or the modification time of a file
listed without one), so submitting again while nothing changed does nothing (a pending item
stays pending, a done one stays done), and new files under a done prefix re-run it. Also
the rejected-rows listing.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from renderer.db import Connection, dict_row, query, tuple_row
from renderer.errors import InputError
from renderer.queue import PRIORITY_BATCH, Job, NewItem, enqueue_bulk
from renderer.sources import Layout, check_layout, source_keys
from renderer.storage import ObjectInfo, Store
from renderer.traffic import histogram
from renderer.traffic.layout import (
    AFTER_CHOICES,
    ARCHIVE,
    Prefix,
    fingerprint,
    list_source,
    parse_key,
    relative_key,
    source_store,
)

__all__ = ["COMMIT_EVERY", "SubmitResult", "enqueue_objects", "rejects", "submit", "submit_tick"]

log = logging.getLogger(__name__)

COMMIT_EVERY = 64
"""Prefixes that ``renderer traffic submit`` commits at a time: two of the histogram stage's
batches of 32, so that two waiting workers start on the first hours while it lists the rest."""

LAYOUT = Layout("{start}_{end}/{level}/{tile_index}/{name}",
                lambda key: parse_key(key) is not None, lambda key: key.startswith(ARCHIVE))
"""Where reporter files sit in a source (:mod:`renderer.traffic.layout`)."""


def _rows(conn: Connection, ref: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of a named statement as dicts, whatever the connection's row factory."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query(ref), params)
        return cur.fetchall()


@dataclass(frozen=True)
class SubmitResult:
    """What :func:`submit` found and enqueued."""

    source: str
    files_listed: int
    """Files in the layout, outside ``_archive/``."""
    files_ignored: int
    """Objects outside the layout ``{start}_{end}/{level}/{index}/{name}`` (only keys that
    start with a digit are listed: a README beside the folders is never read)."""
    files_new: int
    """Files not in the consumed-files ledger."""
    bytes_new: int
    prefixes: int
    """(tile, hour) prefixes with new files: one histogram item each."""
    enqueued: int
    """Items that the queue added or re-opened (pending ones are left as they are)."""
    weeks: list[str]


def _check_after(after: str) -> str:
    if after not in AFTER_CHOICES:
        raise InputError(f"--after must be one of {', '.join(AFTER_CHOICES)}, not {after!r}",
                         "use archive (default), delete or keep")
    return after


def _ledger_of(conn: Connection, keys: list[str]) -> dict[str, set[tuple[int, str]]]:
    """(size, checksum) of every ledger row of some keys, by key: one statement, the keys
    as one JSON parameter (a driver dumps a list of strings item by item)."""
    known: dict[str, set[tuple[int, str]]] = {}
    with conn.cursor(row_factory=tuple_row) as cur:
        cur.execute(query("traffic_ingest.ledger_of_keys"), {"keys": json.dumps(keys)})
        for key, size, checksum in cur:
            known.setdefault(key, set()).add((size, checksum))
    return known


def _new(conn: Connection, store: Store,
         listed: list[tuple[Prefix, ObjectInfo]]) -> list[tuple[Prefix, ObjectInfo]]:
    """The listed files that the ledger does not hold, in listing order.

    A file whose key the ledger does not know, or knows with other sizes only, is new
    without its checksum: the source is listed without reading its files (a folder store
    has no MD5 of a file dropped in by a reporter), since the histogram stage computes the
    checksum from the bytes it reads. Only a file whose key and size the ledger holds is
    checksummed here (read whole, as the listing with checksums did for every file)."""
    if not listed:
        return []
    known = _ledger_of(conn, [i.key for _, i in listed])
    new = []
    for prefix, info in listed:
        seen = known.get(info.key)
        if seen is not None and any(size == info.size for size, _ in seen):
            if not info.etag:
                head = store.head(info.key)
                if head is None:
                    continue  # gone since listing: nothing to consume
                info = head
            if (info.size, info.etag) in seen:
                continue
        new.append((prefix, info))
    return new


def _stamp(info: ObjectInfo) -> tuple[str, int, str]:
    """What an item's fingerprint hashes of one new file: key, size and checksum, or, for a
    file listed without one (a folder store's file without a sidecar), its modification
    time: a file rewritten in place differs by one or the other."""
    return info.key, info.size, info.etag or f"mtime {info.modified!r}"


def _enqueue(conn: Connection, store: Store, new: Iterable[tuple[Prefix, ObjectInfo]],
             *, after: str, priority: int, set_id: str | None,
             options: dict[str, Any] | None = None) -> tuple[int, int, list[str]]:
    """Enqueue one item per prefix of ``new``; return (prefixes, enqueued, weeks)."""
    by_prefix: dict[Prefix, list[ObjectInfo]] = defaultdict(list)
    for prefix, info in new:
        by_prefix[prefix].append(info)
    if not by_prefix:
        return 0, 0, []
    weeks: dict[str, int] = {}
    for prefix in by_prefix:
        weeks.setdefault(prefix.week, prefix.hour)
    # Partitions now, in the submitter's short transaction, so that concurrent histogram
    # items rarely have to create one (which locks the parent table until they commit).
    conn.execute(query("traffic_ingest.ensure_partitions"), {"hours": list(weeks.values())})
    payload = {"source": store.url, "after": after, **(options or {})}
    # Hour by hour, tiles side by side: workers claim in enqueue order, so concurrent items
    # are mostly of different tiles (no waiting on the same segment-length rows), and weeks
    # complete, and fan in to speed tiles, in time order.
    items = [
        NewItem(kind=histogram.KIND, key=prefix.key, payload=payload,
                fingerprint=fingerprint(_stamp(i) for i in infos),
                set_id=set_id, priority=priority, group=prefix.group)
        for prefix, infos in sorted(by_prefix.items(),
                                    key=lambda kv: (kv[0].hour, kv[0].level, kv[0].index))
    ]
    enqueued = enqueue_bulk(conn, items)  # hours x tiles: staged by COPY when many
    return len(items), enqueued, sorted(weeks)


def _chunks(listing: Iterable[tuple[Prefix, ObjectInfo]],
            size: int | None) -> Iterator[list[tuple[Prefix, ObjectInfo]]]:
    """The listing in runs of ``size`` prefixes (all of it at once when None), a prefix's
    files never split between two runs (the listing is in key order: they are side by
    side)."""
    chunk: list[tuple[Prefix, ObjectInfo]] = []
    prefixes: set[Prefix] = set()
    for prefix, info in listing:
        if size is not None and prefix not in prefixes and len(prefixes) == size:
            yield chunk
            chunk, prefixes = [], set()
        prefixes.add(prefix)
        chunk.append((prefix, info))
    if chunk:
        yield chunk


def submit(conn: Connection, source_url: str, *, after: str = "archive",
           priority: int = PRIORITY_BATCH, set_id: str | None = None,
           options: dict[str, Any] | None = None,
           follow_symlinks: bool = False, commit_every: int | None = None) -> SubmitResult:
    """List a source root and enqueue a ``histogram`` item per prefix with new files.

    Runs in ``conn``'s transaction (the items appear when the caller commits), unless
    ``commit_every`` is given: then the items are committed every that many prefixes as
    the listing goes, so that waiting workers start on the first ones while the rest is
    listed (``renderer traffic submit``); ``conn`` must then not be inside a
    ``transaction()`` block. Either way a submit cut short loses nothing: the next one
    enqueues what this one did not (the ledger and the fingerprints decide).

    Parameters
    ----------
    source_url
        A folder, ``file:///path`` or ``s3://bucket/prefix``.
    after
        What the histogram stage does with consumed files once committed: ``archive`` (move
        under ``_archive/``), ``delete`` or ``keep``.
    options
        A run's options for the stages downstream (``{"min_count": 3}``), carried in the
        items' payloads.
    """
    _check_after(after)
    if commit_every is not None and commit_every < 1:
        raise ValueError(f"commit_every must be at least 1, not {commit_every}")
    store = source_store(source_url, follow_symlinks)
    counts = {"listed": 0, "ignored": 0}

    def in_layout() -> Iterator[tuple[Prefix, ObjectInfo]]:
        for prefix, info in list_source(store):
            if prefix is None:
                counts["ignored"] += 1
            else:
                counts["listed"] += 1
                yield prefix, info

    new_files = new_bytes = prefixes = enqueued = 0
    weeks: set[str] = set()
    for chunk in _chunks(in_layout(), commit_every):
        new = _new(conn, store, chunk)
        n, added, chunk_weeks = _enqueue(conn, store, new, after=after, priority=priority,
                                         set_id=set_id, options=options)
        new_files, new_bytes = new_files + len(new), new_bytes + sum(i.size for _, i in new)
        prefixes, enqueued = prefixes + n, enqueued + added
        weeks.update(chunk_weeks)
        if commit_every is not None:
            conn.commit()
    if not counts["listed"]:  # an empty source is fine; files all outside the layout are not
        check_layout(store.url, source_keys(store), LAYOUT)
    result = SubmitResult(store.url, counts["listed"], counts["ignored"], new_files,
                          new_bytes, prefixes, enqueued, sorted(weeks))
    log.info("submit %s: %d files, %d new in %d prefixes, %d items enqueued", store.url,
             result.files_listed, result.files_new, prefixes, enqueued)
    return result


def enqueue_objects(conn: Connection, source_url: str, keys: list[str], *,
                    priority: int, after: str = "archive", set_id: str | None = None) -> int:
    """Enqueue the histogram items of newly created objects (S3 ObjectCreated notifications).

    ``keys`` are object keys as the notification names them (the bucket key, or relative to
    the source root); keys outside the layout or under ``_archive/`` are ignored. Only the
    named (tile, hour) prefixes are listed; the web hook passes the ``traffic_after``
    setting as ``after``. Returns how many items were added or re-opened.
    """
    after = _check_after(after)
    store = source_store(source_url)
    prefixes = {p for p in (parse_key(relative_key(store, k)) for k in keys) if p is not None}
    listed = [(p, i) for p in sorted(prefixes)
              for i in store.list(p.folder, checksums=False)
              if parse_key(i.key) == p]
    _, enqueued, _ = _enqueue(conn, store, _new(conn, store, listed), after=after,
                              priority=priority, set_id=set_id)
    return enqueued


def rejects(conn: Connection, *, file: str | None = None,
            limit: int = 1000) -> list[dict[str, Any]]:
    """Rejected rows (file_key, line, reason, raw, created_at), newest first; a file rejected
    whole has line None and raw None."""
    return _rows(conn, "traffic_ingest.rejects", {"file": file, "limit": limit})


def submit_tick(job: Job) -> None:
    """The ``traffic-submit`` stage (fired by its default schedule): list the traffic source
    (the payload's ``source``, else the setting) and enqueue histogram items for new files."""
    source = job.item.payload.get("source") or job.settings.traffic_source or None
    if source is None:
        # No source configured: nothing to list. Logged, not failed, so that the default
        # schedule does not fill the failure list every five minutes on a fresh install.
        log.warning("traffic-submit: no traffic source configured (set RENDERER_TRAFFIC_SOURCE)")
        return
    after = job.item.payload.get("after") or job.settings.traffic_after
    submit(job.conn, source, after=after, set_id=job.item.set_id,
           follow_symlinks=job.settings.follow_symlinks)
