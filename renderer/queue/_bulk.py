"""Set-based enqueue: millions of items streamed by COPY, upserted a chunk per statement.

:func:`renderer.queue.enqueue_many` sends each chunk as nine parallel array parameters;
here the items go through ``COPY`` into a staging table (``sql/queue_bulk.sql``); keys new
to the queue are inserted by one INSERT .. SELECT, and the rest are aggregated server-side
into the upsert every enqueue goes through, ``renderer.queue_enqueue_many_v4``: the same
rules for duplicates, reruns, fingerprints and sets (tests/test_queue_bulk.py), at a
fraction of the cost per item (benchmarks/queue_scale.py measures both).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import datetime
from itertools import chain, islice
from typing import Any

from renderer.db import Connection, query, tuple_row
from renderer.queue._registry import PRIORITY_BATCH, NewItem
from renderer.queue._verbs import enqueue_many

CHUNK = 200_000  # items per upsert: a chunk's arrays take ~100 bytes an item of server memory
SMALL = 2_000  # fewer items go by enqueue_many: a staging table costs catalog rows each time


def _row(item: NewItem) -> tuple[Any, ...]:
    payload = json.dumps(item.payload) if item.payload else None
    return (item.kind, item.key, payload, item.fingerprint, item.set_id, item.priority,
            item.group, item.run_after, item.force)


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
    body = json.dumps(payload) if payload else None
    return _stage(conn, ((kind, key, body, None, set_id, priority, group, run_after, force)
                         for key in keys), chunk)


def _stage(conn: Connection, rows: Iterator[tuple[Any, ...]], chunk: int) -> int:
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1, not {chunk}")
    total = 0
    with conn.transaction():
        conn.execute(query("queue_bulk.create_staging"))
        with conn.cursor(row_factory=tuple_row) as cur:
            while batch := list(islice(rows, chunk)):
                with cur.copy(query("queue_bulk.copy_staging")) as copy:
                    for row in batch:
                        copy.write_row(row)
                for force in (False, True):
                    for step in ("queue_bulk.insert_new", "queue_bulk.enqueue_staged"):
                        found = cur.execute(query(step), {"force": force}).fetchone()
                        total += int(found[0]) if found else 0
                cur.execute(query("queue_bulk.clear_staging"))
        conn.execute(query("queue_bulk.drop_staging"))
    return total
