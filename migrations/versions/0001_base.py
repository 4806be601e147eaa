"""Base: PostGIS and the renderer schema that holds the psql-callable functions.

Revision ID: 0001
Revises:
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    op.execute("CREATE SCHEMA IF NOT EXISTS renderer")


def downgrade() -> None:
    op.execute("DROP SCHEMA IF EXISTS renderer CASCADE")
