"""The work queue: (kind, key) items in ``work_queue``, claimed in batches under fenced leases.

An item is named by its kind and key (``('histogram', 'AUTO/0/2140/410562')``) and carries a
JSON payload, a priority, a ``run_after`` time, an optional input fingerprint, an optional set
(a batch run) and an optional group (for fan-in). Enqueue is an upsert; claims take batches
with ``FOR UPDATE SKIP LOCKED`` ordered by priority, run_after, id; completions present the
lease token, so a late completion from a worker whose lease was taken over is refused.

A pipeline declares its stages in its profile (:mod:`renderer.profile`), which registers
each handler here; a plugin or a test may also register one directly::

    from renderer import queue

    @queue.register("histogram", time_limit=300, max_attempts=5)
    def histogram(job: queue.Job) -> None:
        rows = build(job.item.payload)
        job.conn.execute(...)           # output commits together with "done"
        job.enqueue("speedtile", ...)   # downstream work, same transaction

Every verb is also a SQL function in the ``renderer`` schema (``renderer.queue_enqueue_v4``,
``renderer.queue_claim``, ``renderer.queue_complete_v2``, ``renderer.queue_fail``,
``renderer.queue_status``, ...), the one implementation both this module and psql use. An
enqueue never waits on a worker: a rerun of an item being run is recorded beside it
(``queue_reruns``) and consumed by its completion. Millions of items at once go through
:func:`enqueue_bulk` (binary COPY: keys new to the queue straight into it, the others
through a staging table into the same upsert server-side).
The worker loop and pool live in :mod:`renderer.worker`.
"""

from renderer.queue._bulk import enqueue_bulk, enqueue_keys
from renderer.queue._job import Context, Job
from renderer.queue._registry import (
    KINDS,
    OPEN_STATES,
    PRIORITY_BATCH,
    PRIORITY_ON_DEMAND,
    STATES,
    BatchHook,
    Handler,
    Item,
    Kind,
    NewItem,
    Shutdown,
    StartHook,
    Successor,
    TimeLimitExceeded,
    get_kind,
    register,
)
from renderer.queue._status import (
    idle_state,
    item_history,
    list_failed,
    open_sets,
    remaining,
    shown_sets,
    status,
)
from renderer.queue._timings import Timing, bucket_bounds, timings
from renderer.queue._verbs import (
    add_rule,
    add_rules,
    cancel_set,
    claim,
    claim_batch,
    complete,
    create_set,
    enqueue,
    enqueue_many,
    fail,
    finish,
    heartbeat,
    held_by,
    list_sets,
    lock,
    maintain,
    pause_set,
    prune,
    reap,
    release,
    resume_set,
    retry_failed,
    rollup,
    sign_off,
    sync_kinds,
    throttle,
)

__all__ = [
    "KINDS",
    "OPEN_STATES",
    "PRIORITY_BATCH",
    "PRIORITY_ON_DEMAND",
    "STATES",
    "BatchHook",
    "Context",
    "Handler",
    "Item",
    "Job",
    "Kind",
    "NewItem",
    "Shutdown",
    "StartHook",
    "Successor",
    "TimeLimitExceeded",
    "Timing",
    "add_rule",
    "add_rules",
    "bucket_bounds",
    "cancel_set",
    "claim",
    "claim_batch",
    "complete",
    "create_set",
    "enqueue",
    "enqueue_bulk",
    "enqueue_keys",
    "enqueue_many",
    "fail",
    "finish",
    "get_kind",
    "heartbeat",
    "held_by",
    "idle_state",
    "item_history",
    "list_failed",
    "list_sets",
    "lock",
    "maintain",
    "open_sets",
    "pause_set",
    "prune",
    "reap",
    "register",
    "release",
    "remaining",
    "resume_set",
    "retry_failed",
    "rollup",
    "shown_sets",
    "sign_off",
    "status",
    "sync_kinds",
    "throttle",
    "timings",
]
