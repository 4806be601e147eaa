"""Dribbled batches (issue 18): per-set limits, at most N items in flight and/or M per hour.

A throttled set's items wait held (queue_throttles, queue_throttle_log); the claim lets them
through within the limits (queue_feed, called by queue_claim_v2 and queue_claim_next_v2),
and enqueue puts new items of a throttled set straight into held (queue_enqueue_many_v3,
queue_enqueue_v3). queue_target_state (where an item goes when put back) and
queue_resume_set learn about throttled sets under their own names: only SQL calls the
first, and old workers must keep a throttled set's retried items held too. queue_fire
enqueues through queue_enqueue_many_v3 (never waiting on a running successor's row lock);
queue_reap_v2 no longer fails the whole reap when its role may not end a frozen worker's
session (a fix, same name: old workers' maintenance gets it).
Workers of the previous release keep calling the previous functions, which stay.

Revision ID: 0018
Revises: 0017
"""

from alembic import op

from renderer import schema

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

NAMES = ["queue_throttles", "queue_throttle_log", "queue_throttle_log_set",
         "queue_target_state", "queue_resume_set", "queue_enqueue_many_v3",
         "queue_enqueue_v3", "queue_fire", "queue_throttle_allowance", "queue_feed",
         "queue_throttle_waiting", "queue_claim_v2", "queue_claim_next_v2", "queue_throttle",
         "queue_reap_v2"]


def upgrade() -> None:
    schema.apply(op, NAMES, as_of=revision)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS renderer.queue_throttle(text, integer, integer),"
               " renderer.queue_claim_next_v2(text[], integer[], double precision[], text,"
               " boolean), renderer.queue_claim_v2(text, integer, text, double precision,"
               " integer), renderer.queue_throttle_waiting(text[], boolean),"
               " renderer.queue_feed(text[]),"
               " renderer.queue_throttle_allowance(text, integer, integer),"
               " renderer.queue_enqueue_v3(text, text, jsonb, text, text, integer, text,"
               " timestamptz, boolean), renderer.queue_enqueue_many_v3(text[], text[], jsonb[],"
               " text[], text[], integer[], text[], timestamptz[], boolean)")
    op.execute("DROP FUNCTION renderer.queue_target_state(text),"
               " renderer.queue_resume_set(text), renderer.queue_fire(text, text, text, text),"
               " renderer.queue_reap_v2()")
    schema.apply(op, ["queue_target_state", "queue_resume_set", "queue_fire", "queue_reap_v2"],
                 as_of="0017")
    op.execute("DROP TABLE IF EXISTS queue_throttle_log, queue_throttles")
