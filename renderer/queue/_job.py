"""What a handler receives: the item, a connection in the item's transaction, the worker's
context (settings, store), and verbs to declare downstream work in that same transaction."""

from __future__ import annotations

import time
from typing import Any

from renderer.config import Settings
from renderer.db import Connection
from renderer.errors import QueueError
from renderer.queue import _verbs
from renderer.queue._registry import Item
from renderer.storage import Store, open_store


class Context:
    """What every job of one worker process shares: the settings the worker was started
    with and the object store they name, opened on first use and then reused."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._store: Store | None = None

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = open_store(self.settings.store_url)
        return self._store


class Job:
    """One claimed item being run.

    ``conn`` is a connection inside the transaction that will also complete the item, so
    whatever the handler writes with it commits together with "done" (or not at all). The
    items of a batch share that transaction without savepoints (a round trip per item
    saved): when a handler that wrote something fails, the worker rolls the transaction
    back and runs the batch again without that item, so a failure never leaves half an
    output behind and never costs the other items theirs. Handlers must therefore be
    idempotent, as retries already require.
    """

    def __init__(self, item: Item, conn: Connection, deadline: float,
                 context: Context | None = None) -> None:
        self.item = item
        self._conn = conn
        self._context = context
        self.touched = False
        self.deadline = deadline
        self.rules: list[tuple[str, str, str, str, dict[str, Any] | None, str | None]] = []
        self.prefetched: Any = None
        """What the kind's ``start_batch`` hook read for this item (None: nothing)."""

    @property
    def conn(self) -> Connection:
        self.touched = True
        return self._conn

    @property
    def context(self) -> Context:
        if self._context is None:
            raise QueueError(f"item {self.item.kind}/{self.item.key} runs without a context",
                             "run it under a worker (renderer work), which provides one")
        return self._context

    @property
    def settings(self) -> Settings:
        """The settings the worker was started with (never re-read per item)."""
        return self.context.settings

    @property
    def store(self) -> Store:
        """The configured object store, opened once per worker process."""
        return self.context.store

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
