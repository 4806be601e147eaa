-- The work queue (queue.sql): the counter and timing triggers, their roll-ups, maintenance
-- and the status a page reads.

-- name: queue_on_insert
CREATE FUNCTION renderer.queue_on_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO queue_count_deltas (kind, set_id, state, n)
    SELECT n.kind, coalesce(n.set_id, ''), n.state, count(*)
    FROM new_rows n GROUP BY 1, 2, 3;
    IF EXISTS (SELECT 1 FROM new_rows n WHERE n.grp IS NOT NULL) THEN
        INSERT INTO queue_groups AS g (kind, grp, open)
        SELECT n.kind, n.grp, count(*) FILTER (WHERE n.state <> 'done')
        FROM new_rows n WHERE n.grp IS NOT NULL
        GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT (kind, grp) DO UPDATE SET open = g.open + excluded.open;
    END IF;
    PERFORM pg_notify('renderer_queue', d.kind)
    FROM (SELECT DISTINCT n.kind FROM new_rows n WHERE n.state = 'pending') d;
    RETURN NULL;
END
$$;

-- name: queue_on_update
-- A statement that ends leases (queue_lease_ending) moves its items out of running: their
-- 'pending' in work_queue meant leased, which the claim counted as running.
CREATE OR REPLACE FUNCTION renderer.queue_on_update() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    v_ending boolean := renderer.queue_lease_ending();
BEGIN
    INSERT INTO queue_count_deltas (kind, set_id, state, n)
    SELECT x.kind, x.set_id, x.state, sum(x.n) FROM (
        SELECT o.kind, coalesce(o.set_id, '') AS set_id,
               CASE WHEN v_ending AND o.state = 'pending' THEN 'running' ELSE o.state END,
               -count(*) AS n
        FROM old_rows o GROUP BY 1, 2, 3
        UNION ALL
        SELECT n.kind, coalesce(n.set_id, ''), n.state, count(*)
        FROM new_rows n GROUP BY 1, 2, 3) x
    GROUP BY 1, 2, 3 HAVING sum(x.n) <> 0;

    IF EXISTS (SELECT 1 FROM new_rows n WHERE n.grp IS NOT NULL) THEN
        FOR r IN
            WITH p AS (
                SELECT o.kind AS ok, o.grp AS og, o.state AS os,
                       n.kind AS nk, n.grp AS ng, n.state AS ns
                FROM old_rows o JOIN new_rows n ON n.id = o.id
                WHERE o.grp IS NOT NULL OR n.grp IS NOT NULL),
            d AS (
                SELECT x.kind, x.grp, sum(x.n) AS n, bool_or(x.closing) AS closing FROM (
                    SELECT p.ok AS kind, p.og AS grp, -1 AS n, false AS closing
                    FROM p WHERE p.og IS NOT NULL AND p.os <> 'done'
                    UNION ALL
                    SELECT p.nk, p.ng, CASE WHEN p.ns <> 'done' THEN 1 ELSE 0 END,
                           p.os <> 'done' AND p.ns = 'done'
                    FROM p WHERE p.ng IS NOT NULL) x
                GROUP BY 1, 2 HAVING sum(x.n) <> 0 OR bool_or(x.closing)),
            up AS (
                INSERT INTO queue_groups AS g (kind, grp, open)
                SELECT d.kind, d.grp, d.n FROM d ORDER BY d.kind, d.grp
                ON CONFLICT (kind, grp) DO UPDATE SET open = g.open + excluded.open,
                    closed_at = CASE WHEN g.open + excluded.open = 0 THEN now()
                                     ELSE g.closed_at END
                RETURNING g.kind, g.grp, g.open)
            SELECT up.kind, up.grp FROM up JOIN d ON d.kind = up.kind AND d.grp = up.grp
            WHERE up.open = 0 AND d.closing
            ORDER BY 1, 2
        LOOP
            PERFORM renderer.queue_fire(r.kind, r.grp);
        END LOOP;
    END IF;

    IF EXISTS (SELECT 1 FROM new_rows n WHERE n.state = 'pending') THEN
        PERFORM pg_notify('renderer_queue', d.kind)
        FROM (SELECT DISTINCT n.kind FROM new_rows n JOIN old_rows o ON o.id = n.id
              WHERE n.state = 'pending' AND (v_ending OR o.state <> 'pending')) d;
    END IF;
    RETURN NULL;
END
$$;

-- name: queue_on_delete
CREATE FUNCTION renderer.queue_on_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO queue_count_deltas (kind, set_id, state, n)
    SELECT o.kind, coalesce(o.set_id, ''), o.state, -count(*)
    FROM old_rows o GROUP BY 1, 2, 3;
    IF EXISTS (SELECT 1 FROM old_rows o WHERE o.grp IS NOT NULL AND o.state <> 'done') THEN
        UPDATE queue_groups g SET open = g.open - d.n
        FROM (SELECT o.kind, o.grp, count(*) AS n FROM old_rows o
              WHERE o.grp IS NOT NULL AND o.state <> 'done' GROUP BY 1, 2) d
        WHERE g.kind = d.kind AND g.grp = d.grp;
    END IF;
    RETURN NULL;
END
$$;

-- name: work_queue_counts_insert
CREATE TRIGGER work_queue_counts_insert AFTER INSERT ON work_queue
REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION renderer.queue_on_insert();

-- name: work_queue_counts_update
CREATE TRIGGER work_queue_counts_update AFTER UPDATE ON work_queue
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION renderer.queue_on_update();

-- name: work_queue_counts_delete
CREATE TRIGGER work_queue_counts_delete AFTER DELETE ON work_queue
REFERENCING OLD TABLE AS old_rows
FOR EACH STATEMENT EXECUTE FUNCTION renderer.queue_on_delete();

-- name: queue_lease_ending
-- Whether the statement running ends leases (complete, fail, release, reap set it around
-- their update of the leased items): its items leave 'running', not 'pending', and none of
-- them is in queue_pending. Transaction-local, reset by the verb after its statement.
CREATE FUNCTION renderer.queue_lease_ending() RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT coalesce(current_setting('renderer.lease_ending', true), '') = 'on'
$$;

-- name: queue_on_side_insert
-- Keep queue_pending and queue_parked in step with work_queue, whoever writes it (the
-- verbs, a previous release's functions, the bulk COPY): statement triggers with
-- transition tables, as the counters.
CREATE FUNCTION renderer.queue_on_side_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO queue_pending (id, kind, priority, run_after, since, set_id)
    SELECT n.id, n.kind, n.priority, n.run_after, greatest(n.run_after, n.enqueued_at),
           n.set_id
    FROM new_rows n WHERE n.state = 'pending';
    INSERT INTO queue_parked (id, kind, state, run_after, set_id)
    SELECT n.id, n.kind, n.state, n.run_after, n.set_id
    FROM new_rows n WHERE n.state IN ('held', 'failed');
    RETURN NULL;
END
$$;

-- name: queue_on_side_update
-- An item that stays pending keeps its queue_pending row unless its claim key moved: then
-- the old row is deleted and a new one written only if the old one was there, so an
-- update of a leased item (pending in work_queue, absent from queue_pending) never makes
-- it claimable. When the statement ends leases (queue_lease_ending), the old rows are
-- leased items: none is deleted, and those put back pending are inserted.
CREATE FUNCTION renderer.queue_on_side_update() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_ending boolean := renderer.queue_lease_ending();
BEGIN
    IF EXISTS (SELECT 1 FROM new_rows n WHERE n.state = 'pending')
       OR (NOT v_ending AND EXISTS (SELECT 1 FROM old_rows o WHERE o.state = 'pending')) THEN
    WITH c AS MATERIALIZED (
        SELECT n.id, o.kind AS ok, o.priority AS op, o.run_after AS ora, o.state AS os,
               n.kind, n.priority, n.run_after, n.state AS ns, n.set_id,
               greatest(n.run_after, n.enqueued_at) AS since,
               (o.kind, o.priority, o.run_after, o.set_id, greatest(o.run_after, o.enqueued_at))
               IS DISTINCT FROM (n.kind, n.priority, n.run_after, n.set_id,
                                 greatest(n.run_after, n.enqueued_at)) AS moved
        FROM old_rows o JOIN new_rows n ON n.id = o.id
        WHERE o.state = 'pending' OR n.state = 'pending'),
    d AS (
        DELETE FROM queue_pending p USING c
        WHERE NOT v_ending AND c.os = 'pending' AND (c.ns <> 'pending' OR c.moved)
          AND p.kind = c.ok AND p.priority = c.op AND p.run_after = c.ora AND p.id = c.id
        RETURNING p.id)
    INSERT INTO queue_pending (id, kind, priority, run_after, since, set_id)
    SELECT c.id, c.kind, c.priority, c.run_after, c.since, c.set_id FROM c
    WHERE c.ns = 'pending'
      AND (v_ending OR c.os <> 'pending' OR (c.moved AND c.id IN (SELECT d.id FROM d)));
    END IF;
    -- A pending item whose fingerprint this statement changed while a claim leased it (the
    -- claim does not write the item, so nothing orders the two): the claim may have read
    -- the old fingerprint, so the item runs again after, as a running item would. Its
    -- queue_pending row is locked (waiting for a claim that holds it) and found gone.
    IF NOT v_ending AND EXISTS (
            SELECT 1 FROM old_rows o JOIN new_rows n ON n.id = o.id
            WHERE o.state = 'pending' AND n.state = 'pending'
              AND o.fingerprint IS DISTINCT FROM n.fingerprint) THEN
        UPDATE work_queue w SET rerun = true
        FROM old_rows o JOIN new_rows n ON n.id = o.id
        WHERE o.state = 'pending' AND n.state = 'pending'
          AND o.fingerprint IS DISTINCT FROM n.fingerprint AND w.id = n.id AND NOT w.rerun
          AND NOT EXISTS (SELECT 1 FROM queue_pending p
                          WHERE p.kind = n.kind AND p.priority = n.priority
                            AND p.run_after = n.run_after AND p.id = n.id FOR UPDATE);
    END IF;
    IF EXISTS (SELECT 1 FROM old_rows o WHERE o.state IN ('held', 'failed'))
       OR EXISTS (SELECT 1 FROM new_rows n WHERE n.state IN ('held', 'failed')) THEN
        WITH c AS MATERIALIZED (
            SELECT n.id, o.state AS os, n.state AS ns, n.kind, n.run_after, n.set_id,
                   o.state IS DISTINCT FROM n.state
                   OR (o.kind, o.run_after, o.set_id)
                      IS DISTINCT FROM (n.kind, n.run_after, n.set_id) AS moved
            FROM old_rows o JOIN new_rows n ON n.id = o.id
            WHERE o.state IN ('held', 'failed') OR n.state IN ('held', 'failed')),
        d AS (
            DELETE FROM queue_parked p USING c
            WHERE c.os IN ('held', 'failed') AND c.moved AND p.id = c.id)
        INSERT INTO queue_parked (id, kind, state, run_after, set_id)
        SELECT c.id, c.kind, c.ns, c.run_after, c.set_id FROM c
        WHERE c.ns IN ('held', 'failed') AND c.moved
        ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, state = excluded.state,
            run_after = excluded.run_after, set_id = excluded.set_id;
    END IF;
    RETURN NULL;
END
$$;

-- name: queue_on_side_delete
CREATE FUNCTION renderer.queue_on_side_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM old_rows o WHERE o.state = 'pending') THEN
        DELETE FROM queue_pending p USING old_rows o
        WHERE o.state = 'pending' AND p.kind = o.kind AND p.priority = o.priority
          AND p.run_after = o.run_after AND p.id = o.id;
    END IF;
    IF EXISTS (SELECT 1 FROM old_rows o WHERE o.state IN ('held', 'failed')) THEN
        DELETE FROM queue_parked p USING old_rows o
        WHERE o.state IN ('held', 'failed') AND p.id = o.id;
    END IF;
    RETURN NULL;
END
$$;

-- name: work_queue_side_insert
CREATE TRIGGER work_queue_side_insert AFTER INSERT ON work_queue
REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION renderer.queue_on_side_insert();

-- name: work_queue_side_update
CREATE TRIGGER work_queue_side_update AFTER UPDATE ON work_queue
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION renderer.queue_on_side_update();

-- name: work_queue_side_delete
CREATE TRIGGER work_queue_side_delete AFTER DELETE ON work_queue
REFERENCING OLD TABLE AS old_rows
FOR EACH STATEMENT EXECUTE FUNCTION renderer.queue_on_side_delete();

-- name: queue_rollup
-- Fold the appended deltas into the counters and the per-minute completion rates.
CREATE FUNCTION renderer.queue_rollup() RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_n bigint;
BEGIN
    WITH d AS (DELETE FROM queue_count_deltas RETURNING *),
    c AS (
        INSERT INTO queue_counts AS c (kind, set_id, state, n)
        SELECT d.kind, d.set_id, d.state, sum(d.n) FROM d
        GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (kind, set_id, state) DO UPDATE SET n = c.n + excluded.n),
    r AS (
        INSERT INTO queue_rates AS r (kind, set_id, minute, done, first_at, last_at)
        SELECT d.kind, d.set_id, date_trunc('minute', d.at), sum(d.n), min(d.at), max(d.at)
        FROM d WHERE d.state = 'done' AND d.n > 0
        GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (kind, set_id, minute) DO UPDATE SET done = r.done + excluded.done,
            first_at = least(r.first_at, excluded.first_at),
            last_at = greatest(r.last_at, excluded.last_at))
    SELECT count(*) INTO v_n FROM d;
    RETURN v_n;
END
$$;

-- name: queue_rollup_timings
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
$$;

-- name: queue_maintain_v3
-- queue_maintain_v2 with queue_reap_v3 (batch locks).
CREATE FUNCTION renderer.queue_maintain_v3() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_reaped integer;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    v_reaped := renderer.queue_reap_v3();
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

-- name: queue_oldest_pending
-- Oldest claimable age per kind without scanning: one probe of the claim index per
-- distinct priority (a loose index scan). Leased items are not pending: queue_pending.
CREATE OR REPLACE FUNCTION renderer.queue_oldest_pending(p_kind text) RETURNS timestamptz
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_p integer;
    v_t timestamptz;
    v_best timestamptz;
BEGIN
    SELECT q.priority INTO v_p FROM queue_pending q WHERE q.kind = p_kind
    ORDER BY q.priority DESC, q.run_after, q.id LIMIT 1;
    WHILE v_p IS NOT NULL LOOP
        SELECT q.run_after INTO v_t FROM queue_pending q
        WHERE q.kind = p_kind AND q.priority = v_p
        ORDER BY q.priority DESC, q.run_after, q.id LIMIT 1;
        v_best := least(v_best, v_t);
        v_p := (SELECT q.priority FROM queue_pending q
                WHERE q.kind = p_kind AND q.priority < v_p
                ORDER BY q.priority DESC, q.run_after, q.id LIMIT 1);
    END LOOP;
    RETURN v_best;
END
$$;

-- name: queue_recount
-- Rebuild the counters from the table (a repair after manual edits; scans everything);
-- leased items count as running (queue_items).
CREATE OR REPLACE FUNCTION renderer.queue_recount() RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_n bigint;
BEGIN
    LOCK TABLE work_queue, queue_pending, queue_leases IN SHARE MODE;
    DELETE FROM queue_count_deltas;
    DELETE FROM queue_counts;
    INSERT INTO queue_counts (kind, set_id, state, n)
    SELECT kind, coalesce(set_id, ''), state, count(*) FROM queue_items GROUP BY 1, 2, 3;
    DELETE FROM queue_groups;
    INSERT INTO queue_groups (kind, grp, open)
    SELECT kind, grp, count(*) FILTER (WHERE state <> 'done')
    FROM work_queue WHERE grp IS NOT NULL GROUP BY 1, 2;
    SELECT coalesce(sum(n), 0) INTO v_n FROM queue_counts;
    RETURN v_n;
END
$$;

-- name: queue_outcome_totals_add
-- One upsert per statement and (kind, outcome), from the statement's transition table.
CREATE FUNCTION renderer.queue_outcome_totals_add() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO queue_outcome_totals AS t (kind, outcome, n)
    SELECT kind, outcome, count(*) FROM new_attempts GROUP BY 1, 2
    ON CONFLICT (kind, outcome) DO UPDATE SET n = t.n + excluded.n;
    RETURN NULL;
END
$$;

-- name: queue_attempts_totals
CREATE TRIGGER queue_attempts_totals AFTER INSERT ON queue_attempts
    REFERENCING NEW TABLE AS new_attempts
    FOR EACH STATEMENT EXECUTE FUNCTION renderer.queue_outcome_totals_add();

-- Issue 17 (the queue at census scale): what keeps the read side cheap as history grows.
-- Set lists are paged by keyset (created_at, id); a set's page reads its own timing rows;
-- queue_status_v2 computes the set rows asked for only; queue_prune_v2 also forgets the
-- sets it emptied (their timing rows folded into the kind's, their fan-in rules, closed
-- groups), so what the pages read is bounded by the retention period, not by all history.

-- name: queue_counts_by_kind
-- Adds each statement's change of queue_counts to queue_kind_counts: one upsert per
-- (kind, state), in key order.
CREATE FUNCTION renderer.queue_counts_by_kind() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO queue_kind_counts AS k (kind, state, n)
        SELECT c.kind, c.state, sum(c.n) FROM new_counts c GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT (kind, state) DO UPDATE SET n = k.n + excluded.n;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO queue_kind_counts AS k (kind, state, n)
        SELECT x.kind, x.state, sum(x.n) FROM (
            SELECT c.kind, c.state, c.n FROM new_counts c
            UNION ALL SELECT o.kind, o.state, -o.n FROM old_counts o) x
        GROUP BY 1, 2 HAVING sum(x.n) <> 0 ORDER BY 1, 2
        ON CONFLICT (kind, state) DO UPDATE SET n = k.n + excluded.n;
    ELSE
        INSERT INTO queue_kind_counts AS k (kind, state, n)
        SELECT o.kind, o.state, -sum(o.n) FROM old_counts o
        GROUP BY 1, 2 HAVING sum(o.n) <> 0 ORDER BY 1, 2
        ON CONFLICT (kind, state) DO UPDATE SET n = k.n + excluded.n;
    END IF;
    RETURN NULL;
END
$$;

-- name: queue_counts_kind_insert
CREATE TRIGGER queue_counts_kind_insert AFTER INSERT ON queue_counts
REFERENCING NEW TABLE AS new_counts
FOR EACH STATEMENT EXECUTE FUNCTION renderer.queue_counts_by_kind();

-- name: queue_counts_kind_update
CREATE TRIGGER queue_counts_kind_update AFTER UPDATE ON queue_counts
REFERENCING OLD TABLE AS old_counts NEW TABLE AS new_counts
FOR EACH STATEMENT EXECUTE FUNCTION renderer.queue_counts_by_kind();

-- name: queue_counts_kind_delete
CREATE TRIGGER queue_counts_kind_delete AFTER DELETE ON queue_counts
REFERENCING OLD TABLE AS old_counts
FOR EACH STATEMENT EXECUTE FUNCTION renderer.queue_counts_by_kind();

-- name: queue_timings_by_kind
-- Adds each statement's change of queue_timings to queue_kind_timings. A deleted row takes
-- its count and sum away, but not its max, first_at or last_at (these cannot be undone,
-- and prune folds what it deletes into the row of no set in the same statement).
CREATE FUNCTION renderer.queue_timings_by_kind() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO queue_kind_timings AS k (kind, what, bucket, n, sum, max, first_at,
                                             last_at)
        SELECT t.kind, t.what, t.bucket, sum(t.n), sum(t.sum), max(t.max), min(t.first_at),
               max(t.last_at)
        FROM new_timings t GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (kind, what, bucket) DO UPDATE SET
            n = k.n + excluded.n, sum = k.sum + excluded.sum,
            max = greatest(k.max, excluded.max),
            first_at = least(k.first_at, excluded.first_at),
            last_at = greatest(k.last_at, excluded.last_at);
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO queue_kind_timings AS k (kind, what, bucket, n, sum, max, first_at,
                                             last_at)
        SELECT x.kind, x.what, x.bucket, sum(x.n), sum(x.sum), max(x.max), min(x.first_at),
               max(x.last_at)
        FROM (SELECT t.kind, t.what, t.bucket, t.n, t.sum, t.max, t.first_at, t.last_at
              FROM new_timings t
              UNION ALL
              SELECT o.kind, o.what, o.bucket, -o.n, -o.sum, NULL, NULL, NULL
              FROM old_timings o) x
        GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (kind, what, bucket) DO UPDATE SET
            n = k.n + excluded.n, sum = k.sum + excluded.sum,
            max = greatest(k.max, excluded.max),
            first_at = least(k.first_at, excluded.first_at),
            last_at = greatest(k.last_at, excluded.last_at);
    ELSE
        UPDATE queue_kind_timings k SET n = k.n - o.n, sum = k.sum - o.sum
        FROM (SELECT t.kind, t.what, t.bucket, sum(t.n) AS n, sum(t.sum) AS sum
              FROM old_timings t GROUP BY 1, 2, 3) o
        WHERE k.kind = o.kind AND k.what = o.what AND k.bucket = o.bucket;
    END IF;
    RETURN NULL;
END
$$;

-- name: queue_timings_kind_insert
CREATE TRIGGER queue_timings_kind_insert AFTER INSERT ON queue_timings
REFERENCING NEW TABLE AS new_timings
FOR EACH STATEMENT EXECUTE FUNCTION renderer.queue_timings_by_kind();

-- name: queue_timings_kind_update
CREATE TRIGGER queue_timings_kind_update AFTER UPDATE ON queue_timings
REFERENCING OLD TABLE AS old_timings NEW TABLE AS new_timings
FOR EACH STATEMENT EXECUTE FUNCTION renderer.queue_timings_by_kind();

-- name: queue_timings_kind_delete
CREATE TRIGGER queue_timings_kind_delete AFTER DELETE ON queue_timings
REFERENCING OLD TABLE AS old_timings
FOR EACH STATEMENT EXECUTE FUNCTION renderer.queue_timings_by_kind();

-- name: queue_status_v3
-- queue_status_v2 with the kinds and the total read from queue_kind_counts (O(kinds), not
-- O(sets)), the sets asked for read by index (one probe each; NULL: every set, '{}': none)
-- and the throughput from the rates of the window only.
CREATE OR REPLACE FUNCTION renderer.queue_status_v3(p_window_seconds double precision DEFAULT 300,
                                         p_set_ids text[] DEFAULT NULL)
RETURNS TABLE (scope text, name text, state text, pending bigint, held bigint,
               running bigint, done bigint, failed bigint, cancelled bigint,
               rate_per_s double precision, eta_s double precision,
               oldest_pending_s double precision)
LANGUAGE sql STABLE AS $$
    WITH c AS (  -- kinds and the total: the per-kind rows and the deltas not yet folded
        SELECT x.kind, x.state, sum(x.n)::bigint AS n FROM (
            SELECT kind, state, n FROM queue_kind_counts
            UNION ALL SELECT kind, state, n FROM queue_count_deltas) x
        GROUP BY 1, 2),
    asked AS (SELECT DISTINCT a.id FROM unnest(p_set_ids) AS a(id)),
    cset AS (
        SELECT x.set_id, x.state, sum(x.n)::bigint AS n FROM (
            SELECT q.set_id, q.state, q.n FROM asked JOIN queue_counts q ON q.set_id = asked.id
            UNION ALL  -- every set (NULL): a one-time filter, not a scan, when sets are asked
            SELECT q.set_id, q.state, q.n FROM queue_counts q WHERE p_set_ids IS NULL
            UNION ALL
            SELECT d.set_id, d.state, d.n FROM queue_count_deltas d
            WHERE p_set_ids IS NULL OR d.set_id = ANY (p_set_ids)) x
        WHERE x.set_id <> ''
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
                   WHEN 'set' THEN (SELECT min(q.run_after) FROM queue_pending q
                                    WHERE q.set_id = agg.name)
                   ELSE (SELECT min(renderer.queue_oldest_pending(k.name))
                         FROM agg k WHERE k.scope = 'kind' AND k.pending > 0)
               END)))
           END
    FROM agg LEFT JOIN rate ON rate.scope = agg.scope AND rate.name = agg.name
    WHERE agg.pending + agg.held + agg.running + agg.done + agg.failed + agg.cancelled > 0
       OR agg.scope = 'total'
    ORDER BY CASE agg.scope WHEN 'total' THEN 0 WHEN 'kind' THEN 1 ELSE 2 END, agg.name
$$;
