"""The supervisor: N worker processes, replaced when they crash, stopped cleanly on signals.

Each child runs :func:`renderer.worker.run_worker` with its own connection; the supervisor
counts their progress through shared counters and kills a child past its item's time limit.
With ``autoscale=(MIN, MAX)`` it grows and shrinks its own process count by the signal of
:mod:`renderer.autoscale` (the one /metrics publishes): it adds processes at once when the
work needs them, and stops one at a time (SIGTERM: it finishes its batch) once the signal
has stayed below the count for :data:`SHRINK_CHECKS` checks in a row.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import select
import signal
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing import forkserver
from typing import Any

from renderer import autoscale, config, pipelines
from renderer import queue as q
from renderer.db import Connection, connect
from renderer.errors import DatabaseError, QueueError
from renderer.heartbeat import make_owner
from renderer.worker import _is_main_thread, _Shared, resolve_kinds, run_worker

log = logging.getLogger(__name__)

AUTOSCALE_SECONDS = 2.0  # how often an autoscaling pool reads the signal
SHRINK_CHECKS = 3  # checks in a row below the count before one process is stopped


@dataclass
class PoolStats:
    """What a pool did."""

    processes: int = 0
    peak: int = 0
    done: int = 0
    failed: int = 0
    restarts: int = 0
    killed: int = 0
    elapsed: float = 0.0
    exit_codes: list[int] = field(default_factory=list)


def _context() -> Any:
    """The children are forked from a server process that imported the pipelines once
    (:data:`renderer.pipelines.MODULES`): a child starts in milliseconds instead of the
    0.5-0.7 CPU s a fresh interpreter takes to import them. The server is started by the
    first pool of a process, with that process's environment; each child then takes its own
    pool's environment, import path and folder (:func:`_child_main`)."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([*pipelines.MODULES, "renderer.worker"])
    return ctx


@contextlib.contextmanager
def _no_main() -> Iterator[None]:
    """A bare ``__main__`` while a process starts: the fork server (and a spawned child)
    would otherwise re-run the parent's ``__main__`` (the ``renderer`` script itself)."""
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if main is not None:
            sys.modules["__main__"] = main


def warm_up() -> None:
    """Start the pool's fork server now, without waiting for it: it imports the pipelines
    in its own process while the caller goes on (a run's submit), and a pool started after
    forks its children from it at once (:func:`renderer.runner.run_until_idle`)."""
    _context()
    with _no_main():
        forkserver.ensure_running()


def _stop_with(supervisor: int) -> None:
    """Stop this worker as SIGTERM does (it finishes its batch, then exits) when the
    supervisor process ends, however it ends: a worker is forked by the server, not by the
    supervisor, so a supervisor killed with -9 would otherwise leave it working unsupervised
    (and the server, which its workers keep open, running)."""
    try:
        fd = os.pidfd_open(supervisor)
    except ProcessLookupError:
        os._exit(3)

    def watch() -> None:
        select.select([fd], [], [])
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="renderer-supervisor-watch", daemon=True).start()


def _child_main(url: str, owner: str, options: dict[str, Any], shared: _Shared,
                log_level: int, env: dict[str, str], path: list[str], cwd: str,
                supervisor: int) -> None:
    _stop_with(supervisor)
    os.environ.clear()
    os.environ.update(env)
    sys.path[:] = path
    os.chdir(cwd)
    # Ctrl-C reaches the whole process group; the supervisor turns it into SIGTERM for us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A forked child of the server has not the pool's logging: carry its level over.
    logging.basicConfig(level=log_level,
                        format=f"%(asctime)s %(levelname)s worker-{shared.index}: %(message)s")
    try:
        run_worker(url, owner=owner, _shared=shared, **options)
    except Exception as exc:
        log.error("worker %s stopped: %s", owner, exc)
        raise SystemExit(3) from exc


@dataclass
class _Slot:
    index: int
    process: Any = None
    owner: str = ""
    finished: bool = False
    killed_for_time: bool = False
    given_up: bool = False
    retiring: bool = False
    restarts: list[float] = field(default_factory=list)


class Pool:
    """A supervisor of N worker processes; :func:`run_pool` is the usual way in."""

    def __init__(self, url: str, *, processes: int, kinds: list[str] | None,
                 until_empty: bool, max_items: int | None,
                 progress: Callable[[int, int | None], None] | None,
                 settings: config.Settings, lease_seconds: float | None,
                 poll_seconds: float | None, notify: bool | None,
                 autoscale: tuple[int, int] | None = None) -> None:
        self.url = url
        self.kind_objects = resolve_kinds(kinds, log_plan=True)
        self.names = [k.name for k in self.kind_objects]
        self.processes = max(1, processes)
        self.scale = autoscale
        self.target = settings.queue_target_drain_seconds
        self._low = 0
        self._next_scale = 0.0
        if autoscale is not None:
            self.processes = max(1, autoscale[0])
        capacity = max(self.processes, autoscale[1] if autoscale else 0)
        self.until_empty = until_empty
        self.progress = progress
        self.lease = lease_seconds or settings.lease_seconds
        # The children work with the settings the pool was started with (not re-read).
        self.options = {"kinds": self.names, "until_empty": until_empty,
                        "lease_seconds": lease_seconds, "poll_seconds": poll_seconds,
                        "notify": notify, "settings": settings}
        self.ctx = _context()
        self.shared = _Shared(done=self.ctx.Value("q", 0), failed=self.ctx.Value("q", 0),
                              budget=self.ctx.Value("q", max_items) if max_items else None,
                              # one writer a slot, one aligned double a write: no lock
                              # (a locked write was two semaphore calls a handler)
                              deadlines=self.ctx.Array("d", capacity, lock=False))
        self.slots = [_Slot(i) for i in range(self.processes)]
        self.stats = PoolStats(processes=self.processes, peak=self.processes)
        self.signals = 0
        self._conn: Connection | None = None
        self._orphans: list[tuple[str, bool, float]] = []

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.signals += 1
        for slot in self.slots:
            if slot.process is not None and slot.process.is_alive():
                slot.process.terminate() if self.signals < 3 else slot.process.kill()

    def _start(self, slot: _Slot) -> None:
        slot.owner = make_owner(f"pool{os.getpid()}-{slot.index}")
        shared = _Shared(self.shared.done, self.shared.failed, self.shared.budget,
                         self.shared.deadlines, slot.index)
        self.shared.deadlines[slot.index] = 0.0
        slot.process = self.ctx.Process(target=_child_main, name=f"renderer-worker-{slot.index}",
                                        args=(self.url, slot.owner, self.options, shared,
                                              logging.getLogger().getEffectiveLevel(),
                                              dict(os.environ), list(sys.path), os.getcwd(),
                                              os.getpid()))
        with _no_main():  # the children need only _child_main, which they import by name
            slot.process.start()

    def _db(self) -> Connection | None:
        try:
            if self._conn is None or self._conn.closed or self._conn.broken:
                self._conn = connect(self.url, autocommit=True)
            return self._conn
        except DatabaseError:
            self._conn = None
            return None

    def _reclaim_orphans(self) -> None:
        """Give back the running items of dead children (retried until their server session
        has ended and released the rows, or their leases expired and the reaper has them)."""
        conn = self._db() if self._orphans else None
        if conn is None:
            return
        kept = []
        for owner, timeout, until in self._orphans:
            try:
                q.release(conn, owner, count=True,
                          error_type="TimeLimitExceeded" if timeout else "WorkerCrashed",
                          message=("killed past its time limit" if timeout
                                   else "its worker process died"),
                          outcome="timeout" if timeout else "crashed")
                if q.held_by(conn, owner) and time.time() < until:
                    kept.append((owner, timeout, until))
            except DatabaseError:
                self._conn = None
                kept.append((owner, timeout, until))
        self._orphans = kept

    def _holds(self, owner: str) -> bool:
        """Whether a child that exited still holds items: a clean exit releases them, so
        it did not finish cleanly (``os._exit(0)`` in a handler, a library calling exit)
        and is treated as a crash. Unknown (no database) counts as a clean finish, as
        before: the leases of anything held expire and the reaper has them."""
        conn = self._db()
        if conn is None:
            return False
        try:
            return q.held_by(conn, owner) > 0
        except DatabaseError:
            self._conn = None
            return False

    def _check(self, slot: _Slot) -> None:
        process = slot.process
        if process is None or slot.finished:
            return
        deadline = self.shared.deadlines[slot.index]
        if process.is_alive():
            # killed already: a SIGKILLed child may still look alive for a moment
            if deadline and time.time() > deadline and not slot.killed_for_time:
                log.warning("worker %s is past its item's time limit: killing it", slot.owner)
                slot.killed_for_time = True
                self.stats.killed += 1
                process.kill()
            return
        process.join()
        code = process.exitcode
        self.stats.exit_codes.append(code)
        if slot.retiring:  # stopped by the autoscaler: not replaced, whatever its exit
            if code != 0 or self._holds(slot.owner):
                self._orphans.append((slot.owner, False, time.time() + self.lease + 5))
            slot.finished = True
            return
        if code == 0 and not slot.killed_for_time and not self._holds(slot.owner):
            slot.finished = True
            return
        self._orphans.append((slot.owner, slot.killed_for_time, time.time() + self.lease + 5))
        if not slot.killed_for_time:
            log.warning("worker %s exited with status %s", slot.owner, code)
        slot.killed_for_time = False
        if self.signals:
            slot.finished = True
            return
        now = time.monotonic()
        slot.restarts = [t for t in slot.restarts if now - t < 60] + [now]
        if len(slot.restarts) > 10:
            log.error("worker slot %d crashed %d times in a minute: giving it up",
                      slot.index, len(slot.restarts))
            slot.finished = slot.given_up = True
            return
        if len(slot.restarts) > 3:
            time.sleep(0.5 * len(slot.restarts))  # a crash loop: do not spin
        self.stats.restarts += 1
        self._start(slot)

    def run(self) -> PoolStats:
        started = time.monotonic()
        previous = []
        if _is_main_thread():
            previous = [(s, signal.getsignal(s)) for s in (signal.SIGTERM, signal.SIGINT)]
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
        last_progress = 0.0
        try:
            for slot in self.slots:
                self._start(slot)
            while not all(s.finished for s in self.slots):
                for slot in list(self.slots):
                    self._check(slot)
                self._reclaim_orphans()
                if self.scale is not None and not self.signals:
                    self._autoscale()
                if self.progress is not None and time.monotonic() - last_progress > 0.5:
                    last_progress = time.monotonic()
                    self._report()
                time.sleep(0.05)
            self._reclaim_orphans()
            if self.progress is not None:
                self._report()
            if all(s.given_up for s in self.slots):
                raise QueueError("every worker process keeps crashing",
                                 "run `renderer work --processes 1 --debug` to see why")
        finally:
            for slot in self.slots:
                if slot.process is not None and slot.process.is_alive():
                    slot.process.kill()
                    slot.process.join()
            for sig, handler in previous:
                signal.signal(sig, handler)
            if self._conn is not None:
                self._conn.close()
        self.stats.done = self.shared.done.value
        self.stats.failed = self.shared.failed.value
        self.stats.elapsed = time.monotonic() - started
        return self.stats

    def _active(self) -> list[_Slot]:
        return [s for s in self.slots if not s.finished and not s.retiring]

    def _autoscale(self) -> None:
        """Grow to the signal at once; shrink by one after it stayed low for a while."""
        assert self.scale is not None
        if time.monotonic() < self._next_scale:
            return
        self._next_scale = time.monotonic() + AUTOSCALE_SECONDS
        conn = self._db()
        if conn is None:
            return
        try:
            wanted = sum(autoscale.desired_by_kind(conn, self.target, self.names).values())
        except DatabaseError:
            self._conn = None
            return
        lo, hi = self.scale
        want = min(max(wanted, lo), hi)
        active = self._active()
        if self.until_empty and not active:
            return  # the pool is finishing: its children found nothing more to do
        if want > len(active):
            self._low = 0
            busy = {s.index for s in self.slots if not s.finished}
            free = [i for i in range(hi) if i not in busy][:want - len(active)]
            log.info("autoscale: %d -> %d processes (the work asks for %d)",
                     len(active), len(active) + len(free), wanted)
            self.slots = [s for s in self.slots if not (s.finished and s.index in free)]
            for index in free:
                slot = _Slot(index)
                self.slots.append(slot)
                self._start(slot)
            self.stats.peak = max(self.stats.peak, len(self._active()))
        elif want < len(active):
            self._low += 1
            if self._low >= SHRINK_CHECKS:
                self._low = 0
                slot = max(active, key=lambda s: s.index)
                log.info("autoscale: %d -> %d processes (the work asks for %d)",
                         len(active), len(active) - 1, wanted)
                slot.retiring = True
                if slot.process is not None and slot.process.is_alive():
                    slot.process.terminate()  # the child finishes its batch, then exits
        else:
            self._low = 0

    def _report(self) -> None:
        assert self.progress is not None
        remaining = None
        conn = self._db()
        if conn is not None:
            try:
                remaining = q.remaining(conn, self.names)
            except DatabaseError:
                self._conn = None
        self.progress(self.shared.done.value, remaining)


def run_pool(url: str, *, processes: int, kinds: list[str] | None = None,
             until_empty: bool = False, max_items: int | None = None,
             progress: Callable[[int, int | None], None] | None = None,
             settings: config.Settings | None = None, lease_seconds: float | None = None,
             poll_seconds: float | None = None, notify: bool | None = None,
             autoscale: tuple[int, int] | None = None) -> PoolStats:
    """Supervise ``processes`` worker processes (forked from a server that imported the
    pipelines, :func:`_context`; each loads ``RENDERER_PLUGINS`` itself) until they are
    done (``until_empty``, ``max_items`` in total) or the pool gets SIGTERM/SIGINT
    (children finish their batch; a second signal makes them give their items back). A
    crashed child is replaced and its items released; a child stuck past its item's time
    limit is killed and the item counts a failure. ``progress(done, remaining)`` is called
    twice a second. ``autoscale=(MIN, MAX)`` starts MIN processes and follows the
    autoscaling signal between the two.

    Example
    -------
    >>> run_pool(url, processes=4, until_empty=True).done
    20000
    """
    settings = settings or config.load()
    return Pool(url, processes=processes, kinds=kinds, until_empty=until_empty,
                max_items=max_items, progress=progress, settings=settings,
                lease_seconds=lease_seconds, poll_seconds=poll_seconds, notify=notify,
                autoscale=autoscale).run()
