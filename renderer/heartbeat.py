"""A worker's liveness, kept by a thread of its own: its row in the workers table, the
leases of the batch it holds extended, expired leases of others reaped, and the queue's
counters rolled up (:func:`renderer.queue.heartbeat`, :func:`renderer.queue.maintain`).

The thread has its own connection, with TCP keepalives, so that a worker busy in a long
handler still heartbeats; a worker that freezes stops heartbeating, and another's reaper
takes its batch over once it has been silent for a lease.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable
from typing import Any

from renderer import queue as q
from renderer.db import Connection, connect
from renderer.errors import DatabaseError

__all__ = ["KEEPALIVE", "Heartbeat", "make_owner"]

log = logging.getLogger("renderer.worker")

KEEPALIVE: dict[str, Any] = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10,
             "keepalives_count": 3}


def make_owner(label: str | None = None) -> str:
    """A lease owner name unique to this process incarnation: host/label/random."""
    return f"{socket.gethostname()}/{label or os.getpid()}/{secrets.token_hex(3)}"


class Heartbeat(threading.Thread):
    """Own connection: heartbeat, lease extension, reaping and counter roll-up."""

    def __init__(self, url: str, owner: str, lease: float, info: Callable[[], dict[str, Any]]):
        super().__init__(name="renderer-heartbeat", daemon=True)
        self.url, self.owner, self.lease, self.info = url, owner, lease, info
        self.interval = max(0.2, min(10.0, lease / 4))
        self._stop_event = threading.Event()

    def run(self) -> None:
        conn: Connection | None = None
        while True:
            try:
                if conn is None or conn.closed:
                    conn = connect(self.url, autocommit=True, **KEEPALIVE)
                q.heartbeat(conn, self.owner, self.lease, self.info())
                q.maintain(conn)
            except DatabaseError as exc:
                log.debug("heartbeat of %s failed: %s", self.owner, exc)
                if conn is not None:
                    conn.close()
                conn = None
            if self._stop_event.wait(self.interval):
                break
        if conn is not None:
            conn.close()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=10)
