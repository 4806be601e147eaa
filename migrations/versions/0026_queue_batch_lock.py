"""One advisory lock per batch instead of a row lock per item (issue 16): a worker's
processing transaction takes the lock of its batch, keyed by the lease token
(renderer.queue_lock_v3), and the verbs that must leave a running batch alone see it
(renderer.queue_batch_free): enqueue (queue_enqueue_many_v4, queue_enqueue_v4), heartbeat
(queue_heartbeat_v2), release (queue_release_v2), reap (queue_reap_v3, queue_maintain_v3).
They also skip rows locked by a worker of the previous release (queue_lock_v2), so both
kinds of worker run side by side during a rolling deploy. The previous functions stay.
queue_complete_v2 and queue_claim_next_v2 get faster bodies with the same behaviour (items
found by primary key, not by scanning the running index; seconds by date_part, not by
numeric extract; previous texts in ``retired/queue.sql``), so old workers gain too.

Revision ID: 0026
Revises: 0025
"""

from alembic import op

from renderer import schema

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None

NAMES = ["queue_batch_key", "queue_batch_free", "queue_enqueue_many_v4", "queue_enqueue_v4",
         "queue_lock_v3", "queue_heartbeat_v2", "queue_release_v2", "queue_reap_v3",
         "queue_maintain_v3"]

FASTER = ["queue_complete_v2", "queue_claim_next_v2"]  # same behaviour, faster bodies

DROPS = [
    "queue_maintain_v3()",
    "queue_reap_v3()",
    "queue_release_v2(text, bigint[], boolean, text, text, text)",
    "queue_heartbeat_v2(text, double precision, jsonb)",
    "queue_lock_v3(bigint[], uuid, double precision)",
    "queue_enqueue_v4(text, text, jsonb, text, text, integer, text, timestamptz, boolean)",
    "queue_enqueue_many_v4(text[], text[], jsonb[], text[], text[], integer[], text[],"
    " timestamptz[], boolean)",
    "queue_batch_free(uuid)",
    "queue_batch_key(uuid)",
]


def upgrade() -> None:
    schema.apply(op, [*NAMES, *FASTER], as_of=revision)


def downgrade() -> None:
    schema.apply(op, FASTER, as_of=down_revision)
    for signature in DROPS:
        op.execute(f"DROP FUNCTION IF EXISTS renderer.{signature}")
