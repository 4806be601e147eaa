"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}

Rules (sql/schema/README.md): definitions come from sql/schema/<area>.sql by name, never
copied here. A function whose behaviour changes gets a new versioned name (queue_claim_v2)
so old workers keep working during a rolling deploy; drop the old name only once no
released code calls it, and move its text to sql/schema/retired/ as name@<last revision>.
A table change is an ALTER delta below, with the canonical CREATE TABLE updated alongside
(its previous text retired the same way).
"""

from alembic import op

from renderer import schema

revision = "${up_revision}"
down_revision = ${'"%s"' % down_revision if down_revision else None}
branch_labels = None
depends_on = None

# Canonical definitions this revision creates or replaces, in order.
NAMES: list[str] = []


def upgrade() -> None:
    schema.apply(op, NAMES, as_of=revision)
% if upgrades:
    ${upgrades}
% endif


def downgrade() -> None:
    ${downgrades if downgrades else "pass"}
