"""Attempt outcomes counted for good: queue_outcome_totals, kept by a trigger on
queue_attempts, so that /metrics exposes failures as counters that survive pruning.

New objects only; the counts start from the attempts still on record.

Revision ID: 0016
Revises: 0011
"""

from alembic import op

from renderer import schema

revision = "0016"
down_revision = "0014"
branch_labels = None
depends_on = None

NAMES = ["queue_outcome_totals", "queue_outcome_totals_add", "queue_attempts_totals"]


def upgrade() -> None:
    schema.apply(op, NAMES, as_of=revision)
    op.execute("INSERT INTO queue_outcome_totals (kind, outcome, n)"
               " SELECT kind, outcome, count(*) FROM queue_attempts GROUP BY 1, 2")


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS queue_attempts_totals ON queue_attempts")
    op.execute("DROP FUNCTION IF EXISTS renderer.queue_outcome_totals_add()")
    op.execute("DROP TABLE IF EXISTS queue_outcome_totals")
