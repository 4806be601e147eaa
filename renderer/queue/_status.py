"""Read-only views of the queue: status, history, failures. Cheap at any size: counts come
from the maintained counters, never from COUNT(*) over ``work_queue``; the kinds and the
total from the per-kind rows (migration 0027), so their cost does not grow with the sets
kept; set rows cost one index probe per set asked for."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from renderer.db import Connection
from renderer.queue._registry import STATES
from renderer.queue._verbs import _rows, list_sets

COUNT_FIELDS = STATES  # the counters have one column per state


def _entry(row: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {f: int(row[f]) for f in COUNT_FIELDS}
    entry["throughput_per_s"] = round(float(row["rate_per_s"] or 0), 3)
    entry["eta_s"] = None if row["eta_s"] is None else round(float(row["eta_s"]), 1)
    entry["oldest_pending_s"] = (None if row["oldest_pending_s"] is None
                                 else round(float(row["oldest_pending_s"]), 1))
    if row.get("state"):
        entry["state"] = row["state"]
    return entry


def status(conn: Connection, *, window_seconds: float = 300, alive_seconds: float = 60,
           sets: Sequence[str] | None = None) -> dict[str, Any]:
    """Counts per state, throughput (completions per second over ``window_seconds``), ETA and
    oldest pending age, per kind, per set and in total; and the workers alive (heartbeat
    within ``alive_seconds``). ``sets`` limits the sets reported (a page of them; ``[]``:
    none), which bounds the cost by the page, not by the sets on record (``None``, every
    set, grows with them: :func:`shown_sets` picks the few an operator looks at).

    Example
    -------
    >>> status(conn)["kinds"]["histogram"]["pending"]
    1200
    """
    rows = _rows(conn, "queue.status", {
        "window": window_seconds, "set_ids": None if sets is None else list(sets)})
    result: dict[str, Any] = {"at": datetime.now(UTC).isoformat(timespec="seconds"),
                              "total": {}, "kinds": {}, "sets": {}}
    for row in rows:
        if row["scope"] == "total":
            result["total"] = _entry(row)
        else:
            result[f"{row['scope']}s"][row["name"]] = _entry(row)
    workers = []
    for w in _rows(conn, "queue.workers", {"alive_seconds": alive_seconds}):
        info = w["info"] or {}
        workers.append({"owner": w["owner"], "host": info.get("host"), "pid": info.get("pid"),
                        "kinds": info.get("kinds"), "done": info.get("done", 0),
                        "failed": info.get("failed", 0),
                        "started_at": w["started_at"].isoformat(timespec="seconds"),
                        "silent_s": round(float(w["silent_s"]), 1)})
    result["workers"] = workers
    result["workers_alive"] = len(workers)
    return result


def open_sets(conn: Connection, limit: int) -> list[str]:
    """The newest ``limit`` sets with pending, held or running items, newest first."""
    return [r["id"] for r in _rows(conn, "queue.open_sets", {"limit": limit})]


def shown_sets(conn: Connection, limit: int) -> tuple[list[str], bool]:
    """What ``queue status`` shows of the sets: the open ones, then the newest others, at
    most ``limit`` in all; and whether open sets were left out. Index reads only: the
    cost follows ``limit``, not the sets kept.

    Example
    -------
    >>> shown_sets(conn, 20)
    (['weekly-2026-W49', 'weekly-2026-W48', ...], False)
    """
    opened = open_sets(conn, limit + 1)
    more = len(opened) > limit
    shown = opened[:limit]
    if len(shown) < limit:
        newest = list_sets(conn, limit=limit)
        shown += [s["id"] for s in newest if s["id"] not in shown][:limit - len(shown)]
    return shown, more


def item_history(conn: Connection, kind: str, key: str) -> dict[str, Any] | None:
    """The item (kind, key) as it is now, with its recorded attempts (failures with type,
    message and traceback; lease expiries; refused late completions); None if unknown."""
    rows = _rows(conn, "queue.item", {"kind": kind, "key": key})
    if not rows:
        return None
    item = dict(rows[0])
    item["attempts"] = _rows(conn, "queue.item_attempts", {"kind": kind, "key": key})
    return item


def list_failed(conn: Connection, kind: str | None = None,
                set_id: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
    """Failed items (newest first), optionally of one kind and/or set."""
    return _rows(conn, "queue.list_failed", {"kind": kind, "set_id": set_id, "limit": limit})


def remaining(conn: Connection, kinds: list[str]) -> int:
    """Pending plus running items of ``kinds``, from the counters."""
    rows = _rows(conn, "queue.remaining", {"kinds": kinds})
    return int(rows[0]["n"]) if rows else 0


def idle_state(conn: Connection, kinds: list[str]) -> dict[str, bool]:
    """``claimable``: something of ``kinds`` can be claimed now; ``busy``: something is
    pending (now or later) or running."""
    return _rows(conn, "queue.idle", {"kinds": kinds})[0]
