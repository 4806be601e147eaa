-- The work queue (queue.sql): previous versions of the maintenance, status and prune, kept
-- because workers of the previous release call them during a rolling deploy
-- (sql/schema/README.md). Nothing in this release calls them; a migration drops them once no
-- released code does.

-- name: queue_maintain
-- What workers run every few seconds: reap expired leases; one of them at a time also
-- rolls up the counters and the timings and forgets workers silent for an hour.
CREATE FUNCTION renderer.queue_maintain() RETURNS integer
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
$$;

-- name: queue_maintain_v2
-- queue_maintain with queue_reap_v2 (frozen owners) and, one caller at a time, the rerun
-- requests no completion consumed.
CREATE FUNCTION renderer.queue_maintain_v2() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_reaped integer;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    v_reaped := renderer.queue_reap_v2();
    IF pg_try_advisory_xact_lock(7301734222) THEN
        PERFORM renderer.queue_apply_reruns();
        PERFORM renderer.queue_rollup();
        PERFORM renderer.queue_rollup_timings();
        DELETE FROM queue_workers WHERE seen_at < now() - interval '1 hour';
        DELETE FROM queue_rates WHERE minute < now() - interval '1 day';
    END IF;
    RETURN v_reaped;
END
$$;

-- name: queue_status
-- Per kind, per set and in total: counts by state, completions per second over the last
-- p_window_seconds, ETA of what is pending and running, age of the oldest pending item.
-- Reads only the counters, the un-rolled deltas and index probes.
CREATE FUNCTION renderer.queue_status(p_window_seconds double precision DEFAULT 300)
RETURNS TABLE (scope text, name text, state text, pending bigint, held bigint,
               running bigint, done bigint, failed bigint, cancelled bigint,
               rate_per_s double precision, eta_s double precision,
               oldest_pending_s double precision)
LANGUAGE sql STABLE AS $$
    WITH c AS (
        SELECT x.kind, x.set_id, x.state, sum(x.n)::bigint AS n FROM (
            SELECT kind, set_id, state, n FROM queue_counts
            UNION ALL SELECT kind, set_id, state, n FROM queue_count_deltas) x
        GROUP BY 1, 2, 3),
    r AS (
        SELECT x.kind, x.set_id, sum(x.done)::bigint AS done, min(x.first_at) AS first_at
        FROM (
            SELECT kind, set_id, done, first_at FROM queue_rates
            WHERE minute >= date_trunc('minute',
                                       now() - make_interval(secs => p_window_seconds))
            UNION ALL
            SELECT kind, set_id, n, at FROM queue_count_deltas
            WHERE state = 'done' AND n > 0
              AND at >= now() - make_interval(secs => p_window_seconds)) x
        GROUP BY 1, 2),
    cs AS (
        SELECT 'kind' AS scope, c.kind AS name, c.state, c.n FROM c
        UNION ALL SELECT 'set', c.set_id, c.state, c.n FROM c WHERE c.set_id <> ''
        UNION ALL SELECT 'total', '', c.state, c.n FROM c),
    rr AS (
        SELECT 'kind' AS scope, r.kind AS name, r.done, r.first_at FROM r
        UNION ALL SELECT 'set', r.set_id, r.done, r.first_at FROM r WHERE r.set_id <> ''
        UNION ALL SELECT 'total', '', r.done, r.first_at FROM r),
    rate AS (
        SELECT rr.scope, rr.name,
               sum(rr.done) / greatest(extract(epoch FROM now() - min(rr.first_at)), 1.0)
               AS per_s
        FROM rr GROUP BY 1, 2),
    agg AS (
        SELECT cs.scope, cs.name,
               coalesce(sum(cs.n) FILTER (WHERE cs.state = 'pending'), 0)::bigint AS pending,
               coalesce(sum(cs.n) FILTER (WHERE cs.state = 'held'), 0)::bigint AS held,
               coalesce(sum(cs.n) FILTER (WHERE cs.state = 'running'), 0)::bigint AS running,
               coalesce(sum(cs.n) FILTER (WHERE cs.state = 'done'), 0)::bigint AS done,
               coalesce(sum(cs.n) FILTER (WHERE cs.state = 'failed'), 0)::bigint AS failed,
               coalesce(sum(cs.n) FILTER (WHERE cs.state = 'cancelled'), 0)::bigint
               AS cancelled
        FROM cs GROUP BY 1, 2)
    SELECT agg.scope, agg.name,
           CASE agg.scope WHEN 'set' THEN coalesce(
               (SELECT s.state FROM queue_sets s WHERE s.id = agg.name), 'active') END,
           agg.pending, agg.held, agg.running, agg.done, agg.failed, agg.cancelled,
           coalesce(rate.per_s, 0),
           CASE WHEN agg.pending + agg.running = 0 THEN 0
                WHEN coalesce(rate.per_s, 0) > 0 THEN (agg.pending + agg.running) / rate.per_s
           END,
           CASE WHEN agg.pending > 0 THEN greatest(0, extract(epoch FROM now() - (
               CASE agg.scope
                   WHEN 'kind' THEN renderer.queue_oldest_pending(agg.name)
                   WHEN 'set' THEN (SELECT min(q.run_after) FROM work_queue q
                                    WHERE q.state = 'pending' AND q.set_id = agg.name)
                   ELSE (SELECT min(renderer.queue_oldest_pending(k.name))
                         FROM agg k WHERE k.scope = 'kind' AND k.pending > 0)
               END)))
           END
    FROM agg LEFT JOIN rate ON rate.scope = agg.scope AND rate.name = agg.name
    WHERE agg.pending + agg.held + agg.running + agg.done + agg.failed + agg.cancelled > 0
       OR agg.scope = 'total'
    ORDER BY CASE agg.scope WHEN 'total' THEN 0 WHEN 'kind' THEN 1 ELSE 2 END, agg.name
$$;

-- name: queue_prune
-- Delete done items finished before the retention period, and old attempts.
CREATE FUNCTION renderer.queue_prune(p_older_than interval) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_n bigint;
BEGIN
    DELETE FROM work_queue WHERE state = 'done' AND finished_at < now() - p_older_than;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    DELETE FROM queue_attempts WHERE at < now() - p_older_than;
    DELETE FROM queue_workers WHERE seen_at < now() - interval '1 hour';
    PERFORM renderer.queue_rollup();
    DELETE FROM queue_counts WHERE n = 0;
    RETURN v_n;
END
$$;

-- name: queue_status_v2
-- queue_status with the set rows limited to p_set_ids (NULL: every set, as queue_status;
-- '{}': none): a page of sets costs its own rows, not those of every set on record, and
-- /metrics, which shows kinds, none. Kinds and the total are summed without the set
-- dimension (a few groups, not one per set and state).
CREATE FUNCTION renderer.queue_status_v2(p_window_seconds double precision DEFAULT 300,
                                         p_set_ids text[] DEFAULT NULL)
RETURNS TABLE (scope text, name text, state text, pending bigint, held bigint,
               running bigint, done bigint, failed bigint, cancelled bigint,
               rate_per_s double precision, eta_s double precision,
               oldest_pending_s double precision)
LANGUAGE sql STABLE AS $$
    WITH x AS NOT MATERIALIZED (
        SELECT kind, set_id, state, n FROM queue_counts
        UNION ALL SELECT kind, set_id, state, n FROM queue_count_deltas),
    c AS (  -- kinds and the total: a few groups, whatever the number of sets
        SELECT x.kind, x.state, sum(x.n)::bigint AS n FROM x GROUP BY 1, 2),
    cset AS (
        SELECT x.set_id, x.state, sum(x.n)::bigint AS n FROM x
        WHERE x.set_id <> '' AND (p_set_ids IS NULL OR x.set_id = ANY (p_set_ids))
        GROUP BY 1, 2),
    r AS (
        SELECT x.kind, x.set_id, sum(x.done)::bigint AS done, min(x.first_at) AS first_at
        FROM (
            SELECT kind, set_id, done, first_at FROM queue_rates
            WHERE minute >= date_trunc('minute',
                                       now() - make_interval(secs => p_window_seconds))
            UNION ALL
            SELECT kind, set_id, n, at FROM queue_count_deltas
            WHERE state = 'done' AND n > 0
              AND at >= now() - make_interval(secs => p_window_seconds)) x
        GROUP BY 1, 2),
    cs AS (
        SELECT 'kind' AS scope, c.kind AS name, c.state, c.n FROM c
        UNION ALL SELECT 'set', cset.set_id, cset.state, cset.n FROM cset
        UNION ALL SELECT 'total', '', c.state, c.n FROM c),
    rr AS (
        SELECT 'kind' AS scope, r.kind AS name, r.done, r.first_at FROM r
        UNION ALL SELECT 'set', r.set_id, r.done, r.first_at FROM r
                  WHERE r.set_id <> '' AND (p_set_ids IS NULL OR r.set_id = ANY (p_set_ids))
        UNION ALL SELECT 'total', '', r.done, r.first_at FROM r),
    rate AS (
        SELECT rr.scope, rr.name,
               sum(rr.done) / greatest(extract(epoch FROM now() - min(rr.first_at)), 1.0)
               AS per_s
        FROM rr GROUP BY 1, 2),
    agg AS (
        SELECT cs.scope, cs.name,
               coalesce(sum(cs.n) FILTER (WHERE cs.state = 'pending'), 0)::bigint AS pending,
               coalesce(sum(cs.n) FILTER (WHERE cs.state = 'held'), 0)::bigint AS held,
               coalesce(sum(cs.n) FILTER (WHERE cs.state = 'running'), 0)::bigint AS running,
               coalesce(sum(cs.n) FILTER (WHERE cs.state = 'done'), 0)::bigint AS done,
               coalesce(sum(cs.n) FILTER (WHERE cs.state = 'failed'), 0)::bigint AS failed,
               coalesce(sum(cs.n) FILTER (WHERE cs.state = 'cancelled'), 0)::bigint
               AS cancelled
        FROM cs GROUP BY 1, 2)
    SELECT agg.scope, agg.name,
           CASE agg.scope WHEN 'set' THEN coalesce(
               (SELECT s.state FROM queue_sets s WHERE s.id = agg.name), 'active') END,
           agg.pending, agg.held, agg.running, agg.done, agg.failed, agg.cancelled,
           coalesce(rate.per_s, 0),
           CASE WHEN agg.pending + agg.running = 0 THEN 0
                WHEN coalesce(rate.per_s, 0) > 0 THEN (agg.pending + agg.running) / rate.per_s
           END,
           CASE WHEN agg.pending > 0 THEN greatest(0, extract(epoch FROM now() - (
               CASE agg.scope
                   WHEN 'kind' THEN renderer.queue_oldest_pending(agg.name)
                   WHEN 'set' THEN (SELECT min(q.run_after) FROM work_queue q
                                    WHERE q.state = 'pending' AND q.set_id = agg.name)
                   ELSE (SELECT min(renderer.queue_oldest_pending(k.name))
                         FROM agg k WHERE k.scope = 'kind' AND k.pending > 0)
               END)))
           END
    FROM agg LEFT JOIN rate ON rate.scope = agg.scope AND rate.name = agg.name
    WHERE agg.pending + agg.held + agg.running + agg.done + agg.failed + agg.cancelled > 0
       OR agg.scope = 'total'
    ORDER BY CASE agg.scope WHEN 'total' THEN 0 WHEN 'kind' THEN 1 ELSE 2 END, agg.name
$$;

-- Issue 17, the totals: /metrics, the autoscaling signal and `queue status` read the kinds
-- and the total, which queue_status_v2 and the timings statement summed over every set's
-- counter and timing rows (346 and 914 ms at 10,003 kept sets). The per-kind rows below
-- hold those sums, kept by statement triggers on the per-set tables, so the totals read
-- O(kinds) rows. Triggers, not the rollup functions: every writer of the per-set rows (the
-- maintenance rollups of this and the previous release, prune, recount) keeps them equal
-- to the per-set sums with no change of its own. Only the maintenance pass writes the
-- per-set rows, so completions never touch these rows (they append deltas, as before).

-- name: queue_prune_v2
-- queue_prune, then forget the sets it left empty: a set changed before the retention
-- period with no item left loses its row, its fan-in rules (queue_rules.set_id) and its
-- timing rows, which are folded first into the kind's row of no set ('') so that the
-- completions /metrics counts never go down. Groups all done (open = 0) and closed before
-- the period go too: their items were pruned, and a group with no row is one with no items
-- (the counter triggers recreate it). Returns the number of items deleted.
CREATE FUNCTION renderer.queue_prune_v2(p_older_than interval) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_n bigint;
    v_sets text[];
BEGIN
    v_n := renderer.queue_prune(p_older_than);
    PERFORM renderer.queue_rollup_timings();
    SELECT coalesce(array_agg(s.id), '{}') INTO v_sets
    FROM queue_sets s
    WHERE s.changed_at < now() - p_older_than AND s.created_at < now() - p_older_than
      AND NOT EXISTS (SELECT 1 FROM queue_counts c WHERE c.set_id = s.id AND c.n <> 0)
      AND NOT EXISTS (SELECT 1 FROM queue_count_deltas d WHERE d.set_id = s.id);
    IF cardinality(v_sets) > 0 THEN
        WITH gone AS (
            DELETE FROM queue_timings t WHERE t.set_id = ANY (v_sets) RETURNING t.*)
        INSERT INTO queue_timings AS t (kind, set_id, what, bucket, n, sum, max,
                                        first_at, last_at)
        SELECT g.kind, '', g.what, g.bucket, sum(g.n), sum(g.sum), max(g.max),
               min(g.first_at), max(g.last_at)
        FROM gone g GROUP BY 1, 3, 4 ORDER BY 1, 3, 4
        ON CONFLICT (kind, set_id, what, bucket) DO UPDATE SET
            n = t.n + excluded.n, sum = t.sum + excluded.sum,
            max = greatest(t.max, excluded.max),
            first_at = least(t.first_at, excluded.first_at),
            last_at = greatest(t.last_at, excluded.last_at);
        DELETE FROM queue_rules r WHERE r.set_id = ANY (v_sets);
        DELETE FROM queue_counts c WHERE c.set_id = ANY (v_sets);
        DELETE FROM queue_rates r WHERE r.set_id = ANY (v_sets);
        DELETE FROM queue_throttles t WHERE t.set_id = ANY (v_sets);
        DELETE FROM queue_throttle_log l WHERE l.set_id = ANY (v_sets);
        DELETE FROM queue_sets s WHERE s.id = ANY (v_sets);
    END IF;
    DELETE FROM queue_groups g
    WHERE g.open = 0 AND g.closed_at < now() - p_older_than;
    RETURN v_n;
END
$$;
