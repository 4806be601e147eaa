"""Queue timings: claim waits and run times as log-bucket histograms per (kind, set).

The set page used to read every done row of a set for its durations (1.5 s at 400,000
items) and ``/metrics`` saw only the claim latency of the items running at scrape time. Now
the claim and the completion verbs append a few rows per batch to ``queue_timing_deltas``
(no index, like ``queue_count_deltas``), and the maintenance pass folds them into
``queue_timings``: per (kind, set, what, bucket) a count, a sum, a max and the first and
last moments. Bucket b holds times in (1 ms * 2^(b-1), 1 ms * 2^b]; percentiles read from it
are estimates within a factor of two at worst, interpolated inside the bucket as
Prometheus' ``histogram_quantile`` does. Reads stay a few rows per set whatever its size.

Revision ID: 0010
Revises: 0009
"""

import importlib.util
from pathlib import Path

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TABLES = [
    """
    CREATE TABLE queue_timing_deltas (
        kind     text NOT NULL,
        set_id   text NOT NULL,
        what     text NOT NULL CHECK (what IN ('claim_wait', 'run')),
        bucket   smallint NOT NULL,
        n        bigint NOT NULL,
        sum      double precision NOT NULL,
        max      double precision NOT NULL,
        first_at timestamptz NOT NULL,
        last_at  timestamptz NOT NULL
    )
    """,
    """
    CREATE TABLE queue_timings (
        kind     text NOT NULL,
        set_id   text NOT NULL,
        what     text NOT NULL,
        bucket   smallint NOT NULL,
        n        bigint NOT NULL,
        sum      double precision NOT NULL,
        max      double precision NOT NULL,
        first_at timestamptz NOT NULL,  -- earliest start of what was measured
        last_at  timestamptz NOT NULL,  -- latest end
        PRIMARY KEY (kind, set_id, what, bucket)
    )
    """,
]

FUNCTIONS = [
    # The bucket of a time: 0 for up to 1 ms, b for (2^(b-1), 2^b] ms, at most 40. In
    # float8 (the C library's log10, as Python's math.log10): numeric log cost 20 us a call.
    """
    CREATE FUNCTION renderer.queue_timing_bucket(p_seconds double precision) RETURNS smallint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
        SELECT CASE WHEN p_seconds <= 0.001::float8 THEN 0
                    ELSE least(40, ceil(log(p_seconds / 0.001::float8) / log(2::float8)))
                    END::smallint
    $$
    """,
    """
    CREATE FUNCTION renderer.queue_rollup_timings() RETURNS bigint
    LANGUAGE plpgsql AS $$
    DECLARE
        v_n bigint;
    BEGIN
        WITH d AS (DELETE FROM queue_timing_deltas RETURNING *),
        t AS (
            INSERT INTO queue_timings AS t (kind, set_id, what, bucket, n, sum, max,
                                           first_at, last_at)
            SELECT d.kind, d.set_id, d.what, d.bucket, sum(d.n), sum(d.sum), max(d.max),
                   min(d.first_at), max(d.last_at)
            FROM d GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
            ON CONFLICT (kind, set_id, what, bucket) DO UPDATE SET
                n = t.n + excluded.n, sum = t.sum + excluded.sum,
                max = greatest(t.max, excluded.max),
                first_at = least(t.first_at, excluded.first_at),
                last_at = greatest(t.last_at, excluded.last_at))
        SELECT count(*) INTO v_n FROM d;
        RETURN v_n;
    END
    $$
    """,
    # As in 0002, plus one claim_wait timing per claimed item: from the moment it became
    # claimable (enqueued, or its retry time) to its claim.
    """
    CREATE OR REPLACE FUNCTION renderer.queue_claim(
        p_kind text, p_limit integer DEFAULT 1, p_owner text DEFAULT 'psql',
        p_lease_seconds double precision DEFAULT 60, p_reserve integer DEFAULT 0)
    RETURNS SETOF work_queue
    LANGUAGE plpgsql AS $$
    DECLARE
        v_token uuid := gen_random_uuid();
        v_ids bigint[] := '{}';
    BEGIN
        PERFORM set_config('synchronous_commit', 'off', true);
        IF p_reserve > 0 THEN
            SELECT coalesce(array_agg(c.id), '{}') INTO v_ids FROM (
                SELECT q.id FROM work_queue q
                WHERE q.state = 'pending' AND q.kind = p_kind AND q.priority <= 0
                  AND q.run_after <= now()
                ORDER BY q.priority DESC, q.run_after, q.id
                LIMIT least(p_reserve, p_limit) FOR UPDATE SKIP LOCKED) c;
        END IF;
        IF cardinality(v_ids) < p_limit THEN
            SELECT v_ids || coalesce(array_agg(c.id), '{}') INTO v_ids FROM (
                SELECT q.id FROM work_queue q
                WHERE q.state = 'pending' AND q.kind = p_kind AND q.run_after <= now()
                  AND q.id <> ALL (v_ids)
                ORDER BY q.priority DESC, q.run_after, q.id
                LIMIT p_limit - cardinality(v_ids) FOR UPDATE SKIP LOCKED) c;
        END IF;
        IF cardinality(v_ids) = 0 THEN
            RETURN;
        END IF;
        RETURN QUERY
        WITH c AS (
            UPDATE work_queue w
            SET state = 'running', attempt = w.attempt + 1, lease_owner = p_owner,
                lease_token = v_token,
                lease_expires = now() + make_interval(secs => p_lease_seconds),
                started_at = now()
            WHERE w.id = ANY (v_ids)
            RETURNING w.*),
        t AS (
            INSERT INTO queue_timing_deltas
            SELECT w.kind, w.set_id, 'claim_wait', renderer.queue_timing_bucket(w.s), count(*),
                   sum(w.s), max(w.s), min(w.since), max(w.started_at)
            FROM (SELECT c.kind, coalesce(c.set_id, '') AS set_id, c.started_at,
                         greatest(c.run_after, c.enqueued_at) AS since,
                         greatest(0, extract(epoch FROM c.started_at
                                             - greatest(c.run_after, c.enqueued_at)))::float8 AS s
                  FROM c) w
            GROUP BY 1, 2, 3, 4)
        SELECT * FROM c;
    END
    $$
    """,
    # As in 0002, plus one run timing per item that ends done (claim to completion).
    """
    CREATE OR REPLACE FUNCTION renderer.queue_complete(p_ids bigint[], p_token uuid)
    RETURNS bigint[]
    LANGUAGE plpgsql AS $$
    DECLARE
        v_done bigint[];
        v_rejected bigint[];
    BEGIN
        WITH u AS (
            UPDATE work_queue w SET
                state = CASE WHEN w.rerun THEN renderer.queue_target_state(w.set_id)
                             ELSE 'done' END,
                attempt = CASE WHEN w.rerun THEN 0 ELSE w.attempt END,
                run_after = CASE WHEN w.rerun THEN now() ELSE w.run_after END,
                rerun = false, lease_owner = NULL, lease_token = NULL, lease_expires = NULL,
                finished_at = now(), last_error = NULL
            WHERE w.id = ANY (p_ids) AND w.lease_token = p_token AND w.state = 'running'
            RETURNING w.id, w.kind, w.set_id, w.state, w.started_at, w.finished_at),
        t AS (
            INSERT INTO queue_timing_deltas
            SELECT r.kind, r.set_id, 'run', renderer.queue_timing_bucket(r.s), count(*),
                   sum(r.s), max(r.s), min(r.started_at), max(r.finished_at)
            FROM (SELECT u.kind, coalesce(u.set_id, '') AS set_id, u.started_at, u.finished_at,
                         greatest(0, extract(epoch FROM u.finished_at - u.started_at))::float8 AS s
                  FROM u WHERE u.started_at IS NOT NULL) r
            GROUP BY 1, 2, 3, 4)
        SELECT coalesce(array_agg(u.id), '{}') INTO v_done FROM u;
        IF cardinality(v_done) = cardinality(p_ids) THEN
            RETURN '{}';
        END IF;
        v_rejected := ARRAY(SELECT unnest(p_ids) EXCEPT SELECT unnest(v_done));
        PERFORM renderer.queue_reject(v_rejected, 'completion');
        RETURN v_rejected;
    END
    $$
    """,
    # As in 0002, plus folding the timings.
    """
    CREATE OR REPLACE FUNCTION renderer.queue_maintain() RETURNS integer
    LANGUAGE plpgsql AS $$
    DECLARE
        v_reaped integer;
    BEGIN
        PERFORM set_config('synchronous_commit', 'off', true);
        v_reaped := renderer.queue_reap();
        IF pg_try_advisory_xact_lock(7301734222) THEN
            PERFORM renderer.queue_rollup();
            PERFORM renderer.queue_rollup_timings();
            DELETE FROM queue_workers WHERE seen_at < now() - interval '1 hour';
            DELETE FROM queue_rates WHERE minute < now() - interval '1 day';
        END IF;
        RETURN v_reaped;
    END
    $$
    """,
]

# The run times of the items already done, so that existing sets keep their durations.
BACKFILL = """
    INSERT INTO queue_timing_deltas
    SELECT r.kind, r.set_id, 'run', renderer.queue_timing_bucket(r.s), count(*), sum(r.s),
           max(r.s), min(r.started_at), max(r.finished_at)
    FROM (SELECT kind, coalesce(set_id, '') AS set_id, started_at, finished_at,
                 greatest(0, extract(epoch FROM finished_at - started_at))::float8 AS s
          FROM work_queue
          WHERE state = 'done' AND started_at IS NOT NULL AND finished_at IS NOT NULL) r
    GROUP BY 1, 2, 3, 4
"""


def upgrade() -> None:
    for statement in TABLES + FUNCTIONS:
        op.execute(statement)
    op.execute(BACKFILL)
    op.execute("SELECT renderer.queue_rollup_timings()")


def _queue_0002() -> object:
    """The 0002 migration module, whose function bodies a downgrade puts back."""
    spec = importlib.util.spec_from_file_location("queue_0002",
                                                  Path(__file__).with_name("0002_queue.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def downgrade() -> None:
    q = _queue_0002()
    originals = [*q.CLAIM, *q.FINISH, *q.OPERATIONS]  # type: ignore[attr-defined]
    for name in ("queue_claim(", "queue_complete(p_ids", "queue_maintain("):
        body = next(s for s in originals if f"FUNCTION renderer.{name}" in s)
        op.execute(body.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))
    op.execute("DROP FUNCTION IF EXISTS renderer.queue_rollup_timings()")
    op.execute("DROP FUNCTION IF EXISTS renderer.queue_timing_bucket(double precision)")
    op.execute("DROP TABLE IF EXISTS queue_timings")
    op.execute("DROP TABLE IF EXISTS queue_timing_deltas")
