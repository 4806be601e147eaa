"""``sensors ingest``: loop-detector CSV files -> sensors_raw, with a ledger and rejects.

Per file, in this order:

1. the ledger is asked for (key, size, checksum): a version seen before is skipped (no-op);
2. the file is read and validated in batches (:mod:`.staging`, :mod:`.validate`): each row is
   accepted and typed (kept in memory, as Arrow columns), or gets a reason (a temporary
   table); counts, time span and days are computed from the accepted columns;
3. the raw day partitions it needs are made in a short transaction of their own (attaching a
   partition must not wait behind, or hold up, a long transaction);
4. one transaction records the file in the ledger, removes the rows an older version of the
   same key still owns, inserts the accepted rows (sorted by the key, one binary COPY
   straight into sensors_raw, :mod:`.rows`; if a row is already there or twice in the file,
   that COPY is undone, the rows go through the temporary table, the file's duplicates are
   rejected and the rows upserted: a later file wins), keeps the rejects and marks the days
   whose enrichment the change alters (``sensors_days.raw_version``);
5. in the same transaction, a day the file brings fresh (no raw row stored before it) is
   enriched from the rows in memory (:mod:`.fused`), so its day item has nothing to do.

Counts always add up: ``rows_read = rows_accepted + rows_rejected`` (a CHECK in the ledger).
Blank lines are not rows. A file without a usable header or that cannot be read is recorded
as ``rejected`` with the reason and no rows. Run ``sensors etl`` afterwards for the days
(and the export).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from renderer import inputs
from renderer.db import Connection, Database, one, query
from renderer.errors import AlreadyExists
from renderer.sensors.files import FileUnreadable, SourceFile, discover
from renderer.sensors.fused import enrich_fresh_days, fresh_days
from renderer.sensors.rows import raw_stream, sort_by_key
from renderer.sensors.staging import BadHeader, Staged, copy_accepted, stage

__all__ = ["FileResult", "IngestReport", "ingest", "ingest_file", "ingest_sources", "rejects"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FileResult(inputs.FileResult):
    """What happened to one file; ``days`` are the days marked for recomputation by it."""

    enriched: tuple[date, ...] = ()
    """Of those, the days it brought fresh and enriched itself (:mod:`.fused`)."""


IngestReport = inputs.IngestReport[FileResult]


def _q(name: str) -> str:
    return query(f"sensors_ingest.{name}")


def _record(conn: Connection, source: SourceFile, status: str,
            reason: str | None = None, summary: dict[str, Any] | None = None) -> int | None:
    summary = summary or {"rows_read": 0, "rows_accepted": 0, "rows_rejected": 0,
                          "first_record": None, "last_record": None}
    row = conn.execute(_q("record_file"), {
        "key": source.key, "size": source.size, "checksum": source.checksum,
        "status": status, "reason": reason, **{k: summary[k] for k in (
            "rows_read", "rows_accepted", "rows_rejected", "first_record", "last_record")},
    }).fetchone()
    return None if row is None else int(row["id"])


def _reject_file(conn: Connection, source: SourceFile, reason: str) -> FileResult:
    with conn.transaction():
        file_id = _record(conn, source, "rejected", reason)
    log.warning("%s: rejected: %s", source.key, reason)
    return FileResult(source.key, "rejected" if file_id else "raced", reason=reason)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DAY_US = 86_400_000_000


def _micros(table: pa.Table) -> np.ndarray:
    return pc.cast(table.column("recordtimestamp"), pa.int64()).to_numpy()


def _time(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def summarise(staged: Staged) -> dict[str, Any]:
    """The ledger's counts and time span, and the UTC days of the accepted rows."""
    micros = _micros(staged.accepted)
    accepted = len(micros)
    return {
        "rows_read": accepted + staged.rejected, "rows_accepted": accepted,
        "rows_rejected": staged.rejected,
        "first_record": _time(int(micros.min())) if accepted else None,
        "last_record": _time(int(micros.max())) if accepted else None,
        "days": [(_EPOCH + timedelta(days=int(d))).date()
                 for d in np.unique(micros // _DAY_US)],
    }


def _changed(table: pa.Table) -> list[tuple[int, datetime]]:
    """Each detector's last accepted row per UTC day: all that ``mark_days`` needs of them."""
    if not table.num_rows:
        return []
    micros = _micros(table)
    keys = pa.table({"uniqueid": table.column("uniqueid"), "day": micros // _DAY_US,
                     "t": micros})
    last = keys.group_by(["uniqueid", "day"]).aggregate([("t", "max")])
    return [(int(u), _time(int(t))) for u, t in zip(
        last.column("uniqueid").to_numpy(), last.column("t_max").to_numpy(), strict=True)]


def _insert(conn: Connection, staged: Staged, params: dict[str, Any],
            summary: dict[str, Any]) -> tuple[dict[str, Any], pa.Table | None]:
    """The accepted rows into sensors_raw; the ledger's counts after it, and the rows sorted
    by the key when they went in as they are (None: through the upsert)."""
    counts = {k: summary[k] for k in ("rows_read", "rows_accepted", "rows_rejected")}
    with conn.cursor() as cur, cur.copy(_q("copy_changed")) as copy:
        for row in _changed(staged.accepted):
            copy.write_row(row)
    if not staged.accepted.num_rows:
        return counts, None
    rows = sort_by_key(staged.accepted)
    try:
        with conn.transaction(), conn.cursor() as cur, cur.copy(_q("copy_raw")) as copy:
            for block in raw_stream(rows, params["file_id"]):
                copy.write(block)
    except AlreadyExists:  # rows seen before, or twice in this file
        copy_accepted(conn, staged.accepted)
        conn.execute(_q("reject_duplicates"), {})
        counts = one(conn, "sensors_ingest.recount", params)
        conn.execute(_q("upsert_raw"), params)
        return counts, None
    return counts, rows


def _apply(conn: Connection, source: SourceFile, staged: Staged,
           summary: dict[str, Any], enrich: bool) -> FileResult:
    """Ledger, supersede, upsert, rejects, day marks and the fresh days enriched (with
    ``enrich``, :mod:`.fused`): one transaction."""
    with conn.transaction():
        conn.execute(_q("forget_superseded"), {"key": source.key, "size": source.size,
                                               "checksum": source.checksum})
        file_id = _record(conn, source, "consumed", None, summary)
        if file_id is None:
            return FileResult(source.key, "raced")
        params: dict[str, Any] = {"file_id": file_id, "key": source.key}
        conn.execute(_q("create_changed"), {})
        older = conn.execute(_q("supersede"), params).fetchall()
        spans = [(o["first_record"], o["last_record"]) for o in older if o["first_record"]]
        if spans:
            conn.execute(_q("remove_superseded"), {
                "file_ids": [o["id"] for o in older],
                "first": min(s[0] for s in spans), "last": max(s[1] for s in spans)})
        fresh = fresh_days(conn, summary["days"]) if enrich else []
        counts, rows = _insert(conn, staged, params, summary)
        conn.execute(_q("record_rejects"), params)
        days = [r["day"] for r in conn.execute(_q("mark_days"), {}).fetchall()]
        if fresh and rows is not None:
            enrich_fresh_days(conn, rows, fresh)
    return FileResult(source.key, "consumed", counts["rows_read"], counts["rows_accepted"],
                      counts["rows_rejected"], days=tuple(sorted(days)),
                      enriched=tuple(fresh) if rows is not None else ())


def ingest_file(conn: Connection, source: SourceFile, *, enrich: bool = True) -> FileResult:
    """Ingest one file; ``conn`` must be in autocommit mode (transactions are made here).
    ``enrich``: enrich the days the file brings fresh in the same transaction."""
    if conn.execute(_q("known_file"), {"key": source.key, "size": source.size,
                                       "checksum": source.checksum}).fetchone():
        return FileResult(source.key, "skipped")
    conn.execute(_q("reset_stage"), {})
    conn.execute(_q("utc"), {})
    try:
        with conn.transaction():
            conn.execute(_q("create_checked"), {})
            staged = stage(conn, source)
        summary = summarise(staged)
    except (BadHeader, FileUnreadable) as exc:
        return _reject_file(conn, source, str(exc))
    if summary["days"]:
        with conn.transaction():
            conn.execute(_q("ensure_partitions"), {"days": summary["days"]})
    result = _apply(conn, source, staged, summary, enrich)
    if result.status == "consumed":
        log.info("%s: %d rows, %d accepted, %d rejected", source.key, result.rows_read,
                 result.rows_accepted, result.rows_rejected)
    return result


def ingest_sources(db: Database, sources: Iterable[SourceFile],
                   progress: Callable[[FileResult], None] | None = None, *,
                   enrich: bool = True) -> IngestReport:
    """Ingest files one by one (each file commits on its own); ``enrich`` as
    :func:`ingest_file`."""
    report = IngestReport()
    with db.connect(autocommit=True) as conn:
        conn.execute(_q("session"), {})
        for source in sources:
            result = ingest_file(conn, source, enrich=enrich)
            report.files.append(result)
            if progress is not None:
                progress(result)
    return report


def ingest(db: Database, paths: Iterable[str],
           progress: Callable[[FileResult], None] | None = None, *,
           follow_symlinks: bool = False, enrich: bool = True) -> IngestReport:
    """Ingest the files of local paths, folders or store URLs (see :func:`.files.discover`);
    ``enrich`` as :func:`ingest_file`."""
    return ingest_sources(db, discover(paths, follow_symlinks=follow_symlinks), progress,
                          enrich=enrich)


def rejects(conn: Connection, like: str | None = None,
            limit: int = 100) -> list[dict[str, Any]]:
    """Rejected rows (line > 0) and wholly rejected files (line 0) of files matching ``like``."""
    return conn.execute(_q("rejects"), {"like": like, "limit": limit}).fetchall()


def files(conn: Connection, like: str | None = None,
          limit: int = 100) -> list[dict[str, Any]]:
    """The ledger, newest first."""
    return conn.execute(_q("files"), {"like": like, "limit": limit}).fetchall()
