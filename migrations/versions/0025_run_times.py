"""Run times that include the handler: an item's finished_at is the moment it completes or
fails (clock_timestamp()), not the start of the transaction the handler ran in (now()), so
the run-time histograms, the ETA, /metrics and the autoscaling signal count the handler's
work. queue_complete_v2 and queue_fail are fixed under their own names, so that workers of
the previous release record true run times too (their previous texts:
``retired/queue.sql``).

Revision ID: 0025
Revises: 0024
"""

from alembic import op

from renderer import schema

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

NAMES = ["queue_complete_v2", "queue_fail"]


def upgrade() -> None:
    schema.apply(op, NAMES, as_of=revision)


def downgrade() -> None:
    schema.apply(op, NAMES, as_of=down_revision)
