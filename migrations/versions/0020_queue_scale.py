"""The queue at census scale: the read side bounded by retention, not by history.

Indexes for the set lists (keyset pages by created_at, id) and a set's timing rows;
renderer.queue_status_v2 (set rows only for the sets asked for); renderer.queue_prune_v2
(also forgets the sets it emptied: timing rows folded into their kind's, fan-in rules,
closed groups). New objects only; the previous functions stay for a rolling deploy.

Revision ID: 0020
Revises: 0019
"""

from alembic import op

from renderer import schema

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

NAMES = ["queue_sets_created", "queue_timings_set", "queue_status_v2", "queue_prune_v2"]


def upgrade() -> None:
    schema.apply(op, NAMES, as_of=revision)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS renderer.queue_prune_v2(interval)")
    op.execute("DROP FUNCTION IF EXISTS renderer.queue_status_v2(double precision, text[])")
    op.execute("DROP INDEX IF EXISTS queue_timings_set")
    op.execute("DROP INDEX IF EXISTS queue_sets_created")
