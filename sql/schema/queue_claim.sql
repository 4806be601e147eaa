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
-- held items are read from queue_parked in its order (about the order they came in).
-- Returns the number of items let through.
CREATE OR REPLACE FUNCTION renderer.queue_feed(p_kinds text[]) RETURNS integer
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
        WHERE EXISTS (SELECT 1 FROM queue_parked q WHERE q.state = 'held'
                      AND q.set_id = th.set_id AND q.kind = ANY (p_kinds))
        ORDER BY th.set_id
        FOR UPDATE OF th SKIP LOCKED
    LOOP
        v_allow := renderer.queue_throttle_allowance(t.set_id, t.in_flight, t.per_hour);
        CONTINUE WHEN v_allow <= 0;
        UPDATE work_queue w SET state = 'pending'
        WHERE w.id IN (SELECT q.id FROM queue_parked q
                       WHERE q.state = 'held' AND q.set_id = t.set_id
                         AND q.kind = ANY (p_kinds) AND q.run_after <= now()
                       LIMIT v_allow FOR UPDATE SKIP LOCKED)
          AND w.state = 'held';
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
CREATE OR REPLACE FUNCTION renderer.queue_throttle_waiting(p_kinds text[], p_ready boolean)
RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
DECLARE
    t record;
BEGIN
    FOR t IN
        SELECT th.set_id, th.in_flight, th.per_hour FROM queue_throttles th
        JOIN queue_sets s ON s.id = th.set_id AND s.state = 'active'
    LOOP
        CONTINUE WHEN NOT EXISTS (SELECT 1 FROM queue_parked q WHERE q.state = 'held'
                                  AND q.set_id = t.set_id AND q.kind = ANY (p_kinds));
        IF NOT p_ready THEN
            RETURN true;
        END IF;
        IF renderer.queue_throttle_allowance(t.set_id, t.in_flight, t.per_hour) > 0
           AND EXISTS (SELECT 1 FROM queue_parked q WHERE q.state = 'held'
                       AND q.set_id = t.set_id AND q.kind = ANY (p_kinds)
                       AND q.run_after <= now()) THEN
            RETURN true;
        END IF;
    END LOOP;
    RETURN false;
END
$$;

-- name: queue_lease_batch
-- Lease a batch of p_kind (issue 16, per-batch leases): up to p_limit items, p_reserve of
-- them first from batch priority (<= 0), are deleted from queue_pending (FOR UPDATE SKIP
-- LOCKED, then DELETE by tuple id) and one queue_leases row names them. The items
-- themselves are not written: they stay 'pending' in work_queue, running by their lease.
-- The claim appends its own count deltas (pending -> running per kind and set; no trigger
-- fires) and a claim_wait timing per item (from queue_pending.since). Returns the columns
-- a worker reads, the attempt the one now running.
CREATE FUNCTION renderer.queue_lease_batch(
    p_kind text, p_limit integer, p_reserve integer, p_owner text,
    p_lease_seconds double precision)
RETURNS TABLE (id bigint, kind text, key text, payload jsonb, attempt integer, set_id text,
               grp text, lease_token uuid, priority integer, fingerprint text)
LANGUAGE plpgsql AS $$
DECLARE
    v_token uuid := gen_random_uuid();
    v_ids bigint[] := '{}';
    v_tids tid[] := '{}';
BEGIN
    IF p_reserve > 0 THEN
        SELECT coalesce(array_agg(c.id), '{}'), coalesce(array_agg(c.ctid), '{}')
        INTO v_ids, v_tids FROM (
            SELECT q.id, q.ctid FROM queue_pending q
            WHERE q.kind = p_kind AND q.priority <= 0 AND q.run_after <= now()
            ORDER BY q.priority DESC, q.run_after, q.id
            LIMIT least(p_reserve, p_limit) FOR UPDATE SKIP LOCKED) c;
    END IF;
    IF cardinality(v_ids) < p_limit THEN
        SELECT v_ids || coalesce(array_agg(c.id), '{}'),
               v_tids || coalesce(array_agg(c.ctid), '{}')
        INTO v_ids, v_tids FROM (
            SELECT q.id, q.ctid FROM queue_pending q
            WHERE q.kind = p_kind AND q.run_after <= now() AND q.id <> ALL (v_ids)
            ORDER BY q.priority DESC, q.run_after, q.id
            LIMIT p_limit - cardinality(v_ids) FOR UPDATE SKIP LOCKED) c;
    END IF;
    IF cardinality(v_ids) = 0 THEN
        RETURN;
    END IF;
    RETURN QUERY
    WITH d AS (
        DELETE FROM queue_pending q WHERE q.ctid = ANY (v_tids)
        RETURNING q.id, q.kind, coalesce(q.set_id, '') AS set_id, q.since),
    l AS (
        INSERT INTO queue_leases (token, owner, kind, expires, started_at, ids)
        SELECT v_token, p_owner, p_kind, now() + make_interval(secs => p_lease_seconds),
               now(), array_agg(d.id) FROM d),
    c AS (
        INSERT INTO queue_count_deltas (kind, set_id, state, n)
        SELECT g.kind, g.set_id, s.state, s.sign * g.n
        FROM (SELECT d.kind, d.set_id, count(*) AS n FROM d GROUP BY 1, 2) g
        CROSS JOIN (VALUES ('pending', -1), ('running', 1)) AS s(state, sign)),
    t AS (
        INSERT INTO queue_timing_deltas
        SELECT w.kind, w.set_id, 'claim_wait', renderer.queue_timing_bucket(w.s), count(*),
               sum(w.s), max(w.s), min(w.since), now()
        FROM (SELECT d.kind, d.set_id, d.since,
                     greatest(0::float8, date_part('epoch', now() - d.since)) AS s
              FROM d) w
        GROUP BY 1, 2, 3, 4)
    SELECT w.id, w.kind, w.key, w.payload, w.attempt + 1, w.set_id, w.grp, v_token,
           w.priority, w.fingerprint
    FROM d JOIN work_queue w ON w.id = d.id;
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
-- The worker's claim in one function (issue 16): first it lets through what throttled
-- sets allow (queue_feed; unthrottled, one probe of the empty queue_throttles), then picks
-- the kind at the head of the queue among p_kinds (on a batch turn, the head of the batch
-- priority), and leases that kind's batch as queue_lease_batch does (a fifth of it, all of
-- it on a batch turn, first from batch priority, so on-demand work cannot starve the
-- batch; its body inline). The items are not written: one lease row names them.
-- Asynchronous commit: a claim lost in a crash only makes its items claimable again.
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
    v_head integer;
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
            SELECT q.priority, q.run_after, q.id FROM queue_pending q
            WHERE q.kind = k.kind AND q.priority <= 0 AND q.run_after <= now()
            ORDER BY q.priority DESC, q.run_after, q.id LIMIT 1) h
        ORDER BY h.priority DESC, h.run_after, h.id LIMIT 1;
    END IF;
    IF v_kind IS NULL THEN
        SELECT k.kind, h.priority INTO v_kind, v_head
        FROM unnest(p_kinds) AS k(kind)
        CROSS JOIN LATERAL (
            SELECT q.priority, q.run_after, q.id FROM queue_pending q
            WHERE q.kind = k.kind AND q.run_after <= now()
            ORDER BY q.priority DESC, q.run_after, q.id LIMIT 1) h
        ORDER BY h.priority DESC, h.run_after, h.id LIMIT 1;
    END IF;
    IF v_kind IS NULL THEN
        RETURN;
    END IF;
    v_pos := array_position(p_kinds, v_kind);
    v_limit := p_limits[v_pos];
    -- The head in batch priority already: the batch's first v_limit are all batch priority,
    -- the reserve taken with them (one scan, not two).
    v_reserve := CASE WHEN coalesce(v_head, 1) <= 0 THEN 0
                      WHEN p_batch_turn THEN v_limit ELSE v_limit / 5 END;
    -- queue_lease_batch, inline (a nested RETURN QUERY materialises the batch once more)
    IF v_reserve > 0 THEN
        SELECT coalesce(array_agg(c.id), '{}'), coalesce(array_agg(c.ctid), '{}')
        INTO v_ids, v_tids FROM (
            SELECT q.id, q.ctid FROM queue_pending q
            WHERE q.kind = v_kind AND q.priority <= 0 AND q.run_after <= now()
            ORDER BY q.priority DESC, q.run_after, q.id
            LIMIT v_reserve FOR UPDATE SKIP LOCKED) c;
    END IF;
    IF cardinality(v_ids) < v_limit THEN
        SELECT v_ids || coalesce(array_agg(c.id), '{}'),
               v_tids || coalesce(array_agg(c.ctid), '{}')
        INTO v_ids, v_tids FROM (
            SELECT q.id, q.ctid FROM queue_pending q
            WHERE q.kind = v_kind AND q.run_after <= now() AND q.id <> ALL (v_ids)
            ORDER BY q.priority DESC, q.run_after, q.id
            LIMIT v_limit - cardinality(v_ids) FOR UPDATE SKIP LOCKED) c;
    END IF;
    IF cardinality(v_ids) = 0 THEN
        RETURN;
    END IF;
    RETURN QUERY
    WITH d AS (
        DELETE FROM queue_pending q WHERE q.ctid = ANY (v_tids)
        RETURNING q.id, q.kind, coalesce(q.set_id, '') AS set_id, q.since),
    l AS (
        INSERT INTO queue_leases (token, owner, kind, expires, started_at, ids)
        SELECT v_token, p_owner, v_kind, now() + make_interval(secs => p_leases[v_pos]),
               now(), array_agg(d.id) FROM d),
    c AS (
        INSERT INTO queue_count_deltas (kind, set_id, state, n)
        SELECT g.kind, g.set_id, s.state, s.sign * g.n
        FROM (SELECT d.kind, d.set_id, count(*) AS n FROM d GROUP BY 1, 2) g
        CROSS JOIN (VALUES ('pending', -1), ('running', 1)) AS s(state, sign)),
    t AS (
        INSERT INTO queue_timing_deltas
        SELECT w.kind, w.set_id, 'claim_wait', renderer.queue_timing_bucket(w.s), count(*),
               sum(w.s), max(w.s), min(w.since), now()
        FROM (SELECT d.kind, d.set_id, d.since,
                     greatest(0::float8, date_part('epoch', now() - d.since)) AS s
              FROM d) w
        GROUP BY 1, 2, 3, 4)
    SELECT w.id, w.kind, w.key, w.payload, w.attempt + 1, w.set_id, w.grp, v_token,
           w.priority, w.fingerprint
    FROM d JOIN work_queue w ON w.id = d.id;
END
$$;

-- name: queue_lease_take
-- Take p_ids (NULL: all) out of the lease p_token, deleting the lease when none is left;
-- returns the ids taken (those of p_ids the lease held) with the lease's owner and start.
-- The lease row is locked to the caller's commit: of two verbs ending one lease, the
-- second sees what the first left.
CREATE FUNCTION renderer.queue_lease_take(p_token uuid, p_ids bigint[],
                                          OUT ids bigint[], OUT owner text,
                                          OUT started_at timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    v_held bigint[];
    v_left bigint[];
BEGIN
    SELECT l.ids, l.owner, l.started_at INTO v_held, owner, started_at
    FROM queue_leases l WHERE l.token = p_token FOR UPDATE;
    IF v_held IS NULL THEN
        ids := '{}';
        RETURN;
    END IF;
    IF p_ids IS NULL THEN
        ids := v_held;
        v_left := '{}';
    ELSE
        ids := ARRAY(SELECT unnest(v_held) INTERSECT SELECT unnest(p_ids));
        v_left := CASE WHEN cardinality(ids) = cardinality(v_held) THEN '{}'
                       ELSE ARRAY(SELECT unnest(v_held) EXCEPT SELECT unnest(p_ids)) END;
    END IF;
    IF cardinality(v_left) = 0 THEN
        DELETE FROM queue_leases l WHERE l.token = p_token;
    ELSIF cardinality(ids) > 0 THEN
        UPDATE queue_leases l SET ids = v_left WHERE l.token = p_token;
    END IF;
END
$$;

-- name: queue_lock_v3
-- Start processing a claimed batch: take the batch's advisory lock (queue_batch_key) for
-- the rest of the transaction, then return the ids of p_ids its lease still holds. Nobody
-- takes them over now: the reaper, heartbeat, release and enqueue see the lock
-- (queue_batch_free) and leave the batch to its completion, which fences with the token.
-- The lock is taken first and the lease read after, by a statement of its own with its own
-- snapshot, so a reaper that took the batch just before is seen. The session is named
-- after the lease token for the transaction (queue_reap_v3 ends it when its owner froze);
-- past p_idle_seconds idle the server ends the transaction.
CREATE OR REPLACE FUNCTION renderer.queue_lock_v3(p_ids bigint[], p_token uuid,
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
    RETURN QUERY SELECT x.id
        FROM queue_leases l CROSS JOIN LATERAL unnest(l.ids) AS x(id)
        JOIN unnest(p_ids) AS y(id) ON y.id = x.id
        WHERE l.token = p_token
        ORDER BY x.id;
END
$$;

-- name: queue_heartbeat_v2
-- Record the worker as alive and extend its leases that no processing transaction runs
-- (their batch lock free) and that expire within half a lease: a batch just claimed is
-- left alone (the next heartbeat, a quarter of a lease later, finds it), so the heartbeat
-- neither rewrites its lease nor makes its worker wait for the batch's lock. One row a
-- batch; returns the number of items whose lease was extended.
CREATE OR REPLACE FUNCTION renderer.queue_heartbeat_v2(p_owner text,
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
        SELECT l.token FROM queue_leases l
        WHERE l.owner = p_owner AND l.expires < v_soon),
    f AS MATERIALIZED (SELECT b.token FROM b WHERE renderer.queue_batch_free(b.token)),
    u AS (
        UPDATE queue_leases l SET expires = now() + make_interval(secs => p_lease_seconds)
        WHERE l.token IN (SELECT f.token FROM f) AND l.owner = p_owner
        RETURNING cardinality(l.ids) AS n)
    SELECT coalesce(sum(u.n), 0) INTO v_n FROM u;
    RETURN v_n;
END
$$;

-- name: queue_lease_end
-- Put the leased items p_ids back after their lease was taken away (release, reap): each
-- with attempts left goes back (held in a paused or throttled set, cancelled in a
-- cancelled one), after a backoff when p_count; the others end failed. p_count false gives
-- the attempt back. Records an attempt per item when p_count (p_owners: each item's lease
-- owner; p_error the item's last_error then). Returns the number of items put back.
CREATE FUNCTION renderer.queue_lease_end(
    p_ids bigint[], p_owners text[], p_count boolean, p_type text, p_message text,
    p_outcome text, p_error text, p_rerun boolean) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_n integer;
BEGIN
    IF cardinality(p_ids) = 0 THEN
        RETURN 0;
    END IF;
    PERFORM set_config('renderer.lease_ending', 'on', true);
    WITH x AS (SELECT * FROM unnest(p_ids, p_owners) AS x(id, owner)),
    u AS (
        UPDATE work_queue w SET
            state = CASE WHEN p_count AND w.attempt + 1 >= renderer.queue_max_attempts(w.kind)
                         THEN 'failed' ELSE renderer.queue_target_state(w.set_id) END,
            attempt = CASE WHEN p_count THEN w.attempt + 1 ELSE w.attempt END,
            run_after = CASE WHEN p_count THEN now() + renderer.queue_backoff(
                                 renderer.queue_backoff_base(w.kind), w.attempt + 1)
                             ELSE now() END,
            last_error = CASE WHEN p_count THEN p_error ELSE w.last_error END,
            rerun = CASE WHEN p_rerun THEN w.rerun ELSE false END
        FROM x WHERE w.id = x.id AND w.state = 'pending'
        RETURNING w.id, w.kind, w.key, w.attempt, x.owner),
    a AS (
        INSERT INTO queue_attempts (item_id, kind, key, attempt, outcome, owner, error_type,
                                    message)
        SELECT u.id, u.kind, u.key, u.attempt, p_outcome, u.owner, p_type, p_message
        FROM u WHERE p_count)
    SELECT count(*) INTO v_n FROM u;
    PERFORM set_config('renderer.lease_ending', '', true);
    RETURN v_n;
END
$$;

-- name: queue_release_v2
-- Put an owner's running items back: after a shutdown or reconnect (p_count false: the
-- attempt is given back), or after a crash or a kill (p_count true: the attempt counts,
-- recorded with p_type and p_message, and the item may end failed). Items inside a live
-- processing transaction (their batch lock held) are skipped.
CREATE OR REPLACE FUNCTION renderer.queue_release_v2(
    p_owner text, p_ids bigint[] DEFAULT NULL, p_count boolean DEFAULT false,
    p_type text DEFAULT 'Released', p_message text DEFAULT 'released by its worker',
    p_outcome text DEFAULT 'released') RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_token uuid;
    v_ids bigint[] := '{}';
    v_owners text[] := '{}';
    t record;
BEGIN
    FOR v_token IN
        WITH b AS MATERIALIZED (
            SELECT l.token FROM queue_leases l
            WHERE l.owner = p_owner AND (p_ids IS NULL OR l.ids && p_ids))
        SELECT b.token FROM b WHERE renderer.queue_batch_free(b.token)
    LOOP
        t := renderer.queue_lease_take(v_token, p_ids);
        v_ids := v_ids || t.ids;
        v_owners := v_owners || array_fill(t.owner, ARRAY[cardinality(t.ids)]);
    END LOOP;
    RETURN renderer.queue_lease_end(v_ids, v_owners, p_count, p_type, p_message, p_outcome,
                                    p_type || ' ' || p_message, true);
END
$$;

-- name: queue_reap_v3
-- Leases that expired: first the sessions of frozen owners are ended (an owner that has
-- not heartbeated for a whole lease while its lease expired: its processing transaction,
-- named after the lease, would otherwise hold the batch's lock for ever), then the items
-- of every expired lease no worker runs (its lock free) count a failed attempt and go back.
-- One lock probe per expired batch.
CREATE OR REPLACE FUNCTION renderer.queue_reap_v3() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_pid integer;
    v_token uuid;
    v_ids bigint[] := '{}';
    v_owners text[] := '{}';
    t record;
BEGIN
    FOR v_pid IN
        SELECT a.pid FROM pg_stat_activity a
        WHERE a.pid <> pg_backend_pid() AND a.application_name IN (
            SELECT 'renderer lease ' || l.token
            FROM queue_leases l JOIN queue_workers qw ON qw.owner = l.owner
            WHERE l.expires < now() AND qw.seen_at < now() - (l.expires - l.started_at))
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
    FOR v_token IN
        WITH b AS MATERIALIZED (SELECT l.token FROM queue_leases l WHERE l.expires < now())
        SELECT b.token FROM b WHERE renderer.queue_batch_free(b.token)
    LOOP
        t := renderer.queue_lease_take(v_token, NULL);
        v_ids := v_ids || t.ids;
        v_owners := v_owners || array_fill(t.owner, ARRAY[cardinality(t.ids)]);
    END LOOP;
    RETURN renderer.queue_lease_end(v_ids, v_owners, true, 'LeaseExpired',
                                    'the lease expired before the item was completed',
                                    'expired', 'LeaseExpired the worker stopped heartbeating',
                                    false);
END
$$;
