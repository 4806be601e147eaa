"""``tracks ingest``: report files -> ``tracks_reports``, with a ledger, rejects and identities.

Per file:

1. the ledger is asked for (key, size, checksum): a version seen before is skipped;
2. the file is parsed (CSV and BinaryFixes in batches by :mod:`.bulk`, NDJSON and NMEA row
   by row by :mod:`.formats`); accepted reports are COPYed into a temporary
   staging table, rejected rows (line, reason, raw text) into another, and the distinct
   identifier sets are kept in memory (a few per vessel);
3. one transaction records the file in the ledger, resolves the identifier sets to vessels
   (new vessels made, vessels found to be one merged), stores the reports and keeps the
   rejects. A day that has no partition yet is loaded into a table of its own without
   indexes, then attached, which builds its indexes in one sorted pass (exact duplicates
   within the file dropped by DISTINCT ON); the reports of days that have a partition go
   through the parent with its indexes kept live (exact duplicates, same vessel, time and
   position, dropped by the key). A day never closes: late reports are always accepted.

Counts add up: ``rows_read = rows_accepted + rows_rejected`` (a CHECK in the ledger);
``rows_duplicate`` of the accepted reports were already stored, ``rows_linked`` were
identifier links (AIS static data). A file that cannot be read at all is recorded as
``rejected`` with its reason and no rows.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import logging
import zlib
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path, PurePath, PurePosixPath
from typing import Any, BinaryIO, cast

from renderer import db
from renderer.errors import InputError
from renderer.sources import Layout, check_layout, source_keys
from renderer.storage import Store, open_store
from renderer.tracks import bulk
from renderer.tracks.formats import FORMATS, Link, Reject, Report, guess_format, parse

__all__ = ["FileResult", "IngestReport", "SourceFile", "discover", "files", "ingest",
           "ingest_file", "rejects", "resolve_vessels"]

log = logging.getLogger(__name__)
CHUNK = 1 << 20


@dataclass(frozen=True)
class SourceFile:
    """One input file, its format and its ledger identity."""

    key: str
    """Absolute path, or the object's store URL (``s3://bucket/prefix/day1.csv``)."""
    size: int
    checksum: str
    """MD5 hex of the bytes as stored (for a store object, its etag: no download to skip
    a version already ingested)."""
    format: str
    path: Path | None = None
    store: Store | None = None
    store_key: str | None = None

    def open(self) -> BinaryIO:
        """The file's bytes, gunzipped when they start with the gzip magic."""
        if self.path is not None:
            with open(self.path, "rb") as probe:
                zipped = probe.read(2) == b"\x1f\x8b"
            # gzip.open owns the file it opens (a GzipFile given a fileobj leaves it open)
            return cast(BinaryIO, gzip.open(self.path, "rb")) if zipped \
                else open(self.path, "rb")
        assert self.store is not None and self.store_key is not None
        data = self.store.get(self.store_key)
        stream = io.BytesIO(data)
        return cast(BinaryIO, gzip.GzipFile(fileobj=stream)) if data[:2] == b"\x1f\x8b" \
            else stream


@dataclass(frozen=True)
class FileResult:
    """What happened to one file."""

    key: str
    status: str
    """consumed, rejected (whole file), skipped (already in the ledger) or raced (another
    process recorded the same version first)."""
    rows_read: int = 0
    rows_accepted: int = 0
    rows_rejected: int = 0
    rows_duplicate: int = 0
    rows_linked: int = 0
    reason: str | None = None
    days: tuple[date, ...] = ()


@dataclass
class IngestReport:
    files: list[FileResult] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(f.status == status for f in self.files)

    @property
    def rows(self) -> dict[str, int]:
        return {k: sum(getattr(f, k) for f in self.files)
                for k in ("rows_read", "rows_accepted", "rows_rejected", "rows_duplicate",
                          "rows_linked")}

    def as_dict(self) -> dict[str, Any]:
        return {"files": [asdict(f) for f in self.files], "rows": self.rows}


# -- finding files ---------------------------------------------------------------------------

def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _format_of(path: PurePath, fmt: str | None) -> str | None:
    if fmt is not None:
        return fmt
    try:
        return guess_format(path.name)
    except ValueError:
        return None


def _stored(url: str, fmt: str | None) -> list[SourceFile]:
    """The report files under a store prefix (``s3://bucket/prefix``, ``file:///path``)."""
    store = open_store(url)
    base = store.url.rstrip("/") + "/"
    chosen = [(o, f) for o in store.list("")
              if not any(part.startswith(".") for part in o.key.split("/"))
              and (f := _format_of(PurePosixPath(o.key), fmt))]
    if not chosen:  # empty: nothing to do; files of no known format: say so
        check_layout(url, source_keys(store), LAYOUT)
    return [SourceFile(base + o.key, o.size, o.etag, f, store=store, store_key=o.key)
            for o, f in chosen]


LAYOUT = Layout("*.csv, *.ndjson, *.nmea or *.fixes (gzip fine; any name with --format)",
                lambda key: _format_of(Path(key), None) is not None)


def discover(paths: Iterable[str], fmt: str | None = None) -> list[SourceFile]:
    """The files of some paths (files, folders searched recursively, or store prefixes such
    as ``s3://bucket/prefix``, for files whose format the name tells), in a stable order.
    ``fmt`` forces the format of every file."""
    if fmt is not None and fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}", f"use one of {', '.join(FORMATS)}")
    found: list[SourceFile] = []
    for text in paths:
        if "://" in text:
            found.extend(_stored(text, fmt))
            continue
        path = Path(text).expanduser()
        if path.is_dir():
            candidates = sorted(p for p in path.rglob("*") if p.is_file()
                                and not any(part.startswith(".")
                                            for part in p.relative_to(path).parts))
            chosen = [(p, f) for p in candidates if (f := _format_of(p, fmt))]
            if not chosen:  # empty: nothing to do; files of no known format: say so
                check_layout(str(path), source_keys(path), LAYOUT)
        elif path.is_file():
            guessed = _format_of(path, fmt)
            if guessed is None:
                raise InputError(f"cannot tell the format of {path.name}",
                                 f"give --format ({'|'.join(FORMATS)})")
            chosen = [(path, guessed)]
        else:
            raise InputError(f"{text} does not exist", "check the path")
        for p, f in chosen:
            p = p.resolve()
            found.append(SourceFile(str(p), p.stat().st_size, _md5(p), f, p))
    return found


# -- staging ---------------------------------------------------------------------------------

@dataclass
class _Staged:
    read: int = 0
    reports: int = 0
    linked: int = 0
    rejected: int = 0
    sets: dict[tuple[tuple[str, str], ...], int] = field(default_factory=dict)

    def set_no(self, ids: tuple[tuple[str, str], ...]) -> int:
        number = self.sets.get(ids)
        if number is None:
            number = self.sets[ids] = len(self.sets)
        return number


def _stage(conn: db.Connection, source: SourceFile) -> _Staged:
    """Parse the file into the staging tables; the counts and identifier sets. CSV and
    BinaryFixes are read in batches (:mod:`.bulk`); a CSV file that is not one row per line
    is read again row by row, the batches' rows undone by a savepoint."""
    if source.format in ("csv", "fixes"):
        try:
            with conn.transaction():
                return _stage_bulk(conn, source)
        except bulk.NotBulk:
            log.info("%s: not one row per line throughout, reading it row by row", source.key)
    return _stage_rows(conn, source)


def _stage_bulk(conn: db.Connection, source: SourceFile) -> _Staged:
    staged = _Staged()
    rejected: list[tuple[int, str, str]] = []
    with source.open() as stream, conn.cursor() as cur, cur.copy(
            db.query("tracks.copy_stage_csv")) as copy:
        batches = (bulk.csv_batches(stream, staged.set_no) if source.format == "csv"
                   else bulk.fixes_batches(stream, staged.set_no))
        for batch in batches:
            staged.read += batch.read
            staged.reports += batch.table.num_rows
            rejected.extend((line, item.reason, item.raw) for line, item in batch.items
                            if isinstance(item, Reject))
            if batch.table.num_rows:
                copy.write(bulk.write_csv(batch.table))
    staged.rejected = len(rejected)
    _copy_rejects(conn, rejected)
    return staged


def _stage_rows(conn: db.Connection, source: SourceFile) -> _Staged:
    staged = _Staged()
    rejected: list[tuple[int, str, str]] = []
    with source.open() as stream, conn.cursor() as cur, cur.copy(
            db.query("tracks.copy_stage")) as copy:
        for line, item in parse(source.format, stream):
            staged.read += 1
            if isinstance(item, Report):
                staged.reports += 1
                copy.write_row((
                    staged.set_no(item.ids), item.time_ms, item.lat, item.lon,
                    item.latency, bulk.tenths(item.sog), bulk.tenths(item.cog),
                    bulk.tenths(item.heading),
                    item.nav_status, item.rot, item.source, item.ais_class))
            elif isinstance(item, Link):
                staged.linked += 1
                staged.set_no(item.ids)
            else:
                assert isinstance(item, Reject)
                staged.rejected += 1
                rejected.append((line, item.reason, item.raw))
    _copy_rejects(conn, rejected)
    return staged


def _copy_rejects(conn: db.Connection, rejected: list[tuple[int, str, str]]) -> None:
    if rejected:
        with conn.cursor() as cur, cur.copy(db.query("tracks.copy_stage_rejects")) as copy:
            for row in rejected:
                copy.write_row(row)


# -- identities ------------------------------------------------------------------------------

def _find(parent: dict[Any, Any], x: Any) -> Any:
    while parent.setdefault(x, x) != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x


def resolve_vessels(conn: db.Connection,
                    sets: dict[tuple[tuple[str, str], ...], int]) -> dict[int, int]:
    """set number -> vessel id, for identifier sets: identifiers that appear together name
    one vessel (union-find over this file's sets and the stored identifiers); vessels found
    to be one are merged into the oldest, new identifiers are recorded. Call under the
    ``lock_identities`` lock."""
    idents = sorted({pair for ids in sets for pair in ids})
    known: dict[tuple[str, str], int] = {}
    if idents:
        rows = conn.execute(db.query("tracks.known_identifiers"), {
            "keys": [k for k, _ in idents], "values": [v for _, v in idents]}).fetchall()
        known = {(r["key"], r["value"]): r["vessel_id"] for r in rows}
    parent: dict[Any, Any] = {}
    for ids in sets:
        for pair in ids[1:]:
            parent[_find(parent, ids[0])] = _find(parent, pair)
    for pair, vessel in known.items():
        parent[_find(parent, pair)] = _find(parent, ("#vessel", vessel))
    groups: dict[Any, list[tuple[str, str]]] = {}
    for pair in idents:
        groups.setdefault(_find(parent, pair), []).append(pair)
    vessel_of_root: dict[Any, int] = {}
    fresh = [root for root, pairs in groups.items()
             if not any(p in known for p in pairs)]
    if fresh:
        made = conn.execute(db.query("tracks.new_vessels"), {"n": len(fresh)}).fetchall()
        vessel_of_root.update(zip(fresh, (r["vessel_id"] for r in made), strict=True))
    for root, pairs in groups.items():
        if root in vessel_of_root:
            continue
        vessels = sorted({known[p] for p in pairs if p in known})
        if len(vessels) > 1:
            merge = {"into": vessels[0], "from": vessels[1:]}
            moved = db.scalar(conn, "tracks.merge_vessels", merge)
            conn.execute(db.query("tracks.merge_summary"), merge)
            log.info("vessels %s are one: merged into %d (%d reports moved)", vessels[1:],
                     vessels[0], moved)
        vessel_of_root[root] = vessels[0]
    new = [(p, vessel_of_root[_find(parent, p)]) for p in idents
           if known.get(p) != vessel_of_root[_find(parent, p)]]
    if new:
        conn.execute(db.query("tracks.add_identifiers"), {
            "keys": [k for (k, _), _ in new], "values": [v for (_, v), _ in new],
            "vessels": [vid for _, vid in new]})
    return {number: vessel_of_root[_find(parent, ids[0])] for ids, number in sets.items()}


# -- one file --------------------------------------------------------------------------------

def _ledger(source: SourceFile, status: str, reason: str | None = None,
            **counts: Any) -> dict[str, Any]:
    row = {"key": source.key, "size": source.size, "checksum": source.checksum,
           "format": source.format, "status": status, "reason": reason, "rows_read": 0,
           "rows_accepted": 0, "rows_rejected": 0, "rows_linked": 0, "first_time": None,
           "last_time": None}
    row.update(counts)
    return row


def _store(conn: db.Connection, params: dict[str, Any], days: list[date]) -> int:
    """Store the staged reports (in the ingest's transaction); how many were stored. Days
    without a partition are loaded bare and attached (indexes built after the load), the
    others inserted through the parent (indexes kept up row by row). The hourly summary
    follows in the same transaction: built whole for a new day, recomputed for the
    (vessel, hour) pairs the others touch."""
    bulk_days: dict[date, str] = {}
    for day in days:
        part = db.scalar(conn, "tracks.bulk_day", {"day": day})
        if part is not None:
            bulk_days[day] = part
    stored = 0
    if len(bulk_days) < len(days):
        for day in days:
            if day not in bulk_days:  # a day stored before the summary existed gets one
                conn.execute(db.query("tracks.summarise_day"), {"day": day})
        stored += db.scalar(conn, "tracks.insert_reports",
                            {**params, "bulk_days": list(bulk_days)})
        conn.execute(db.query("tracks.summary_staged"), {**params, "bulk_days": list(bulk_days)})
    for day, part in bulk_days.items():
        load = db.sql.SQL(db.query("tracks.load_day")).format(part=db.sql.Identifier(part))
        row = conn.execute(load, {**params, "day": day}).fetchone()
        assert row is not None
        stored += row["stored"]
        conn.execute(db.query("tracks.attach_day"), {"day": day})
        conn.execute(db.query("tracks.summarise_day"), {"day": day})
    return stored


def ingest_file(conn: db.Connection, source: SourceFile) -> FileResult:
    """Ingest one file; ``conn`` must be in autocommit mode (transactions are made here)."""
    if conn.execute(db.query("tracks.known_file"), {
            "key": source.key, "size": source.size, "checksum": source.checksum}).fetchone():
        return FileResult(source.key, "skipped")
    conn.execute(db.query("tracks.reset_stage"))
    try:
        with conn.transaction():
            conn.execute(db.query("tracks.create_stage"))
            conn.execute(db.query("tracks.create_stage_rejects"))
            staged = _stage(conn, source)
            summary = db.one(conn, "tracks.stage_summary")
    except (OSError, EOFError, zlib.error) as exc:  # unreadable file or gzip stream
        reason = f"unreadable: {exc}"
        with conn.transaction():
            row = conn.execute(db.query("tracks.record_file"),
                               _ledger(source, "rejected", reason)).fetchone()
            if row is not None:
                conn.execute(db.query("tracks.reject_file"), {"file_id": row["id"],
                                                              "reason": reason})
        log.warning("%s: rejected: %s", source.key, reason)
        return FileResult(source.key, "rejected" if row else "raced", reason=reason)
    accepted = staged.reports + staged.linked
    with conn.transaction():
        row = conn.execute(db.query("tracks.record_file"), _ledger(
            source, "consumed", rows_read=staged.read, rows_accepted=accepted,
            rows_rejected=staged.rejected, rows_linked=staged.linked,
            first_time=summary["first_time"], last_time=summary["last_time"])).fetchone()
        if row is None:
            return FileResult(source.key, "raced")
        file_id = row["id"]
        conn.execute(db.query("tracks.lock_identities"))
        vessels = resolve_vessels(conn, staged.sets)
        stored = _store(conn, {"file_id": file_id, "set_nos": list(vessels),
                               "vessels": list(vessels.values())}, sorted(summary["days"]))
        duplicates = staged.reports - stored
        if duplicates:
            conn.execute(db.query("tracks.record_duplicates"),
                         {"file_id": file_id, "duplicates": duplicates})
        if staged.rejected:
            conn.execute(db.query("tracks.record_rejects"), {"file_id": file_id})
    log.info("%s: %d rows, %d accepted (%d duplicates, %d links), %d rejected", source.key,
             staged.read, accepted, duplicates, staged.linked, staged.rejected)
    return FileResult(source.key, "consumed", staged.read, accepted, staged.rejected,
                      duplicates, staged.linked, days=tuple(sorted(summary["days"])))


def ingest_sources(database: db.Database, sources: Iterable[SourceFile],
                   progress: Callable[[FileResult], None] | None = None) -> IngestReport:
    """Ingest files one by one (each file commits on its own)."""
    report = IngestReport()
    with database.connect(autocommit=True) as conn:
        for source in sources:
            result = ingest_file(conn, source)
            report.files.append(result)
            if progress is not None:
                progress(result)
    return report


def ingest(database: db.Database, paths: Iterable[str], fmt: str | None = None,
           progress: Callable[[FileResult], None] | None = None) -> IngestReport:
    """Ingest the files of local paths, folders or store prefixes (see :func:`discover`)."""
    return ingest_sources(database, discover(paths, fmt), progress)


def rejects(conn: db.Connection, like: str | None = None,
            limit: int = 100) -> list[dict[str, Any]]:
    """Rejected rows (line > 0) and wholly rejected files (line 0) of files matching ``like``."""
    return conn.execute(db.query("tracks.rejects"), {"like": like, "limit": limit}).fetchall()


def files(conn: db.Connection, like: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """The ledger, newest first."""
    return conn.execute(db.query("tracks.files"), {"like": like, "limit": limit}).fetchall()
