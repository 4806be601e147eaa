"""The ``histogram`` stage: the new reporter files of one (tile, hour) -> histogram rows.

Written a batch at once: the handler prepares its item (lists the prefix, reads and bins its
new files) and writes nothing; the stage's end-of-batch hook (:func:`finish_histograms`, see
:mod:`renderer.profile`) writes every prepared item of the claimed batch together
(:mod:`renderer.traffic.histogram_write`: one ledger statement, one COPY of bins per week,
one of segment lengths).

Exactly once: in the batch's transaction, the new files' ledger rows, the summed bins, the
reported segment lengths and the rejected rows are written together, and the queue marks the
items done in that same transaction. Files already in the ledger are skipped, so a retry after
a crash at any point neither loses nor double-counts a row; a second attempt running at the
same time (a worker whose lease was taken over) waits on the ledger's rows and is refused
(its item fails, the rest of its batch commits) instead of counting twice. The histograms
are append-only (migration 0007): nothing but the ledger stands between a file and a second
count, and late data for a (tile, hour) adds rows that readers sum. Archiving or deleting
the inputs is a separate ``histogram-archive`` item enqueued in that transaction: it runs
only after the commit, and moves only files that the ledger holds.

Handlers here (declared in :mod:`renderer.traffic.profile`): ``histogram`` (key
``{level}/{tile_index}/{hour}``, group ``{level0_index}/{iso_week}``) and
``histogram-archive`` (same key). The periodic submit is the ``traffic-submit`` stage,
:func:`renderer.traffic.ingest.submit_tick`.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from renderer import binning
from renderer.db import Connection, dict_row, query
from renderer.errors import ObjectNotFound
from renderer.profile import Next
from renderer.queue import Job
from renderer.storage import ObjectInfo, Store
from renderer.traffic import histogram_write
from renderer.traffic.histogram_write import Pending
from renderer.traffic.layout import ARCHIVE, Prefix, source_store

__all__ = ["ARCHIVE_KIND", "KIND", "ConsumeResult", "archive_after", "archive_prefix",
           "consume_prefix", "finish_histograms", "handle_archive", "handle_histogram",
           "prepare_prefix", "start_histograms"]

log = logging.getLogger(__name__)

KIND = "histogram"
ARCHIVE_KIND = "histogram-archive"

_MD5_HEX = frozenset("0123456789abcdef")


def _rows(conn: Connection, ref: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of a named statement as dicts, whatever the connection's row factory."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query(ref), params)
        return cur.fetchall()


@dataclass
class ConsumeResult:
    """What one run of the histogram stage over a prefix did."""

    files: int = 0
    files_rejected: int = 0
    rows_read: int = 0
    rows_accepted: int = 0
    rows_rejected: int = 0
    observations: int = 0
    bins: int = 0
    """Histogram cells written (bins summed across the files)."""
    modes: list[str] = field(default_factory=list)
    pending: Pending | None = field(default=None, repr=False, compare=False)
    """What is still to be written (:func:`prepare_prefix`); None once written, or when
    nothing was new."""


def _decode(data: bytes) -> tuple[bytes, str | None]:
    """The CSV bytes of a file (gunzipped when it is gzip), or an error naming why not."""
    if data[:2] != b"\x1f\x8b":
        return data, None
    try:
        return gzip.decompress(data), None
    except (OSError, EOFError, zlib.error) as exc:
        return b"", f"not a readable gzip file: {exc}"


def _checksum(info: ObjectInfo, data: bytes) -> tuple[int, str]:
    """Size and checksum of the bytes actually read. When the etag is a plain MD5 (always on
    our stores, unless S3 multipart), or was not computed for the listing, it is computed
    here, so a file replaced between listing and reading is recorded as what was consumed,
    and its newer version stays new."""
    etag = info.etag.lower()
    if not etag or (len(etag) == 32 and set(etag) <= _MD5_HEX):
        etag = hashlib.md5(data, usedforsecurity=False).hexdigest()
    return len(data), etag


def _error_result(reason: str) -> binning.BinResult:
    return binning.BinResult(0, 0, 0, [], [], reason, [])


def _consumed(conn: Connection, prefix: Prefix) -> set[tuple[str, int, str]]:
    """(key, size, checksum) of the prefix's files in the ledger."""
    return {(r["key"], r["size"], r["checksum"]) for r in _rows(
        conn, "traffic_ingest.files_of_prefix",
        {"level": prefix.level, "index": prefix.index, "hour": prefix.hour})}


def _listed(store: Store, prefix: Prefix) -> list[ObjectInfo]:
    """The files of a prefix. A folder store lists them without their MD5 (it would read each
    file whole), since :func:`_checksum` computes it from the bytes read anyway. Every key
    under the prefix's folder parses to the prefix (:func:`parse_key` reads only the first
    three parts of a key of four or more), so none is parsed again."""
    return list(store.list(prefix.folder, checksums=False))


def _consumed_of(conn: Connection,
                 prefixes: Sequence[Prefix]) -> dict[Prefix, set[tuple[str, int, str]]]:
    """:func:`_consumed` of several prefixes, in one statement."""
    found: dict[Prefix, set[tuple[str, int, str]]] = {p: set() for p in prefixes}
    for r in _rows(conn, "traffic_ingest.files_of_prefixes", {
            "levels": [p.level for p in prefixes], "indexes": [p.index for p in prefixes],
            "hours": [p.hour for p in prefixes]}):
        found[Prefix(r["level"], r["index"], r["hour"])].add((r["key"], r["size"], r["checksum"]))
    return found


def prepare_prefix(store: Store, prefix: Prefix, consumed: set[tuple[str, int, str]], *,
                   dedupe_by_content: bool = False) -> ConsumeResult:
    """Read and bin the new files of one (tile, hour), given the ``consumed`` ones (the
    ledger's (key, size, checksum) of the prefix); write nothing (``pending`` holds what
    :func:`write_prepared` writes).

    With ``dedupe_by_content`` a file whose size and checksum the prefix already consumed
    under another name (or holds twice) is recorded as rejected, "duplicate of" the first,
    and not binned; by default every name counts, as OpenTraffic counted them.
    """
    result = ConsumeResult()
    # the first name in key order wins (reversed: a later entry overwrites an earlier one)
    seen = {(size, checksum): key for key, size, checksum in sorted(consumed, reverse=True)}
    read: list[tuple[str, int, str, str | None]] = []  # key, size, checksum, gzip error
    texts: list[bytes] = []
    for info in _listed(store, prefix):
        if (info.key, info.size, info.etag) in consumed:
            continue
        try:
            raw = store.get(info.key)
        except ObjectNotFound:
            continue  # archived or deleted since listing: consumed by an earlier attempt
        size, checksum = _checksum(info, raw)
        if (info.key, size, checksum) in consumed:
            continue  # listed without a checksum, and consumed already
        first = seen.setdefault((size, checksum), info.key)
        if dedupe_by_content and first != info.key:
            read.append((info.key, size, checksum, f"duplicate of {first}"))
            continue
        data, error = _decode(raw)
        read.append((info.key, size, checksum, error))
        if error is None:
            texts.append(data)
    if not read:
        return result
    # One call for the prefix: the files' bins summed, ready for COPY (no object per bin).
    binned = binning.bin_prefix(texts, prefix.level, prefix.index, prefix.hour)
    pending = Pending(prefix, binned)
    per_file = iter(binned.files)
    for key, size, checksum, error in read:
        one = _error_result(error) if error else next(per_file)
        pending.add(key, size, checksum, one)
        result.files += 1
        result.files_rejected += one.file_error is not None
        result.rows_read += one.rows_read
        result.rows_accepted += one.rows_accepted
        result.rows_rejected += len(one.rejects)
        result.observations += one.observations
    result.bins = binned.bins
    result.modes = binned.modes
    result.pending = pending
    return result


def write_prepared(conn: Connection,
                   results: Sequence[ConsumeResult]) -> dict[int, BaseException]:
    """Write prepared prefixes together in ``conn``'s transaction (ledger first, then bins,
    lengths and rejected rows: :func:`renderer.traffic.histogram_write.write`); return the
    refused ones by position (their files were consumed by a concurrent attempt first):
    nothing of them is written."""
    todo = [(n, r.pending) for n, r in enumerate(results) if r.pending is not None]
    refused = histogram_write.write(conn, [p for _, p in todo])
    for n, _ in todo:
        results[n].pending = None  # written (or refused): the payloads can go
    return {todo[n][0]: exc for n, exc in refused.items()}


def consume_prefix(conn: Connection, store: Store, prefix: Prefix, *,
                   dedupe_by_content: bool = False) -> ConsumeResult:
    """Bin the new files of one (tile, hour) and write everything in ``conn``'s transaction.

    Nothing is committed here: the caller commits. Returns what was consumed; a prefix
    without new files writes nothing. Raises AlreadyExists when a concurrent attempt
    consumed the files first (see :func:`prepare_prefix` for ``dedupe_by_content``).
    """
    result = prepare_prefix(store, prefix, _consumed(conn, prefix),
                            dedupe_by_content=dedupe_by_content)
    refused = write_prepared(conn, [result])
    if refused:
        raise refused[0]
    return result


def archive_prefix(conn: Connection, store: Store, prefix: Prefix,
                   after: str) -> int:
    """Move (``archive``) or delete (``delete``) the files of a prefix that the ledger holds;
    return how many. Idempotent: files already gone are skipped."""
    if after == "keep":
        return 0
    consumed = _consumed(conn, prefix)
    done = 0
    for info in store.list(prefix.folder):
        if (info.key, info.size, info.etag) not in consumed:
            continue  # arrived after the histogram run: the next run consumes it
        try:
            if after == "delete":
                store.delete(info.key)
            else:
                store.move(info.key, ARCHIVE + info.key)
        except ObjectNotFound:
            continue
        done += 1
    return done


# --- queue handlers ----------------------------------------------------------------------------

def start_histograms(jobs: Sequence[Job]) -> Mapping[int, set[tuple[str, int, str]]]:
    """The histogram stage's start-of-batch hook: the ledger rows of every prefix of the
    batch, in one statement (a malformed key is left to its handler to fail)."""
    prefixes: dict[int, Prefix] = {}
    for job in jobs:
        try:
            prefixes[job.item.id] = Prefix.parse(job.item.key)
        except ValueError:
            continue
    consumed = _consumed_of(jobs[0].conn, list(prefixes.values()))
    return {item_id: consumed[prefix] for item_id, prefix in prefixes.items()}


def handle_histogram(job: Job) -> ConsumeResult:
    """Prepare a prefix (read and bin its new files); :func:`finish_histograms` writes it
    with the rest of its batch, and the profile then declares the weekly speed tiles
    (fan-in) and the archiving after commit (:func:`archive_after`). The ledger rows of the
    prefix come from :func:`start_histograms` (read here when it had none)."""
    prefix = Prefix.parse(job.item.key)
    payload = job.item.payload or {}
    store = source_store(payload["source"], job.settings.follow_symlinks)
    consumed = job.prefetched
    if consumed is None:
        consumed = _consumed(job.conn, prefix)
    result = prepare_prefix(store, prefix, consumed,
                            dedupe_by_content=job.settings.traffic_dedupe_by_content)
    log.debug("histogram %s: %d files, %d observations, %d rows rejected", job.item.key,
              result.files, result.observations, result.rows_rejected)
    return result


def finish_histograms(done: Sequence[tuple[Job, ConsumeResult]]) -> Mapping[int, BaseException]:
    """The histogram stage's end-of-batch hook: write the batch's prepared prefixes together
    (:func:`write_prepared`); an item whose files a concurrent attempt consumed first is
    refused (its item fails) and the rest commit."""
    refused = write_prepared(done[0][0].conn, [outcome for _, outcome in done])
    return {done[n][0].item.id: exc for n, exc in refused.items()}


def archive_after(job: Job, result: ConsumeResult) -> list[Next]:
    """The ``histogram-archive`` item of a prefix that consumed files (none with
    ``after == "keep"``); it runs only after the histogram's commit."""
    payload = job.item.payload or {}
    after = payload.get("after", "archive")
    if not result.files or after == "keep":
        return []
    return [Next(job.item.key, {"source": payload["source"], "after": after})]


def handle_archive(job: Job) -> None:
    """Archive or delete a prefix's consumed files (runs after the histogram commit)."""
    payload = job.item.payload or {}
    moved = archive_prefix(job.conn, source_store(payload["source"], job.settings.follow_symlinks),
                           Prefix.parse(job.item.key), payload.get("after", "archive"))
    log.debug("histogram-archive %s: %d files %sd", job.item.key, moved,
              payload.get("after", "archive"))
