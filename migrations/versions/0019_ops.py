"""Operations: the callbacks runs name, posted back when their set ends (issue 18), the
definitions of ``sql/schema/ops.sql`` applied by name.

Revision ID: 0019
Revises: 0018
"""

from alembic import op

from renderer import schema

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

NAMES = ["run_callbacks", "run_callbacks_waiting"]


def upgrade() -> None:
    schema.apply(op, NAMES, as_of=revision)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS run_callbacks")
