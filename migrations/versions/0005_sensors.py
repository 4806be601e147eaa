"""Sensors: raw events, ledger, rejects, day-partitioned enriched table.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SELECT 1")  # placeholder, filled in by its issue


def downgrade() -> None:
    op.execute("SELECT 1")
