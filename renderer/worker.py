"""The worker loop: one process, one connection (:mod:`renderer.pool` supervises N of them).

A worker claims a batch of one kind (asynchronous commit), then opens the processing
transaction: it takes the batch's lock (so no one can take it over while it works), runs
each handler (no savepoints: a failed handler that wrote makes the batch run again without
it), calls the kind's end-of-batch hook if it has one (``finish_batch``: the whole batch's
output written at once, in a savepoint; if it raises, it is called again item by item, each
in its own savepoint, so only the bad items fail), and completes the good items and fails
the bad ones in one statement before the (synchronous) commit. Handlers and hooks run
in the main thread under a SIGALRM timer for their kind's time limit; the pool kills a child
whose handler ignores the alarm past a grace period. A heartbeat thread with its own
connection keeps the worker's row alive, extends leases, reaps expired ones and rolls up the
counters. Workers wake on NOTIFY, or poll every ``poll_seconds``: always behind PgBouncer in
transaction pooling (``RENDERER_POOLER=pgbouncer``), where LISTEN would hold on one server
session while the worker's next transaction runs on another.

A worker that freezes (SIGSTOP, a paused machine) stops heartbeating: the reaper of another
worker ends its processing session once it has been silent for a lease, which rolls the batch
back and frees the rows for takeover. A completion refused by fencing raises ``LeaseLost``: the
transaction rolls back, so nothing the refused items' handlers wrote commits.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from renderer import config, pipelines
from renderer import queue as q
from renderer.db import Connection, connect, pooled
from renderer.errors import DatabaseError, DatabaseUnavailable, LeaseLost, QueueError
from renderer.heartbeat import KEEPALIVE, Heartbeat, make_owner

log = logging.getLogger("renderer.worker")

CHANNEL = "renderer_queue"
BATCH_TURN_EVERY = 5  # every 5th claim serves batch priority first: on-demand never starves it



@dataclass
class WorkerStats:
    """What one worker did."""

    owner: str = ""
    done: int = 0
    failed: int = 0
    rejected: int = 0
    released: int = 0
    batches: int = 0
    reconnects: int = 0
    elapsed: float = 0.0


class _WakeUp(Exception):
    """Interrupts a wait for notifications when the worker is asked to stop."""


class _Redo(Exception):
    """A handler that wrote something failed: roll back and run the batch without it."""


class _Undo(Exception):
    """Rolls a savepoint back (raised inside it, caught right outside)."""


@dataclass
class _Shared:
    """Counters shared between a pool and its children (multiprocessing values)."""

    done: Any
    failed: Any
    budget: Any | None
    deadlines: Any
    index: int = 0


def resolve_kinds(names: list[str] | None, *, log_plan: bool = False) -> list[q.Kind]:
    """Import the pipelines and plugins, then the kinds to work (all registered by default);
    ``log_plan`` logs the plan of every profile with a stage among them, before any claim."""
    pipelines.load_all()
    if names:
        kinds = [q.get_kind(n) for n in names]
    elif not q.KINDS:
        raise QueueError("no work-queue kinds are registered",
                         "install a pipeline, or list plugin modules in RENDERER_PLUGINS")
    else:
        kinds = [q.KINDS[n] for n in sorted(q.KINDS)]
    if log_plan:
        for line in pipelines.plan([k.name for k in kinds]):
            log.info("plan: %s", line)
    return kinds


def _is_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


class Worker:
    """One worker loop; :func:`run_worker` is the usual way in."""

    def __init__(self, url: str, kinds: list[q.Kind], *, until_empty: bool = False,
                 max_items: int | None = None, owner: str | None = None,
                 lease_seconds: float = 60, poll_seconds: float = 2.0, notify: bool = True,
                 reconnect_seconds: float = 300, shared: _Shared | None = None,
                 context: q.Context | None = None) -> None:
        self.url = url
        self.kinds = kinds
        self.context = context
        self.names = [k.name for k in kinds]
        self.until_empty = until_empty
        self.max_items = max_items
        self.owner = owner or make_owner()
        self.lease_default = float(lease_seconds)
        self.poll_seconds = float(poll_seconds)
        self.notify = notify
        self.reconnect_seconds = reconnect_seconds
        self.shared = shared
        self.stats = WorkerStats(owner=self.owner)
        self.stopping = False
        self.aborting = False
        self.conn: Connection | None = None
        self._claims = 0
        self._in_handler = False
        self._waiting = False
        self._current: tuple[q.Kind, str] | None = None  # what runs: kind, item key or batch
        self._main = _is_main_thread()

    # -- signals -------------------------------------------------------------------------

    def request_stop(self, signum: int | None = None, frame: Any = None) -> None:
        """First call: finish the current batch, then exit. Second: give the items back now."""
        if self.stopping:
            self.aborting = True
            if self._in_handler:
                self._in_handler = False
                raise q.Shutdown("asked twice to stop: giving the current items back")
        self.stopping = True
        if self._waiting:
            self._waiting = False
            raise _WakeUp()

    def _on_alarm(self, signum: int, frame: Any) -> None:
        if self._in_handler and self._current is not None:
            self._in_handler = False
            kind, what = self._current
            raise q.TimeLimitExceeded(
                f"{kind.name} {what} ran past its time limit of {kind.time_limit:g}s")

    def _install_signals(self) -> list[tuple[int, Any]]:
        if not self._main:
            return []
        previous: list[tuple[int, Any]] = [
            (s, signal.getsignal(s)) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM)]
        signal.signal(signal.SIGTERM, self.request_stop)
        if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
            signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGALRM, self._on_alarm)
        return previous

    # -- connection ----------------------------------------------------------------------

    def _connect(self, first: bool) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        delay, started = 0.1, time.monotonic()
        while True:
            try:
                conn = connect(self.url, autocommit=True, **KEEPALIVE)
                if self.notify:
                    conn.execute(f"LISTEN {CHANNEL}")
                if first:
                    q.sync_kinds(conn, self.names)
                    # Known to the reaper before the first claim: a worker cut off before its
                    # heartbeat thread got through would otherwise hold its batch unreaped
                    # (the reaper ends the sessions of silent workers it knows of).
                    q.heartbeat(conn, self.owner, self._lease(), self.info())
                else:
                    # Our items from before the connection broke: their transaction is gone.
                    self.stats.released += q.release(conn, self.owner)
                self.conn = conn
                return
            except DatabaseError as exc:
                if self.stopping or time.monotonic() - started > self.reconnect_seconds:
                    raise DatabaseError(f"lost the database and could not reconnect: {exc}",
                                        "check that PostgreSQL is running") from exc
                log.info("database unavailable (%s), retrying in %.1fs", exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _reconnect(self, exc: BaseException) -> None:
        log.warning("worker %s lost its connection (%s); reconnecting", self.owner,
                    str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        self.stats.reconnects += 1
        self._connect(first=False)

    # -- budget (max_items, per worker or shared by a pool) ------------------------------

    def _take(self, want: int) -> int:
        if self.shared is not None and self.shared.budget is not None:
            with self.shared.budget.get_lock():
                take = int(min(want, self.shared.budget.value))
                self.shared.budget.value -= take
            return take
        if self.max_items is not None:
            return max(0, min(want, self.max_items - self.stats.done - self.stats.failed))
        return want

    def _give_back(self, n: int) -> None:
        if n and self.shared is not None and self.shared.budget is not None:
            with self.shared.budget.get_lock():
                self.shared.budget.value += n

    # -- the loop ------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        current = self._current
        return {"host": socket.gethostname(), "pid": os.getpid(), "kinds": self.names,
                "done": self.stats.done, "failed": self.stats.failed,
                "current": f"{current[0].name}/{current[1]}" if current else None}

    def run(self) -> WorkerStats:
        started = time.monotonic()
        previous = self._install_signals()
        heartbeat = Heartbeat(self.url, self.owner, self._lease(), self.info)
        try:
            self._connect(first=True)
            heartbeat.start()
            while not self.stopping:
                if not self._step():
                    break
        finally:
            heartbeat.stop()
            self._close()
            for sig, handler in previous:
                signal.signal(sig, handler)
            self.stats.elapsed = time.monotonic() - started
        return self.stats

    def _lease(self) -> float:
        return max(k.lease(self.lease_default) for k in self.kinds)

    def _close(self) -> None:
        try:
            if self.conn is None or self.conn.closed:
                self.conn = connect(self.url, autocommit=True)
            self.stats.released += q.release(self.conn, self.owner)
            q.sign_off(self.conn, self.owner)
        except DatabaseError as exc:
            log.debug("could not sign off worker %s: %s", self.owner, exc)
        finally:
            if self.conn is not None:
                self.conn.close()
            self.conn = None

    def _step(self) -> bool:
        """Claim and run one batch, or wait; False when the worker should exit."""
        want = max(k.batch_size for k in self.kinds)
        take = self._take(want)
        if take <= 0:
            return False
        assert self.conn is not None
        try:
            self._claims += 1
            items = q.claim_batch(
                self.conn, self.names, owner=self.owner,
                limits=[min(k.batch_size, take) for k in self.kinds],
                leases=[k.lease(self.lease_default) for k in self.kinds],
                batch_turn=self._claims % BATCH_TURN_EVERY == 0)
        except DatabaseUnavailable as exc:
            self._give_back(take)
            self._reconnect(exc)
            return True
        self._give_back(take - len(items))
        if items:
            self._process(items)
            return True
        return self._idle()

    def _idle(self) -> bool:
        assert self.conn is not None
        try:
            row = q.idle_state(self.conn, self.names)
        except DatabaseUnavailable as exc:
            self._reconnect(exc)
            return True
        if row["claimable"]:
            time.sleep(0.002)  # rows locked by a concurrent claim: they are taken, try again
            return True
        if self.until_empty and not row["busy"]:
            return False
        self._wait(min(self.poll_seconds, 0.25) if self.until_empty else self.poll_seconds)
        return True

    def _wait(self, seconds: float) -> None:
        assert self.conn is not None
        try:
            self._waiting = True
            if self.stopping:
                return
            if self.notify:
                for _ in self.conn.notifies(timeout=seconds, stop_after=1):
                    pass
            else:
                time.sleep(seconds)
        except _WakeUp:
            pass
        except DatabaseUnavailable as exc:
            self._waiting = False
            self._reconnect(exc)
        finally:
            self._waiting = False

    # -- one batch -----------------------------------------------------------------------

    def _process(self, items: list[q.Item]) -> None:
        """Run a claimed batch in one transaction and complete it there. A handler that
        wrote something and failed spoils the transaction: it is rolled back and the batch
        runs again without that item (whose failure is then recorded with the others)."""
        kind = q.KINDS[items[0].kind]
        failed: dict[int, tuple[BaseException, str, str]] = {}
        run = list(items)
        try:
            while True:
                try:
                    ok = self._pass(kind, run, failed)
                    break
                except _Redo:
                    continue
                except LeaseLost as lost:
                    # Rolled back: the refused items belong to whoever took them over, and
                    # nothing their handlers wrote commits; the rest run again without them.
                    log.warning("%s", lost.message)
                    self.stats.rejected += len(lost.ids)
                    run[:] = [i for i in run if i.id not in lost.ids]
                    if not run:
                        return
        except q.Shutdown:
            self._give_back_items(items)
            return
        except DatabaseUnavailable as exc:
            if self.conn is None or self.conn.closed or self.conn.broken:
                self._reconnect(exc)
                return
            self._fail_all(run, exc)
            return
        except DatabaseError as exc:
            self._fail_all(run, exc)
            return
        finally:
            self._current = None
        self._count(ok, len([i for i in run if i.id in failed]))

    def _pass(self, kind: q.Kind, run: list[q.Item],
              failed: dict[int, tuple[BaseException, str, str]]) -> list[int]:
        """One transaction over the batch; ``run`` shrinks to the items still leased to us."""
        conn = self.conn
        assert conn is not None and run
        token = run[0].token
        with conn.transaction():
            locked = q.lock(conn, run, idle_seconds=kind.time_limit * len(run) + 60)
            if len(locked) < len(run):
                log.warning("%d item(s) of %s were taken over before they ran",
                            len(run) - len(locked), kind.name)
                self.stats.rejected += len(run) - len(locked)
                run[:] = [i for i in run if i.id in locked]
            jobs = [q.Job(i, conn, 0.0, self.context) for i in run if i.id not in failed]
            if kind.start_batch is not None and jobs:
                self._start_batch(conn, kind, jobs)
            done: list[tuple[q.Job, Any]] = []
            for job in jobs:
                item = job.item
                job.deadline = time.monotonic() + kind.time_limit
                error, outcome = self._guarded(kind, item.key, partial(kind.run, job))
                if error is None:
                    done.append((job, outcome))
                    continue
                self._failed(kind, item, error, failed)
                if job.touched:
                    raise _Redo()  # rolls the transaction back
            if kind.finish_batch is not None and done:
                done = self._finish_batch(conn, kind, done, failed)
            ok = [job.item.id for job, _ in done]
            # the same fan-in rule declared by several items of the batch is added once
            rules = list({r[:4]: r for job, _ in reversed(done) for r in job.rules}.values())
            if rules:
                q.add_rules(conn, rules)
            q.finish(conn, token, ok, [(i.id, *failed[i.id]) for i in run if i.id in failed])
        return ok

    def _start_batch(self, conn: Connection, kind: q.Kind, jobs: list[q.Job]) -> None:
        """The kind's start-of-batch hook, in a savepoint: each job's ``prefetched`` gets its
        item's value; if the hook fails, all stay None (the handlers read for themselves)."""
        hook = kind.start_batch
        assert hook is not None
        error, values = self._in_savepoint(conn, kind, f"start of a batch of {len(jobs)}",
                                           partial(hook, jobs))
        if error is not None:
            log.warning("%s: the start-of-batch hook failed (%s: %s); the handlers read for "
                        "themselves", kind.name, type(error[0]).__name__, error[0])
        for job in jobs:
            job.prefetched = values.get(job.item.id) if values else None
            job.touched = False  # the hook's reads are not the handler's

    def _finish_batch(self, conn: Connection, kind: q.Kind, done: list[tuple[q.Job, Any]],
                      failed: dict[int, tuple[BaseException, str, str]]
                      ) -> list[tuple[q.Job, Any]]:
        """The kind's end-of-batch hook over the items whose handlers succeeded, then their
        successors; returns the items that stay good. The hook runs in a savepoint: if it
        raises, it is called again for each item alone, each in its own savepoint, so only
        the items it cannot write fail, each with its own error. A successor that fails
        after the hook wrote makes the batch run again without its item, as a handler that
        wrote would."""
        hook = kind.finish_batch
        assert hook is not None
        error, refused = self._in_savepoint(conn, kind, f"batch of {len(done)}",
                                            partial(hook, done))
        if error is not None and len(done) == 1:
            self._failed(kind, done[0][0].item, error, failed)
            return []
        kept: list[tuple[q.Job, Any]] = []
        if error is None:
            kept = self._refused(kind, done, refused, failed)
        else:
            log.warning("%s: the batch hook failed (%s: %s); writing its %d items one by one",
                        kind.name, type(error[0]).__name__, error[0], len(done))
            for one in done:
                error, refused = self._in_savepoint(conn, kind, one[0].item.key,
                                                    partial(hook, [one]))
                if error is not None:
                    self._failed(kind, one[0].item, error, failed)
                else:
                    kept.extend(self._refused(kind, [one], refused, failed))
        for job, outcome in kept:
            error, _ = self._guarded(kind, job.item.key, partial(kind.follow, job, outcome))
            if error is not None:
                self._failed(kind, job.item, error, failed)
                raise _Redo()  # its output is written: roll back, run again without it
        return kept

    def _refused(self, kind: q.Kind, done: list[tuple[q.Job, Any]],
                 refused: Mapping[int, BaseException] | None,
                 failed: dict[int, tuple[BaseException, str, str]]
                 ) -> list[tuple[q.Job, Any]]:
        """The items a hook did not refuse; the refused ones fail with the hook's error."""
        if not refused:
            return done
        kept = []
        for job, outcome in done:
            exc = refused.get(job.item.id)
            if exc is None:
                kept.append((job, outcome))
            else:
                self._failed(kind, job.item, (exc, "".join(traceback.format_exception_only(exc)),
                                              "failed"), failed)
        return kept

    def _in_savepoint(self, conn: Connection, kind: q.Kind, what: str,
                      fn: Callable[[], Any]) -> tuple[tuple[BaseException, str, str] | None, Any]:
        """``fn`` guarded (:meth:`_guarded`) in a savepoint, rolled back if it failed."""
        try:
            with conn.transaction():
                error, value = self._guarded(kind, what, fn)
                if error is not None:
                    raise _Undo()
        except _Undo:
            pass
        return error, value

    def _count(self, ok: list[int], failed: int) -> None:
        self.stats.batches += 1
        done = len(ok)
        self.stats.done += done
        self.stats.failed += failed
        if self.shared is not None:
            with self.shared.done.get_lock():
                self.shared.done.value += done
            if failed:
                with self.shared.failed.get_lock():
                    self.shared.failed.value += failed

    def _failed(self, kind: q.Kind, item: q.Item, error: tuple[BaseException, str, str],
                failed: dict[int, tuple[BaseException, str, str]]) -> None:
        failed[item.id] = error
        log.warning("%s %s failed (attempt %d): %s: %s", kind.name, item.key, item.attempt,
                    type(error[0]).__name__, error[0])

    def _guarded(self, kind: q.Kind, what: str,
                 fn: Callable[[], Any]) -> tuple[tuple[BaseException, str, str] | None, Any]:
        """Run ``fn`` (a handler, a hook, successors) under the kind's time limit: (None, its
        value), or (error, traceback, outcome) and None when it failed. A shutdown, and a
        connection that broke, are raised."""
        conn = self.conn
        self._current = (kind, what)
        self._publish_deadline(time.time() + kind.time_limit + max(2.0, 0.1 * kind.time_limit))
        try:
            if self._main:
                signal.setitimer(signal.ITIMER_REAL, kind.time_limit)
            self._in_handler = True
            value = fn()
            self._in_handler = False
            self._disarm()
            return None, value
        except q.Shutdown:
            self._disarm()
            raise
        except BaseException as exc:
            self._in_handler = False
            self._disarm()
            tb = traceback.format_exc()
            if isinstance(exc, DatabaseUnavailable) and (
                    conn is None or conn.closed or conn.broken):
                raise
            outcome = "timeout" if isinstance(exc, q.TimeLimitExceeded) else "failed"
            return (exc, tb, outcome), None
        finally:
            self._in_handler = False
            self._publish_deadline(0.0)

    def _disarm(self) -> None:
        if self._main:
            signal.setitimer(signal.ITIMER_REAL, 0)

    def _publish_deadline(self, at: float) -> None:
        if self.shared is not None:
            self.shared.deadlines[self.shared.index] = at

    def _give_back_items(self, items: list[q.Item]) -> None:
        """After an abort: the transaction rolled back; the items go back, attempt unspent."""
        try:
            if self.conn is None or self.conn.closed or self.conn.broken:
                self._connect(first=False)
            else:
                self.stats.released += q.release(self.conn, self.owner, [i.id for i in items])
        except DatabaseError as exc:
            log.warning("could not release %d item(s): %s (their leases will expire)",
                        len(items), exc)
        self.stopping = True

    def _fail_all(self, items: list[q.Item], exc: BaseException) -> None:
        """The batch's transaction failed as a whole (e.g. a deadlock or a constraint checked
        at commit): every item counts a failed attempt with that error."""
        log.warning("batch of %d %s item(s) failed: %s", len(items), items[0].kind, exc)
        tb = "".join(traceback.format_exception(exc))
        try:
            assert self.conn is not None
            for _ in range(2):
                try:
                    with self.conn.transaction():
                        q.finish(self.conn, items[0].token, [],
                                 [(i.id, exc, tb, "failed") for i in items])
                    self.stats.failed += len(items)
                    return
                except LeaseLost as lost:  # rolled back: record the others' failure alone
                    self.stats.rejected += len(lost.ids)
                    items = [i for i in items if i.id not in lost.ids]
                    if not items:
                        return
        except DatabaseUnavailable as again:
            self._reconnect(again)


def listens(settings: config.Settings) -> bool:
    """Whether workers wait with LISTEN: the ``notify`` setting, never behind a pooler."""
    return settings.notify and not pooled(settings)


def run_worker(url: str, *, kinds: list[str] | None = None, until_empty: bool = False,
               max_items: int | None = None, owner: str | None = None,
               settings: config.Settings | None = None, lease_seconds: float | None = None,
               poll_seconds: float | None = None, notify: bool | None = None,
               _shared: _Shared | None = None) -> WorkerStats:
    """Run one worker loop in this process until stopped (SIGTERM/SIGINT), until nothing of
    its kinds is pending or running (``until_empty``), or after ``max_items``. Its handlers
    get ``settings`` (default: loaded once now) and the store they name through the job.

    Example
    -------
    >>> run_worker(url, kinds=["histogram"], until_empty=True).done
    1200
    """
    settings = settings or config.load()
    worker = Worker(
        url, resolve_kinds(kinds, log_plan=_shared is None), until_empty=until_empty,
        max_items=max_items, owner=owner,
        lease_seconds=lease_seconds or settings.lease_seconds,
        poll_seconds=poll_seconds if poll_seconds is not None else settings.poll_seconds,
        notify=listens(settings) if notify is None else notify, shared=_shared,
        context=q.Context(settings))
    return worker.run()
