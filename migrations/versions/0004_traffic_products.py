"""Traffic products: speed tiles, reference tiles, coverage.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SELECT 1")  # placeholder, filled in by its issue


def downgrade() -> None:
    op.execute("SELECT 1")
