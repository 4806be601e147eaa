"""Enqueue never waits on a worker; frozen workers lose their rows within about a lease.

A rerun asked for a running item goes to ``queue_reruns`` instead of the item's row, which a
worker holds locked for its batch (queue_enqueue_v2, queue_enqueue_many_v2); the completion
consumes it (queue_complete_v2, queue_finish_v2) and the maintenance pass settles the rest
(queue_apply_reruns, queue_maintain_v2). The processing transaction names its session after
the lease token (queue_lock_v2), so the reaper ends the session of an owner that stopped
heartbeating and takes its items over (queue_reap_v2). The previous functions stay for
workers of the previous release.

Revision ID: 0013
Revises: 0011
"""

from alembic import op

from renderer import schema

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

NAMES = ["queue_reruns", "queue_enqueue_many_v2", "queue_enqueue_v2", "queue_lock_v2",
         "queue_complete_v2", "queue_finish_v2", "queue_reap_v2", "queue_apply_reruns",
         "queue_maintain_v2"]


def upgrade() -> None:
    schema.apply(op, NAMES, as_of=revision)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS renderer.queue_maintain_v2(),"
               " renderer.queue_apply_reruns(), renderer.queue_reap_v2(),"
               " renderer.queue_finish_v2(uuid, bigint[], bigint[], text[], text[], text[],"
               " text[]), renderer.queue_complete_v2(bigint[], uuid),"
               " renderer.queue_lock_v2(bigint[], uuid, double precision),"
               " renderer.queue_enqueue_v2(text, text, jsonb, text, text, integer, text,"
               " timestamptz, boolean), renderer.queue_enqueue_many_v2(text[], text[], jsonb[],"
               " text[], text[], integer[], text[], timestamptz[], boolean)")
    op.execute("DROP TABLE IF EXISTS queue_reruns")
