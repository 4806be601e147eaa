"""Per-batch leases (issue 16, item 3): a claim no longer writes its items. The pending items
wait in ``queue_pending`` (one narrow row each, one index in claim order), the held and
failed ones are listed in ``queue_parked``, both kept in step with work_queue by statement
triggers whoever writes it; a claim deletes its batch from queue_pending and writes one
``queue_leases`` row; the completion's update of an item to done is then its only write,
and HOT: the four partial indexes of work_queue, whose predicates named ``state``, are
dropped, and the table gets fillfactor 45 (room for a new version of every row of a page).

One release, not two: the previous release's workers reach the queue through the
``renderer.queue_*`` functions by name, and every one of them that reads or writes pending,
held or running items gets a lease-aware body here with the same signature and the same
result for its caller (CREATE OR REPLACE; the previous texts in ``retired/queue.sql`` as
``name@0038``), so old and new workers run side by side on one queue. The few statements
an old worker runs straight against work_queue only read (docs/queue-leases.md says what
they see). Items running when this migrates become leases: one row per lease token, the
items back to 'pending' with the attempt their claim added taken off again (the
completion adds it), their counters left as they are (still running).

Revision ID: 0039
Revises: 0038
"""

from alembic import op

from renderer import schema

revision = "0039"
down_revision = "0038"
branch_labels = None
depends_on = None

TABLES = ["queue_pending", "queue_pending_claim", "queue_pending_set", "queue_parked",
          "queue_parked_set", "queue_leases", "queue_leases_owner", "queue_items"]

NEW = ["queue_lease_ending", "queue_on_side_insert", "queue_on_side_update",
       "queue_on_side_delete", "queue_lease_batch", "queue_lease_take", "queue_lease_end",
       "queue_lease_complete"]

TRIGGERS = ["work_queue_side_insert", "work_queue_side_update", "work_queue_side_delete"]

REPLACED = ["queue_on_update", "queue_feed", "queue_throttle_waiting", "queue_claim",
            "queue_claim_next_v2", "queue_lock_v3", "queue_heartbeat_v2", "queue_release_v2",
            "queue_reap_v3", "queue_complete_v2", "queue_complete", "queue_fail",
            "queue_enqueue_many_v4", "queue_enqueue_v4", "queue_fire", "queue_apply_reruns",
            "queue_retry", "queue_throttle", "queue_pause_set", "queue_resume_set",
            "queue_cancel_set", "queue_oldest_pending", "queue_recount", "queue_status_v3"]

NAMES = [*TABLES, *NEW, *REPLACED, *TRIGGERS]  # what this revision applies

INDEXES = ["work_queue_claim", "work_queue_set_pending", "work_queue_running",
           "work_queue_parked"]

CONVERT = """
LOCK TABLE work_queue IN SHARE ROW EXCLUSIVE MODE;
INSERT INTO queue_pending (id, kind, priority, run_after, since, set_id)
SELECT id, kind, priority, run_after, greatest(run_after, enqueued_at), set_id
FROM work_queue WHERE state = 'pending';
INSERT INTO queue_parked (id, kind, state, run_after, set_id)
SELECT id, kind, state, run_after, set_id FROM work_queue WHERE state IN ('held', 'failed');
INSERT INTO queue_leases (token, owner, kind, expires, started_at, ids)
SELECT lease_token, min(lease_owner), min(kind), max(lease_expires),
       min(coalesce(started_at, now())), array_agg(id ORDER BY id)
FROM work_queue WHERE state = 'running' AND lease_token IS NOT NULL GROUP BY lease_token;
ALTER TABLE work_queue DISABLE TRIGGER work_queue_counts_update;
UPDATE work_queue SET state = 'pending', attempt = greatest(attempt - 1, 0),
       lease_owner = NULL, lease_token = NULL, lease_expires = NULL
WHERE state = 'running' AND lease_token IS NOT NULL;
ALTER TABLE work_queue ENABLE TRIGGER work_queue_counts_update
"""


def upgrade() -> None:
    schema.apply(op, [*TABLES, *NEW], as_of=revision)
    for statement in CONVERT.split(";"):
        op.execute(statement)
    schema.apply(op, [*REPLACED, *TRIGGERS], as_of=revision)
    for index in INDEXES:
        op.execute(f"DROP INDEX {index}")
    op.execute("ALTER TABLE work_queue SET (fillfactor = 45)")


def downgrade() -> None:
    op.execute("ALTER TABLE work_queue RESET (fillfactor)")
    for trigger in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON work_queue")
    op.execute("ALTER TABLE work_queue DISABLE TRIGGER work_queue_counts_update")
    op.execute("UPDATE work_queue w SET state = 'running', attempt = w.attempt + 1,"
               " lease_owner = l.owner, lease_token = l.token, lease_expires = l.expires,"
               " started_at = l.started_at FROM queue_leases l"
               " WHERE w.id = ANY (l.ids) AND w.state = 'pending'")
    op.execute("ALTER TABLE work_queue ENABLE TRIGGER work_queue_counts_update")
    schema.apply(op, [*INDEXES, *REPLACED], as_of=down_revision)
    for function in ["queue_lease_complete(bigint[], uuid, boolean)",
                     "queue_lease_end(bigint[], text[], boolean, text, text, text, text,"
                     " boolean)", "queue_lease_take(uuid, bigint[])",
                     "queue_lease_batch(text, integer, integer, text, double precision)",
                     "queue_on_side_delete()", "queue_on_side_update()",
                     "queue_on_side_insert()", "queue_lease_ending()"]:
        op.execute(f"DROP FUNCTION IF EXISTS renderer.{function}")
    op.execute("DROP VIEW IF EXISTS queue_items")
    for table in ["queue_leases", "queue_parked", "queue_pending"]:
        op.execute(f"DROP TABLE IF EXISTS {table}")
