"""The queue's verbs: thin calls of the ``renderer.queue_*`` SQL functions.

Every function takes the caller's connection and joins its transaction (an autocommit
connection makes each call its own transaction), so an enqueue can commit together with the
data that caused it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from renderer.clip import clip
from renderer.db import Connection, IdArray, Jsonb, dict_row, query, tuple_row
from renderer.errors import InputError, LeaseLost, QueueError
from renderer.queue._registry import KINDS, PRIORITY_BATCH, Item, NewItem

log = logging.getLogger("renderer.queue")

CHUNK = 50_000  # items per enqueue_many statement: big enough to amortise, small enough to stream


def _rows(conn: Connection, ref: str,
          params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query(ref), params or {})
        return cur.fetchall() if cur.description else []


def _tuples(conn: Connection, ref: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Rows as tuples: a claim makes hundreds of items, a dict a row is work thrown away."""
    with conn.cursor(row_factory=tuple_row) as cur:
        cur.execute(query(ref), params)
        return cur.fetchall()


def _one(conn: Connection, ref: str, params: dict[str, Any] | None = None) -> Any:
    rows = _rows(conn, ref, params)
    return next(iter(rows[0].values())) if rows else None


# -- enqueue ---------------------------------------------------------------------------------

def enqueue(conn: Connection, kind: str, key: str,
            payload: dict[str, Any] | None = None, *, fingerprint: str | None = None,
            set_id: str | None = None, priority: int = PRIORITY_BATCH, group: str | None = None,
            run_after: datetime | None = None, force: bool = False) -> str:
    """Enqueue (kind, key) with upsert semantics; returns what happened.

    A new item is ``inserted``. A pending item is left as it is (``updated`` when its priority
    rose or its fingerprint changed, else ``unchanged``); a running item is marked to run once
    more after the current attempt (``rerun``); a done or failed item is ``requeued`` only when
    ``fingerprint`` differs from the one it ran with, or ``force``; an item of a cancelled set
    is ``cancelled``. The enqueue joins the transaction of ``conn``.

    Example
    -------
    >>> enqueue(conn, "histogram", "AUTO/0/2140/410562", {"files": 3}, fingerprint="a1f3")
    'inserted'
    """
    return str(_one(conn, "queue.enqueue", {
        "kind": kind, "key": key, "payload": Jsonb(payload or {}), "fingerprint": fingerprint,
        "set_id": set_id, "priority": priority, "group": group, "run_after": run_after,
        "force": force}))


def enqueue_many(conn: Connection, items: Iterable[NewItem]) -> int:
    """Enqueue many items, ``CHUNK`` per statement (arrays unnested server-side); returns how
    many rows were inserted or changed. Same semantics as :func:`enqueue`."""
    total = 0
    batches: dict[bool, list[NewItem]] = {False: [], True: []}

    def flush(force: bool) -> int:
        chunk = batches[force]
        if not chunk:
            return 0
        batches[force] = []
        return int(_one(conn, "queue.enqueue_many", {
            "kinds": [i.kind for i in chunk], "keys": [i.key for i in chunk],
            "payloads": [Jsonb(i.payload or {}) for i in chunk],
            "fingerprints": [i.fingerprint for i in chunk],
            "set_ids": [i.set_id for i in chunk], "priorities": [i.priority for i in chunk],
            "groups": [i.group for i in chunk], "run_afters": [i.run_after for i in chunk],
            "force": force}) or 0)

    for item in items:
        batches[item.force].append(item)
        if len(batches[item.force]) >= CHUNK:
            total += flush(item.force)
    return total + flush(False) + flush(True)


def add_rule(conn: Connection, when_kind: str, group: str, then_kind: str,
             then_key: str, payload: dict[str, Any] | None = None, *,
             set_id: str | None = None) -> None:
    """When every item of ``when_kind`` in ``group`` is done and none is pending, held, running
    or failed, enqueue (then_kind, then_key). Deduplicated; fires at once if the group is
    already all done, and again each time the group closes after a re-run."""
    add_rules(conn, [(when_kind, group, then_kind, then_key, payload, set_id)])


def add_rules(conn: Connection,
              rules: Sequence[tuple[str, str, str, str, dict[str, Any] | None, str | None]]
              ) -> int:
    """Several :func:`add_rule` in one statement; returns how many fired at once."""
    if not rules:
        return 0
    return int(_one(conn, "queue.add_rules", {
        "when_kinds": [r[0] for r in rules], "groups": [r[1] for r in rules],
        "then_kinds": [r[2] for r in rules], "then_keys": [r[3] for r in rules],
        "payloads": [Jsonb(r[4] or {}) for r in rules], "set_ids": [r[5] for r in rules]}) or 0)


# -- sets ------------------------------------------------------------------------------------

def create_set(conn: Connection, name: str,
               info: dict[str, Any] | None = None) -> str:
    """Create (or find) the set ``name``, e.g. ``"speedtiles 2026-W47"``; returns its id (the
    name). Enqueueing into an unknown set id creates it too."""
    if not name or not name.strip():
        raise QueueError("a set needs a name", "pass a name such as 'speedtiles 2026-W47'")
    return str(_one(conn, "queue.create_set", {"id": name, "info": Jsonb(info or {})}))


def _set_verb(conn: Connection, verb: str, set_id: str) -> int:
    n = _one(conn, f"queue.{verb}_set", {"id": set_id})
    if n is None:
        found = _rows(conn, "queue.get_set", {"id": set_id})
        if not found:
            raise QueueError(f"no set {set_id!r}", "see the sets in `renderer queue status`")
        raise QueueError(f"set {set_id!r} is {found[0]['state']}: cannot {verb} it",
                         "cancelled sets stay cancelled; enqueue into a new set")
    return int(n)


def pause_set(conn: Connection, set_id: str) -> int:
    """Stop claiming the set's items (its pending items are held); returns how many."""
    return _set_verb(conn, "pause", set_id)


def resume_set(conn: Connection, set_id: str) -> int:
    """Make a paused set's held items pending again; returns how many."""
    return _set_verb(conn, "resume", set_id)


def cancel_set(conn: Connection, set_id: str) -> int:
    """Cancel the set's pending, held and failed items (running ones finish); returns how
    many were cancelled."""
    return _set_verb(conn, "cancel", set_id)


def throttle(conn: Connection, set_id: str, *, in_flight: int | None = None,
             per_hour: int | None = None) -> int:
    """Limit the set ``set_id`` to at most ``in_flight`` items pending or running at once
    and/or ``per_hour`` items let through in any sliding hour (both None: no limits). The
    limits given replace the set's; its items wait held and the claim lets them through.
    Creates the set if need be; returns how many items were moved (held, or released)."""
    if not set_id or not set_id.strip():
        raise InputError("a throttle needs a set", "pass the set's name")
    for name, value in (("in-flight", in_flight), ("per-hour", per_hour)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or not 0 < value < 2**31):
            raise InputError(f"{name} must be a positive whole number, not {value!r}",
                             f"pass e.g. --{name} 10")
    return int(_one(conn, "queue.throttle", {"id": set_id, "in_flight": in_flight,
                                             "per_hour": per_hour}) or 0)


def list_sets(conn: Connection, *, set_id: str | None = None, limit: int | None = None,
              before: tuple[datetime, str] | None = None) -> list[dict[str, Any]]:
    """Sets, newest first: every one, a page of ``limit`` (after ``before``, the created_at
    and id of the last set of the previous page: a keyset page), or just ``set_id``."""
    if set_id is not None:
        return _rows(conn, "queue.get_set", {"id": set_id})
    at, last = before or (None, None)
    return _rows(conn, "queue.list_sets", {"limit": limit, "before_at": at, "before_id": last})


# -- claim, complete, fail -------------------------------------------------------------------

def claim(conn: Connection, kind: str, *, limit: int = 1, owner: str = "python",
          lease_seconds: float = 60, reserve: int = 0) -> list[Item]:
    """Claim up to ``limit`` pending items of one kind (asynchronous commit when ``conn`` is
    in autocommit). ``reserve`` of them come first from batch priority."""
    rows = _tuples(conn, "queue.claim", {"kind": kind, "limit": limit, "owner": owner,
                                         "lease_seconds": lease_seconds, "reserve": reserve})
    return [Item.from_tuple(r) for r in rows]


def claim_batch(conn: Connection, kinds: Sequence[str], *, owner: str,
                limits: Sequence[int], leases: Sequence[float],
                batch_turn: bool = False) -> list[Item]:
    """Claim a batch of the kind at the head of the queue among ``kinds``."""
    rows = _tuples(conn, "queue.claim_batch", {
        "kinds": list(kinds), "limits": list(limits), "leases": [float(x) for x in leases],
        "owner": owner, "batch_turn": batch_turn})
    return [Item.from_tuple(r) for r in rows]


def lock(conn: Connection, items: Sequence[Item],
         idle_seconds: float = 0) -> set[int]:
    """Inside the processing transaction: lock the items still leased to us; returns their
    ids. Items missing from the answer were taken over (their lease expired)."""
    if not items:
        return set()
    rows = _tuples(conn, "queue.lock", {"ids": IdArray(i.id for i in items),
                                        "token": items[0].token, "idle_seconds": idle_seconds})
    return {r[0] for r in rows}


def _by_token(items: Iterable[Item]) -> dict[str, list[Item]]:
    groups: dict[str, list[Item]] = {}
    for item in items:
        groups.setdefault(item.token, []).append(item)
    return groups


def _lost(verb: str, rejected: list[int]) -> LeaseLost:
    return LeaseLost(f"refused the late {verb} of {len(rejected)} item(s) {rejected}: their "
                     "lease was taken over", "roll the transaction back: its writes must not "
                     "commit", ids=rejected)


def complete(conn: Connection, items: Sequence[Item]) -> None:
    """Mark items done (or pending again when a rerun was asked), presenting their lease
    tokens. Raises :class:`LeaseLost` (its ``ids``) when a lease was taken over (fencing):
    the caller rolls back, so nothing the handler wrote commits with a refused completion
    (the items accepted in the same call are rolled back with it)."""
    rejected: list[int] = []
    for token, group in _by_token(items).items():
        rejected += _one(conn, "queue.complete",
                         {"ids": [i.id for i in group], "token": token}) or []
    if rejected:
        raise _lost("completion", rejected)


def fail(conn: Connection, item: Item, error: BaseException | str, *,
         traceback: str | None = None, final: bool = False, outcome: str = "failed") -> str:
    """Record a failed attempt; returns the item's new state (``pending`` or ``held`` to be
    retried after a backoff, ``failed`` after its last attempt or when ``final``), or
    ``rejected`` when the lease was taken over."""
    etype, message = _describe(error)
    rows = _rows(conn, "queue.fail", {
        "ids": [item.id], "token": item.token, "types": [etype], "messages": [message],
        "tracebacks": [_clip(traceback)], "final": final, "outcome": outcome})
    if not rows:
        log.warning("refused the late failure of item %d: its lease was taken over", item.id)
        return "rejected"
    return str(rows[0]["new_state"])


def _describe(error: BaseException | str) -> tuple[str, str]:
    """Type and message of an error, storable whatever the handler raised (no NUL, bounded:
    one bad message must not fail the statement that records a whole batch)."""
    if isinstance(error, BaseException):
        return type(error).__name__, clip(str(error) or type(error).__name__)
    return "Error", clip(str(error))


def _clip(text: str | None) -> str | None:
    return None if text is None else clip(text)


def finish(conn: Connection, token: str, ok: Sequence[int],
           failed: Sequence[tuple[int, BaseException | str, str | None, str]]) -> None:
    """Complete ``ok`` and fail ``failed`` (id, error, traceback, outcome) of one claim in one
    statement. Raises :class:`LeaseLost` with the refused ids (as :func:`complete`)."""
    described = [(_describe(err), tb, outcome) for _, err, tb, outcome in failed]
    rejected = _one(conn, "queue.finish", {
        "token": token, "ok": IdArray(ok), "failed": IdArray(f[0] for f in failed),
        "types": [d[0][0] for d in described], "messages": [d[0][1] for d in described],
        "tracebacks": [_clip(d[1]) for d in described], "outcomes": [d[2] for d in described]})
    if rejected:
        raise _lost("end", list(rejected))


def release(conn: Connection, owner: str, ids: Sequence[int] | None = None, *,
            count: bool = False, error_type: str = "Released",
            message: str = "released by its worker", outcome: str = "released") -> int:
    """Put an owner's running items back. ``count`` makes it a failed attempt (after a crash
    or a kill), otherwise the attempt is given back (a clean shutdown)."""
    return int(_one(conn, "queue.release", {
        "owner": owner, "ids": list(ids) if ids is not None else None, "count": count,
        "type": error_type, "message": clip(message), "outcome": outcome}) or 0)


def heartbeat(conn: Connection, owner: str, lease_seconds: float,
              info: dict[str, Any] | None = None) -> int:
    """Record the worker as alive and extend its unlocked items' leases."""
    return int(_one(conn, "queue.heartbeat", {"owner": owner, "lease_seconds": lease_seconds,
                                              "info": Jsonb(info or {})}) or 0)


def sign_off(conn: Connection, owner: str) -> None:
    """Forget a worker at its clean exit (status stops listing it at once)."""
    _rows(conn, "queue.forget_worker", {"owner": owner})


def held_by(conn: Connection, owner: str) -> int:
    """How many running items an owner still holds."""
    return int(_one(conn, "queue.owner_running", {"owner": owner}) or 0)


def reap(conn: Connection) -> int:
    """Items whose lease expired become claimable again, each a failed attempt."""
    return int(_one(conn, "queue.reap") or 0)


def maintain(conn: Connection) -> int:
    """Reap expired leases and roll up the counters; returns how many items were reaped."""
    return int(_one(conn, "queue.maintain") or 0)


def rollup(conn: Connection) -> int:
    """Fold the counter deltas (what a reader's next view shows folded); 0 without waiting
    when maintenance or a prune is folding or pruning now."""
    return int(_one(conn, "queue.rollup") or 0)


def sync_kinds(conn: Connection, names: Iterable[str] | None = None) -> None:
    """Record the registered kinds' limits in ``queue_kinds`` (read by the SQL verbs)."""
    kinds = [KINDS[n] for n in (names if names is not None else sorted(KINDS))]
    if not kinds:
        return
    _rows(conn, "queue.sync_kinds", {
        "kinds": [k.name for k in kinds], "max_attempts": [k.max_attempts for k in kinds],
        "backoff": [k.backoff_seconds for k in kinds],
        "time_limits": [k.time_limit for k in kinds],
        "leases": [k.lease_seconds for k in kinds], "batch_sizes": [k.batch_size for k in kinds]})


def retry_failed(conn: Connection, kind: str | None = None,
                 set_id: str | None = None) -> int:
    """Make failed items pending again with fresh attempts; returns how many."""
    return int(_one(conn, "queue.retry_failed", {"kind": kind, "set_id": set_id}) or 0)


def prune(conn: Connection, older_than: timedelta) -> int:
    """Delete done items finished more than ``older_than`` ago (and old attempt records);
    forget the sets this leaves empty that changed before then (their rows, fan-in rules and
    per-set timings, folded into their kind's) and groups closed before then; returns how
    many items were deleted. Maintenance skips its rollup until the prune commits."""
    if older_than < timedelta(0):
        raise QueueError("prune needs a positive age", "pass e.g. --older-than 7")
    return int(_one(conn, "queue.prune", {"older_than": older_than}) or 0)
