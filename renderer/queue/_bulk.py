"""Set-based enqueue: millions of items streamed by COPY, a chunk per statement.

:func:`renderer.queue.enqueue_many` sends each chunk as nine parallel array parameters;
here a chunk goes by binary ``COPY`` (``sql/queue_bulk.sql``). The common case, a chunk of
keys new to the queue, is copied straight into ``work_queue`` under a savepoint: the
unique index on (kind, key) refuses a key already queued or given twice, and then that
chunk and the rest of the call go the staged way: ``COPY`` into a staging table, the new
keys inserted by one INSERT .. SELECT and the others aggregated server-side into the upsert
every enqueue goes through, ``renderer.queue_enqueue_many_v4``. Both ways keep the rules for
duplicates, reruns, fingerprints, paused and throttled sets (tests/test_queue_bulk.py);
benchmarks/queue_enqueue.py and benchmarks/queue_scale.py measure them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from itertools import chain, islice
from operator import itemgetter
from typing import Any

from renderer.db import Connection, query, sql, tuple_row
from renderer.errors import AlreadyExists
from renderer.queue._registry import PRIORITY_BATCH, NewItem
from renderer.queue._verbs import enqueue_many

CHUNK = 200_000  # items per upsert: a chunk's arrays take ~100 bytes an item of server memory
SMALL = 2_000  # fewer items go by enqueue_many: a staging table costs catalog rows each time
PROBE = 20_000  # the first chunk tried straight in: a refusal wastes at most this much
# binary COPY: the payload is sent as jsonb's binary form (version 1, then the text)
STAGED_TYPES = ["text", "text", "bytea", "text", "text", "int4", "text", "timestamptz", "bool"]
# the columns a chunk copied straight in may send, by their place in a Row, with their type;
# a column every row of the chunk leaves at its default is not sent (copy_new's columns)
NEW_COLUMNS = {"kind": (0, "text"), "key": (1, "text"), "payload": (2, "bytea"),
               "fingerprint": (3, "text"), "set_id": (4, "text"), "priority": (5, "int4"),
               "grp": (6, "text"), "run_after": (7, "timestamptz"),
               "state": (-1, "text")}  # the state is the set's, not a Row's
OPTIONAL = {"payload": None, "fingerprint": None, "set_id": None, "priority": 0, "grp": None,
            "run_after": None}  # the columns sent only when a row differs from this default
EMPTY = b"\x01{}"
KEY_INDEX = "work_queue_kind_key"
_KIND_KEY = itemgetter(0, 1)

Row = tuple[Any, ...]  # kind, key, payload (jsonb binary), fingerprint, set, priority, group,
#                        run_after, force


def _jsonb(payload: dict[str, Any] | None) -> bytes | None:
    return b"\x01" + json.dumps(payload).encode() if payload else None


def _row(item: NewItem) -> Row:
    return (item.kind, item.key, _jsonb(item.payload), item.fingerprint, item.set_id,
            item.priority, item.group, item.run_after, item.force)


def enqueue_bulk(conn: Connection, items: Iterable[NewItem], *, chunk: int = CHUNK,
                 small: int = SMALL) -> int:
    """Enqueue ``items`` (any number, from a generator) with the semantics of
    :func:`renderer.queue.enqueue`; returns how many rows were inserted or changed, as
    :func:`renderer.queue.enqueue_many` does. Joins the caller's transaction (or makes one
    of its own on an autocommit connection): either every chunk is enqueued or none. Fewer
    than ``small`` items go through :func:`renderer.queue.enqueue_many` (the same outcome),
    so a caller may use this whatever its count.

    Example
    -------
    >>> enqueue_bulk(conn, (NewItem("tile", f"12/{x}/{y}") for x in range(4096)
    ...                     for y in range(4096)))
    16777216
    """
    source = iter(items)
    head = list(islice(source, small))
    if len(head) < small:
        return enqueue_many(conn, head)
    return _stage(conn, (_row(i) for i in chain(head, source)), chunk)


def enqueue_keys(conn: Connection, kind: str, keys: Iterable[str], *,
                 payload: dict[str, Any] | None = None, set_id: str | None = None,
                 priority: int = PRIORITY_BATCH, group: str | None = None,
                 run_after: datetime | None = None, force: bool = False,
                 chunk: int = CHUNK) -> int:
    """:func:`enqueue_bulk` of items of one kind that differ only by key (a tile pyramid, a
    census): the shared fields are converted once, not per item."""
    body = _jsonb(payload)
    return _stage(conn, ((kind, key, body, None, set_id, priority, group, run_after, force)
                         for key in keys), chunk)


def _stage(conn: Connection, rows: Iterator[Row], chunk: int) -> int:
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1, not {chunk}")
    total = 0
    direct = True  # until a chunk is refused: then the rest of the call goes staged
    staging = False
    with conn.transaction(), conn.cursor(row_factory=tuple_row) as cur:
        found = cur.execute(query("queue_bulk.now")).fetchone()
        now = found[0] if found else None
        size = min(chunk, PROBE)
        while batch := list(islice(rows, size)):
            size = chunk
            if direct:
                if _copy_new(conn, cur, batch, now):
                    total += len(batch)
                    continue
                direct = False
            if not staging:
                cur.execute(query("queue_bulk.create_staging"))
                staging = True
            total += _upsert_staged(cur, batch)
        if staging:
            cur.execute(query("queue_bulk.drop_staging"))
    return total


def _copy_new(conn: Connection, cur: Any, batch: list[Row], now: Any) -> bool:
    """Copy ``batch`` straight into work_queue if every key is new to it and unique in it;
    False (nothing written) if the unique index refused one."""
    # in (kind, key) order, as the staged insert gives ids: each new entry of the (kind, key)
    # index lands beside the last one, and two sessions copying the same keys wait on each
    # other in one order (no deadlock; the second is refused when the first commits)
    batch.sort(key=_KIND_KEY)
    ids = sorted({r[4] for r in batch if r[4] is not None})
    state = dict(cur.execute(query("queue_bulk.set_states"), {"ids": ids}).fetchall()) \
        if ids else {}
    names, rows = _new_columns(batch, state, now)
    statement = sql.SQL(query("queue_bulk.copy_new")).format(
        columns=sql.SQL(", ").join(map(sql.Identifier, names)))
    try:
        with conn.transaction(), cur.copy(statement) as copy:
            copy.set_types([NEW_COLUMNS[n][1] for n in names])
            for row in rows:
                copy.write_row(row)
    except Exception as exc:  # AlreadyExists; the driver's own class on a bare driver connection
        if not _refused_key(exc):
            raise
        return False
    return True


def _new_columns(batch: list[Row], state: dict[str, str],
                 now: Any) -> tuple[list[str], Iterator[tuple[Any, ...]]]:
    """The columns of work_queue a chunk sends and its rows of them. A column all of whose
    rows hold its default (no payload, fingerprint, set or group, priority 0, run_after not
    given, state pending) is left to the default: a field fewer to send and to parse per row.
    A payload or run_after given to some rows only is filled in for the others, as the
    defaults would fill it ('{}', the transaction's now()); the state comes from the set."""
    sent = ["kind", "key"]
    filled: list[tuple[str, Callable[[Row], Any]]] = []
    for name, default in OPTIONAL.items():
        at = NEW_COLUMNS[name][0]
        left = list(map(itemgetter(at), batch)).count(default)
        if left == len(batch):
            continue
        if left and name in ("payload", "run_after"):
            fill = EMPTY if name == "payload" else now
            filled.append((name, _filler(at, fill)))
        else:
            sent.append(name)
    if any(s != "pending" for s in state.values()):
        filled.append(("state", lambda r: state.get(r[4], "pending")))
    pick = itemgetter(*(NEW_COLUMNS[n][0] for n in sent))
    if not filled:
        return sent, map(pick, batch)
    fills = [f for _, f in filled]
    return sent + [n for n, _ in filled], (pick(r) + tuple([f(r) for f in fills])
                                           for r in batch)


def _filler(at: int, fill: Any) -> Callable[[Row], Any]:
    return lambda row: fill if row[at] is None else row[at]


def _refused_key(exc: Exception) -> bool:
    """Whether ``exc`` is the unique index on (kind, key) refusing a row, as the connector
    translates it (``AlreadyExists``) or as a connection not made by it raises it."""
    if isinstance(exc, AlreadyExists):
        return exc.constraint == KEY_INDEX
    diag = getattr(exc, "diag", None)
    return (getattr(exc, "sqlstate", None) == "23505"
            and getattr(diag, "constraint_name", None) == KEY_INDEX)


def _upsert_staged(cur: Any, batch: list[Row]) -> int:
    total = 0
    with cur.copy(query("queue_bulk.copy_staging")) as copy:
        copy.set_types(STAGED_TYPES)
        for row in batch:
            copy.write_row(row)
    for force in (False, True):
        for step in ("queue_bulk.insert_new", "queue_bulk.enqueue_staged"):
            found = cur.execute(query(step), {"force": force}).fetchone()
            total += int(found[0]) if found else 0
    cur.execute(query("queue_bulk.clear_staging"))
    return total
