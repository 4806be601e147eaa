-- The work queue (queue.sql): claim, feed and throttles, the batch lock, heartbeats, release
-- and the reaper.

-- name: queue_throttle_allowance
-- How many more items of a throttled set may be let through now: the in-flight limit less
-- its items pending or running (from the counters and their un-rolled deltas, read in one
-- snapshot), the per-hour limit less what the log let through in the last hour; the
-- smaller of the two (a missing limit does not count). Negative when over.
-- In PL/pgSQL for its cached plan (a SQL function this size is planned at every call).
CREATE FUNCTION renderer.queue_throttle_allowance(p_set_id text, p_in_flight integer,
                                                  p_per_hour integer) RETURNS bigint
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN least(
        p_in_flight - (SELECT coalesce(sum(x.n), 0) FROM (
            SELECT c.n FROM queue_counts c
            WHERE c.set_id = p_set_id AND c.state IN ('pending', 'running')
            UNION ALL
            SELECT d.n FROM queue_count_deltas d
            WHERE d.set_id = p_set_id AND d.state IN ('pending', 'running')) x),
        p_per_hour - (SELECT coalesce(sum(l.n), 0) FROM queue_throttle_log l
                      WHERE l.set_id = p_set_id AND l.at > now() - interval '1 hour'));
END
$$;

-- name: queue_feed
-- Let held items of throttled active sets of p_kinds through (held -> pending), each set up
-- to its allowance. One feeder per set at a time: the set's throttle row is locked for the
-- caller's transaction, and a set another feeder holds is skipped, never waited on. The
-- held items are read by the parked index in its order (about the order they came in).
-- Returns the number of items let through.
CREATE FUNCTION renderer.queue_feed(p_kinds text[]) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    t record;
    v_allow bigint;
    v_n integer;
    v_total integer := 0;
BEGIN
    FOR t IN
        SELECT th.set_id, th.in_flight, th.per_hour FROM queue_throttles th
        JOIN queue_sets s ON s.id = th.set_id AND s.state = 'active'
        WHERE EXISTS (SELECT 1 FROM work_queue q WHERE q.state = 'held'
                      AND q.set_id = th.set_id AND q.kind = ANY (p_kinds))
        ORDER BY th.set_id
        FOR UPDATE OF th SKIP LOCKED
    LOOP
        v_allow := renderer.queue_throttle_allowance(t.set_id, t.in_flight, t.per_hour);
        CONTINUE WHEN v_allow <= 0;
        UPDATE work_queue w SET state = 'pending'
        WHERE w.id IN (SELECT q.id FROM work_queue q
                       WHERE q.state = 'held' AND q.set_id = t.set_id
                         AND q.kind = ANY (p_kinds) AND q.run_after <= now()
                       LIMIT v_allow FOR UPDATE SKIP LOCKED);
        GET DIAGNOSTICS v_n = ROW_COUNT;
        IF v_n > 0 AND t.per_hour IS NOT NULL THEN
            DELETE FROM queue_throttle_log l
            WHERE l.set_id = t.set_id AND l.at <= now() - interval '1 hour';
            INSERT INTO queue_throttle_log (set_id, n) VALUES (t.set_id, v_n);
        END IF;
        v_total := v_total + v_n;
    END LOOP;
    RETURN v_total;
END
$$;

-- name: queue_throttle_waiting
-- For a worker's idle check: whether held items of throttled active sets of p_kinds wait
-- (p_ready false), or wait and could be let through now (p_ready true).
CREATE FUNCTION renderer.queue_throttle_waiting(p_kinds text[], p_ready boolean)
RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
DECLARE
    t record;
BEGIN
    FOR t IN
        SELECT th.set_id, th.in_flight, th.per_hour FROM queue_throttles th
        JOIN queue_sets s ON s.id = th.set_id AND s.state = 'active'
    LOOP
        CONTINUE WHEN NOT EXISTS (SELECT 1 FROM work_queue q WHERE q.state = 'held'
                                  AND q.set_id = t.set_id AND q.kind = ANY (p_kinds));
        IF NOT p_ready THEN
            RETURN true;
        END IF;
        IF renderer.queue_throttle_allowance(t.set_id, t.in_flight, t.per_hour) > 0
           AND EXISTS (SELECT 1 FROM work_queue q WHERE q.state = 'held'
                       AND q.set_id = t.set_id AND q.kind = ANY (p_kinds)
                       AND q.run_after <= now()) THEN
            RETURN true;
        END IF;
    END LOOP;
    RETURN false;
END
$$;

-- name: queue_claim_v2
-- queue_claim after letting through what throttled sets allow (queue_feed). Unthrottled,
-- it costs one probe of the empty queue_throttles.
CREATE FUNCTION renderer.queue_claim_v2(
    p_kind text, p_limit integer DEFAULT 1, p_owner text DEFAULT 'psql',
    p_lease_seconds double precision DEFAULT 60, p_reserve integer DEFAULT 0)
RETURNS SETOF work_queue
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM queue_throttles) THEN
        PERFORM renderer.queue_feed(ARRAY[p_kind]);
    END IF;
    RETURN QUERY SELECT * FROM renderer.queue_claim(p_kind, p_limit, p_owner,
                                                    p_lease_seconds, p_reserve);
END
$$;

-- name: queue_claim_next_v2
-- The worker's claim in one function (issue 16): queue_claim_next and queue_claim flattened,
-- so the batch is materialised once, not at each of three nested RETURN QUERY levels, and
-- only the columns a worker reads come back. First it lets through what throttled sets
-- allow (queue_feed; unthrottled, one probe of the empty queue_throttles), then picks the
-- kind at the head of the queue among p_kinds (on a batch turn, the head of the batch
-- priority), takes that kind's batch (a fifth of it, all of it on a batch turn, first from
-- batch priority, so on-demand work cannot starve the batch), and leases it. The rows are
-- updated by the tuple ids their lock returned (no second index probe per item).
-- Asynchronous commit: a claim lost in a crash only makes its items claimable again. Each
-- claimed item adds a claim_wait timing, its seconds by date_part (float8; extract returns
-- numeric, whose conversion cost 1 us a row more).
CREATE OR REPLACE FUNCTION renderer.queue_claim_next_v2(
    p_kinds text[], p_limits integer[], p_leases double precision[], p_owner text,
    p_batch_turn boolean DEFAULT false)
RETURNS TABLE (id bigint, kind text, key text, payload jsonb, attempt integer, set_id text,
               grp text, lease_token uuid, priority integer, fingerprint text)
LANGUAGE plpgsql AS $$
DECLARE
    v_kind text;
    v_pos integer;
    v_limit integer;
    v_reserve integer;
    v_token uuid := gen_random_uuid();
    v_ids bigint[] := '{}';
    v_tids tid[] := '{}';
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    IF EXISTS (SELECT 1 FROM queue_throttles) THEN
        PERFORM renderer.queue_feed(p_kinds);
    END IF;
    IF p_batch_turn THEN
        SELECT k.kind INTO v_kind
        FROM unnest(p_kinds) AS k(kind)
        CROSS JOIN LATERAL (
            SELECT q.priority, q.run_after, q.id FROM work_queue q
            WHERE q.state = 'pending' AND q.kind = k.kind AND q.priority <= 0
              AND q.run_after <= now()
            ORDER BY q.priority DESC, q.run_after, q.id LIMIT 1) h
        ORDER BY h.priority DESC, h.run_after, h.id LIMIT 1;
    END IF;
    IF v_kind IS NULL THEN
        SELECT k.kind INTO v_kind
        FROM unnest(p_kinds) AS k(kind)
        CROSS JOIN LATERAL (
            SELECT q.priority, q.run_after, q.id FROM work_queue q
            WHERE q.state = 'pending' AND q.kind = k.kind AND q.run_after <= now()
            ORDER BY q.priority DESC, q.run_after, q.id LIMIT 1) h
        ORDER BY h.priority DESC, h.run_after, h.id LIMIT 1;
    END IF;
    IF v_kind IS NULL THEN
        RETURN;
    END IF;
    v_pos := array_position(p_kinds, v_kind);
    v_limit := p_limits[v_pos];
    v_reserve := CASE WHEN p_batch_turn THEN v_limit ELSE v_limit / 5 END;
    IF v_reserve > 0 THEN
        SELECT coalesce(array_agg(c.id), '{}'), coalesce(array_agg(c.ctid), '{}')
        INTO v_ids, v_tids FROM (
            SELECT q.id, q.ctid FROM work_queue q
            WHERE q.state = 'pending' AND q.kind = v_kind AND q.priority <= 0
              AND q.run_after <= now()
            ORDER BY q.priority DESC, q.run_after, q.id
            LIMIT v_reserve FOR UPDATE SKIP LOCKED) c;
    END IF;
    IF cardinality(v_ids) < v_limit THEN
        SELECT v_ids || coalesce(array_agg(c.id), '{}'),
               v_tids || coalesce(array_agg(c.ctid), '{}')
        INTO v_ids, v_tids FROM (
            SELECT q.id, q.ctid FROM work_queue q
            WHERE q.state = 'pending' AND q.kind = v_kind AND q.run_after <= now()
              AND q.id <> ALL (v_ids)
            ORDER BY q.priority DESC, q.run_after, q.id
            LIMIT v_limit - cardinality(v_ids) FOR UPDATE SKIP LOCKED) c;
    END IF;
    IF cardinality(v_ids) = 0 THEN
        RETURN;
    END IF;
    RETURN QUERY
    WITH c AS (
        UPDATE work_queue w
        SET state = 'running', attempt = w.attempt + 1, lease_owner = p_owner,
            lease_token = v_token,
            lease_expires = now() + make_interval(secs => p_leases[v_pos]),
            started_at = now()
        WHERE w.ctid = ANY (v_tids)
        RETURNING w.id, w.kind, w.key, w.payload, w.attempt, w.set_id, w.grp, w.lease_token,
                  w.priority, w.fingerprint, w.run_after, w.enqueued_at, w.started_at),
    t AS (
        INSERT INTO queue_timing_deltas
        SELECT w.kind, w.set_id, 'claim_wait', renderer.queue_timing_bucket(w.s), count(*),
               sum(w.s), max(w.s), min(w.since), max(w.started_at)
        FROM (SELECT c.kind, coalesce(c.set_id, '') AS set_id, c.started_at,
                     greatest(c.run_after, c.enqueued_at) AS since,
                     greatest(0::float8, date_part('epoch', c.started_at
                                         - greatest(c.run_after, c.enqueued_at))) AS s
              FROM c) w
        GROUP BY 1, 2, 3, 4)
    SELECT c.id, c.kind, c.key, c.payload, c.attempt, c.set_id, c.grp, c.lease_token,
           c.priority, c.fingerprint FROM c;
END
$$;

-- name: queue_lock_v3
-- Start processing a claimed batch: take the batch's advisory lock (queue_batch_key) for
-- the rest of the transaction, then return the ids still leased with p_token. Nobody takes
-- them over now: the reaper, heartbeat, release and enqueue see the lock (queue_batch_free)
-- and leave the batch to its completion, which fences with the token. One lock per batch
-- instead of a row lock per item (queue_lock_v2): no WAL record and no tuple written per
-- item. The lock is taken first and the rows read after, by a statement of their own with
-- its own snapshot, so a reaper that took the batch just before is seen. The session is
-- named after the lease token for the transaction (queue_reap_v3 ends it when its owner
-- froze); past p_idle_seconds idle the server ends the transaction.
CREATE FUNCTION renderer.queue_lock_v3(p_ids bigint[], p_token uuid,
                                       p_idle_seconds double precision DEFAULT 0)
RETURNS SETOF bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_key integer[] := renderer.queue_batch_key(p_token);
BEGIN
    PERFORM set_config('application_name', 'renderer lease ' || p_token, true);
    IF p_idle_seconds > 0 THEN
        PERFORM set_config('idle_in_transaction_session_timeout',
                           (ceil(p_idle_seconds * 1000))::bigint::text, true);
    END IF;
    PERFORM pg_advisory_xact_lock(v_key[1], v_key[2]);
    RETURN QUERY SELECT q.id FROM work_queue q  -- by primary key (queue_complete_v2)
        WHERE q.id = ANY (p_ids) AND q.lease_token = p_token
          AND coalesce(q.state, '') = 'running'
        ORDER BY q.id;
END
$$;

-- name: queue_heartbeat_v2
-- Record the worker as alive and extend the leases of its items that no processing
-- transaction runs (their batch lock free and, for a worker of the previous release, their
-- rows unlocked) and that expire within half a lease: a batch just claimed is left alone
-- (the next heartbeat, a quarter of a lease later, finds it), so the heartbeat neither
-- rewrites its rows nor makes its worker wait for the batch's lock.
CREATE FUNCTION renderer.queue_heartbeat_v2(p_owner text,
                                            p_lease_seconds double precision DEFAULT 60,
                                            p_info jsonb DEFAULT '{}')
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_n integer;
    v_soon timestamptz := now() + make_interval(secs => p_lease_seconds / 2);
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    INSERT INTO queue_workers AS qw (owner, info) VALUES (p_owner, p_info)
    ON CONFLICT (owner) DO UPDATE SET seen_at = now(), info = qw.info || excluded.info;
    WITH b AS MATERIALIZED (
        SELECT t.token FROM (SELECT DISTINCT q.lease_token AS token FROM work_queue q
                             WHERE q.state = 'running' AND q.lease_owner = p_owner
                               AND q.lease_expires < v_soon) t
        WHERE renderer.queue_batch_free(t.token))
    UPDATE work_queue w SET lease_expires = now() + make_interval(secs => p_lease_seconds)
    WHERE w.id IN (SELECT q.id FROM work_queue q
                   WHERE q.state = 'running' AND q.lease_owner = p_owner
                     AND q.lease_expires < v_soon AND q.lease_token IN (SELECT b.token FROM b)
                   FOR UPDATE SKIP LOCKED);
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n;
END
$$;

-- name: queue_release_v2
-- Put an owner's running items back: after a shutdown or reconnect (p_count false: the
-- attempt is given back), or after a crash or a kill (p_count true: the attempt counts,
-- recorded with p_type and p_message, and the item may end failed). Items inside a live
-- processing transaction (their batch lock held, or their rows locked by a worker of the
-- previous release) are skipped.
CREATE FUNCTION renderer.queue_release_v2(
    p_owner text, p_ids bigint[] DEFAULT NULL, p_count boolean DEFAULT false,
    p_type text DEFAULT 'Released', p_message text DEFAULT 'released by its worker',
    p_outcome text DEFAULT 'released') RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_n integer;
BEGIN
    WITH b AS MATERIALIZED (
        SELECT t.token FROM (SELECT DISTINCT q.lease_token AS token FROM work_queue q
                             WHERE q.state = 'running' AND q.lease_owner = p_owner
                               AND (p_ids IS NULL OR q.id = ANY (p_ids))) t
        WHERE renderer.queue_batch_free(t.token)),
    x AS (
        SELECT q.id FROM work_queue q
        WHERE q.state = 'running' AND q.lease_owner = p_owner
          AND (p_ids IS NULL OR q.id = ANY (p_ids))
          AND q.lease_token IN (SELECT b.token FROM b)
        FOR UPDATE SKIP LOCKED),
    u AS (
        UPDATE work_queue w SET
            state = CASE WHEN p_count AND w.attempt >= renderer.queue_max_attempts(w.kind)
                         THEN 'failed' ELSE renderer.queue_target_state(w.set_id) END,
            attempt = CASE WHEN p_count THEN w.attempt ELSE greatest(w.attempt - 1, 0) END,
            run_after = CASE WHEN p_count THEN now() + renderer.queue_backoff(
                                 renderer.queue_backoff_base(w.kind), w.attempt)
                             ELSE now() END,
            last_error = CASE WHEN p_count THEN p_type || ' ' || p_message
                              ELSE w.last_error END,
            lease_owner = NULL, lease_token = NULL, lease_expires = NULL
        FROM x WHERE w.id = x.id
        RETURNING w.id, w.kind, w.key, w.attempt),
    a AS (
        INSERT INTO queue_attempts (item_id, kind, key, attempt, outcome, owner, error_type,
                                    message)
        SELECT u.id, u.kind, u.key, u.attempt, p_outcome, p_owner, p_type, p_message
        FROM u WHERE p_count)
    SELECT count(*) INTO v_n FROM u;
    RETURN v_n;
END
$$;

-- name: queue_reap_v3
-- queue_reap_v2 for batch locks (queue_lock_v3): first the sessions of frozen owners are
-- ended as there, then the items whose lease expired count a failed attempt, except those
-- of a batch a worker runs (its lock held, or, for a worker of the previous release, its
-- rows locked). One lock probe per expired batch.
CREATE FUNCTION renderer.queue_reap_v3() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_pid integer;
    v_n integer;
BEGIN
    FOR v_pid IN
        SELECT a.pid FROM pg_stat_activity a
        WHERE a.pid <> pg_backend_pid() AND a.application_name IN (
            SELECT 'renderer lease ' || w.lease_token
            FROM work_queue w JOIN queue_workers qw ON qw.owner = w.lease_owner
            WHERE w.state = 'running' AND w.lease_expires < now()
              AND qw.seen_at < now() - (w.lease_expires - w.started_at))
    LOOP
        BEGIN
            PERFORM pg_terminate_backend(v_pid, 5000);
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE WARNING USING MESSAGE = 'work queue reaper may not end the session (pid '
                || v_pid || ') of a frozen worker: ' || SQLERRM,
                HINT = 'run the workers and the reaper as the same role, or grant it '
                       'pg_signal_backend';
        END;
    END LOOP;
    WITH b AS MATERIALIZED (
        SELECT t.token FROM (SELECT DISTINCT q.lease_token AS token FROM work_queue q
                             WHERE q.state = 'running' AND q.lease_expires < now()) t
        WHERE renderer.queue_batch_free(t.token)),
    x AS (
        SELECT q.id, q.lease_owner FROM work_queue q
        WHERE q.state = 'running' AND q.lease_expires < now()
          AND q.lease_token IN (SELECT b.token FROM b)
        FOR UPDATE SKIP LOCKED),
    u AS (
        UPDATE work_queue w SET
            state = CASE WHEN w.attempt >= renderer.queue_max_attempts(w.kind)
                         THEN 'failed' ELSE renderer.queue_target_state(w.set_id) END,
            run_after = now() + renderer.queue_backoff(renderer.queue_backoff_base(w.kind),
                                                       w.attempt),
            last_error = 'LeaseExpired the worker stopped heartbeating',
            rerun = false, lease_owner = NULL, lease_token = NULL, lease_expires = NULL
        FROM x WHERE w.id = x.id
        RETURNING w.id, w.kind, w.key, w.attempt),
    a AS (
        INSERT INTO queue_attempts (item_id, kind, key, attempt, outcome, owner, error_type,
                                    message)
        SELECT u.id, u.kind, u.key, u.attempt, 'expired', x.lease_owner, 'LeaseExpired',
               'the lease expired before the item was completed'
        FROM u JOIN x ON x.id = u.id)
    SELECT count(*) INTO v_n FROM u;
    RETURN v_n;
END
$$;
