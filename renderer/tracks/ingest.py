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

import logging
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path, PurePath
from typing import Any

from renderer import db, inputs
from renderer.errors import InputError
from renderer.inputs import SourceFile
from renderer.sources import Layout
from renderer.tracks import bulk
from renderer.tracks.formats import FORMATS, Link, Reject, Report, guess_format, parse

__all__ = ["FileResult", "IngestReport", "SourceFile", "discover", "files", "ingest",
           "ingest_file", "rejects", "resolve_vessels"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FileResult(inputs.FileResult):
    """What happened to one file: ``rows_duplicate`` of its accepted reports were stored
    already, ``rows_linked`` were identifier links."""

    COUNTS = (*inputs.FileResult.COUNTS, "rows_duplicate", "rows_linked")

    rows_duplicate: int = 0
    rows_linked: int = 0


IngestReport = inputs.IngestReport[FileResult]


def _report() -> IngestReport:
    return IngestReport(FileResult.COUNTS)


# -- finding files ---------------------------------------------------------------------------

def _format_of(path: PurePath, fmt: str | None) -> str | None:
    if fmt is not None:
        return fmt
    try:
        return guess_format(path.name)
    except ValueError:
        return None


LAYOUT = Layout("*.csv, *.ndjson, *.nmea or *.fixes (gzip fine; any name with --format)",
                lambda key: _format_of(Path(key), None) is not None)


def discover(paths: Iterable[str], fmt: str | None = None, *,
             follow_symlinks: bool = False) -> list[SourceFile]:
    """The files of some paths (files, folders searched recursively, or store prefixes such
    as ``s3://bucket/prefix``, for files whose format the name tells), in a stable order;
    links as :mod:`renderer.inputs` says. ``fmt`` forces the format of every file."""
    if fmt is not None and fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}", f"use one of {', '.join(FORMATS)}")

    def named(path: Path) -> str:
        guessed = _format_of(path, fmt)
        if guessed is None:
            raise InputError(f"cannot tell the format of {path.name}",
                             f"give --format ({'|'.join(FORMATS)})")
        return guessed

    return inputs.discover(paths, lambda name: _format_of(PurePath(name), fmt), LAYOUT, named,
                           follow_symlinks=follow_symlinks)


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
    with source.open_plain() as stream, conn.cursor() as cur, cur.copy(
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
    with source.open_plain() as stream, conn.cursor() as cur, cur.copy(
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
                      rows_duplicate=duplicates, rows_linked=staged.linked,
                      days=tuple(sorted(summary["days"])))


def ingest_sources(database: db.Database, sources: Iterable[SourceFile],
                   progress: Callable[[FileResult], None] | None = None) -> IngestReport:
    """Ingest files one by one (each file commits on its own)."""
    report = _report()
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
