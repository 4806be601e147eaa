"""The work queue: items, leases, counters, fan-in rules, workers.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SELECT 1")  # placeholder, filled in by its issue


def downgrade() -> None:
    op.execute("SELECT 1")
