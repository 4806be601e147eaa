"""Traffic ingest: consumed-files ledger, rejected rows, weekly histograms.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SELECT 1")  # placeholder, filled in by its issue


def downgrade() -> None:
    op.execute("SELECT 1")
