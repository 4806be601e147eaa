"""The queue's totals per kind, so that /metrics, the autoscaling signal and `queue status`
read O(kinds) rows, not O(sets) (issue 17).

queue_kind_counts and queue_kind_timings hold queue_counts and queue_timings summed over
sets, kept equal to those sums by statement triggers on the per-set tables (every writer of
those, of this release or the previous one, keeps them right); filled here from the
per-set rows under a lock that holds off the maintenance rollups until commit. Indexes for
a page of sets' counters, the sets with work left, and the rates of the last minutes.
renderer.queue_status_v3 reads them; renderer.queue_prune_v3 holds the maintenance lock so
that a maintenance rollup never waits on the per-kind rows prune holds; queue_status_v2 and
queue_prune_v2 stay for a rolling deploy.

Revision ID: 0027
Revises: 0026
"""

from alembic import op

from renderer import schema

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None

NAMES = ["queue_kind_counts", "queue_kind_timings", "queue_counts_by_kind",
         "queue_counts_kind_insert", "queue_counts_kind_update", "queue_counts_kind_delete",
         "queue_timings_by_kind", "queue_timings_kind_insert", "queue_timings_kind_update",
         "queue_timings_kind_delete", "queue_counts_set", "queue_counts_open",
         "queue_rates_minute", "queue_status_v3", "queue_prune_v3"]

FILL = """
LOCK TABLE queue_counts, queue_timings IN SHARE ROW EXCLUSIVE MODE;
INSERT INTO queue_kind_counts (kind, state, n)
SELECT kind, state, sum(n) FROM queue_counts GROUP BY 1, 2;
INSERT INTO queue_kind_timings (kind, what, bucket, n, sum, max, first_at, last_at)
SELECT kind, what, bucket, sum(n), sum(sum), max(max), min(first_at), max(last_at)
FROM queue_timings GROUP BY 1, 2, 3;
"""


def upgrade() -> None:
    schema.apply(op, NAMES, as_of=revision)
    op.execute(FILL)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS renderer.queue_prune_v3(interval)")
    op.execute("DROP FUNCTION IF EXISTS renderer.queue_status_v3(double precision, text[])")
    for index in ("queue_rates_minute", "queue_counts_open", "queue_counts_set"):
        op.execute(f"DROP INDEX IF EXISTS {index}")
    for table, what in (("queue_counts", "counts"), ("queue_timings", "timings")):
        for event in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_kind_{event} ON {table}")
        op.execute(f"DROP FUNCTION IF EXISTS renderer.queue_{what}_by_kind()")
    op.execute("DROP TABLE IF EXISTS queue_kind_timings")
    op.execute("DROP TABLE IF EXISTS queue_kind_counts")
