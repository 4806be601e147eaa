"""What a handler receives: the item, a connection in the item's transaction, and verbs to
declare downstream work in that same transaction."""

from __future__ import annotations

import time
from typing import Any

import psycopg

from renderer.errors import QueueError
from renderer.queue import _verbs
from renderer.queue._registry import Item


class Savepoints:
    """One savepoint name reused along a batch's transaction.

    Before a handler first touches the connection, the savepoint is set, releasing the
    previous item's in the same round trip; after a failure the transaction rolls back to it.
    (psycopg's nested transaction() would cost a round trip more per item for the release.)
    """

    NAME = "renderer_item"

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self.open = False

    def begin(self) -> None:
        self.conn.execute(f"RELEASE SAVEPOINT {self.NAME}; SAVEPOINT {self.NAME}" if self.open
                          else f"SAVEPOINT {self.NAME}")
        self.open = True

    def rollback(self) -> None:
        self.conn.execute(f"ROLLBACK TO SAVEPOINT {self.NAME}")


class Job:
    """One claimed item being run.

    ``conn`` is a connection inside the transaction that will also complete the item, so
    whatever the handler writes with it commits together with "done" (or not at all). The
    first use of ``conn`` sets a savepoint, so a failing handler rolls back only its own
    writes, never those of the other items of its batch; a handler that never touches the
    database costs no round trip.
    """

    def __init__(self, item: Item, conn: psycopg.Connection[Any], deadline: float,
                 savepoints: Savepoints | None = None) -> None:
        self.item = item
        self._conn = conn
        self._savepoints = savepoints or Savepoints(conn)
        self._touched = False
        self.deadline = deadline
        self.rules: list[tuple[str, str, str, str, dict[str, Any] | None, str | None]] = []

    # -- the connection ------------------------------------------------------------------

    @property
    def conn(self) -> psycopg.Connection[Any]:
        if not self._touched:
            self._touched = True
            self._savepoints.begin()
        return self._conn

    def _end(self, exc: BaseException | None) -> None:
        """After the handler: on failure, undo what it wrote."""
        if exc is not None and self._touched:
            self._savepoints.rollback()

    # -- conveniences --------------------------------------------------------------------

    @property
    def key(self) -> str:
        return self.item.key

    @property
    def payload(self) -> dict[str, Any]:
        return self.item.payload

    @property
    def remaining(self) -> float:
        """Seconds left before the time limit kills this attempt."""
        return self.deadline - time.monotonic()

    # -- downstream work -----------------------------------------------------------------

    def enqueue(self, kind: str, key: str, payload: dict[str, Any] | None = None, *,
                fingerprint: str | None = None, set_id: str | None = None,
                priority: int | None = None, group: str | None = None,
                force: bool = False) -> None:
        """Enqueue downstream work in this item's transaction. The set and the priority
        default to this item's (on-demand work stays on-demand downstream)."""
        _verbs.enqueue(self.conn, kind, key, payload, fingerprint=fingerprint,
                       set_id=set_id if set_id is not None else self.item.set_id,
                       priority=self.item.priority if priority is None else priority,
                       group=group, force=force)

    def when_group_done(self, then_kind: str, then_key: str,
                        payload: dict[str, Any] | None = None, *,
                        set_id: str | None = None) -> None:
        """Fan-in: when every item of this kind in this item's group is done (this one
        included) and none is pending or running, enqueue (then_kind, then_key).

        The rule is recorded when the item completes, in the same transaction (so a failed
        attempt declares nothing), and evaluated there with the completion.
        """
        if self.item.group is None:
            raise QueueError(f"item {self.item.kind}/{self.item.key} has no group",
                             "enqueue it with group=... to use when_group_done")
        self.rules.append((self.item.kind, self.item.group, then_kind, then_key, payload,
                           set_id if set_id is not None else self.item.set_id))
