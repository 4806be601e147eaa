"""The processing transaction finds its batch's rows by the tuple ids the claim returned
(issue 16, item 3): queue_claim_next_v3 returns each row's tuple id after its update,
queue_lock_v4 and queue_finish_v3 (queue_complete_v3) take them and read the rows there
(queue_batch_rows: one heap fetch an item instead of a primary-key descent, the id checked;
by primary key for a row that moved since). The previous functions stay for the previous
release's workers (sql/schema/queue_previous_claim.sql).

Revision ID: 0039
Revises: 0038
"""

from alembic import op

from renderer import schema

revision = "0039"
down_revision = "0038"
branch_labels = None
depends_on = None

NAMES = ["queue_claim_next_v3", "queue_batch_rows", "queue_lock_v4", "queue_complete_v3",
         "queue_finish_v3"]

DROPS = [
    "queue_finish_v3(uuid, bigint[], tid[], bigint[], text[], text[], text[], text[])",
    "queue_complete_v3(bigint[], tid[], uuid)",
    "queue_lock_v4(bigint[], tid[], uuid, double precision)",
    "queue_batch_rows(bigint[], tid[], uuid)",
    "queue_claim_next_v3(text[], integer[], double precision[], text, boolean)",
]


def upgrade() -> None:
    schema.apply(op, NAMES, as_of=revision)


def downgrade() -> None:
    for signature in DROPS:
        op.execute(f"DROP FUNCTION IF EXISTS renderer.{signature}")
