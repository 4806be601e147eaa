-- Retired definitions: text a migration or benchmark can still load by name as it was.
-- `-- name: x@R` is x as it was up to revision R (the last revision it was current at);
-- schema.definition(x, as_of=Q) picks the smallest R >= Q, else the current text in
-- sql/schema/<area>.sql. See ../README.md.

-- name: queue_claim@0009
-- Claim up to p_limit pending items of one kind. p_reserve of them come first from batch
-- priority (<= 0), so on-demand work cannot starve the batch. Asynchronous commit: a
-- claim lost in a crash only makes its items claimable again.
CREATE FUNCTION renderer.queue_claim(
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
    RETURN QUERY
    UPDATE work_queue w
    SET state = 'running', attempt = w.attempt + 1, lease_owner = p_owner,
        lease_token = v_token, lease_expires = now() + make_interval(secs => p_lease_seconds),
        started_at = now()
    WHERE w.id = ANY (v_ids)
    RETURNING w.*;
END
$$;;

-- name: queue_complete@0009
-- Complete items whose lease token is still current; returns the ids refused (fencing:
-- their lease was taken over), which are also recorded and logged as a warning.
CREATE FUNCTION renderer.queue_complete(p_ids bigint[], p_token uuid) RETURNS bigint[]
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
        RETURNING w.id)
    SELECT coalesce(array_agg(u.id), '{}') INTO v_done FROM u;
    IF cardinality(v_done) = cardinality(p_ids) THEN
        RETURN '{}';
    END IF;
    v_rejected := ARRAY(SELECT unnest(p_ids) EXCEPT SELECT unnest(v_done));
    PERFORM renderer.queue_reject(v_rejected, 'completion');
    RETURN v_rejected;
END
$$;;

-- name: queue_maintain@0009
-- What workers run every few seconds: reap expired leases; one of them at a time also
-- rolls up the counters and forgets workers silent for an hour.
CREATE FUNCTION renderer.queue_maintain() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_reaped integer;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    v_reaped := renderer.queue_reap();
    IF pg_try_advisory_xact_lock(7301734222) THEN
        PERFORM renderer.queue_rollup();
        DELETE FROM queue_workers WHERE seen_at < now() - interval '1 hour';
        DELETE FROM queue_rates WHERE minute < now() - interval '1 day';
    END IF;
    RETURN v_reaped;
END
$$;;

-- name: queue_target_state@0017
-- Where an item goes when it is put back: held in a paused set, cancelled in a cancelled one.
CREATE FUNCTION renderer.queue_target_state(p_set_id text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT CASE s.state WHEN 'paused' THEN 'held'
                                         WHEN 'cancelled' THEN 'cancelled' END
                     FROM queue_sets s WHERE s.id = p_set_id), 'pending')
$$;

-- name: queue_resume_set@0017
CREATE FUNCTION renderer.queue_resume_set(p_id text) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_n bigint;
BEGIN
    UPDATE queue_sets SET state = 'active', changed_at = now()
    WHERE id = p_id AND state = 'paused';
    IF NOT EXISTS (SELECT 1 FROM queue_sets WHERE id = p_id AND state = 'active') THEN
        RETURN NULL;
    END IF;
    UPDATE work_queue SET state = 'pending', run_after = least(run_after, now())
    WHERE state = 'held' AND set_id = p_id;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n;
END
$$;

-- name: queue_fire@0017
-- Fire the rules of a group that just closed (or of one rule when p_then_kind is given).
CREATE FUNCTION renderer.queue_fire(p_kind text, p_group text, p_then_kind text DEFAULT NULL,
                                    p_then_key text DEFAULT NULL) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    v_n integer := 0;
BEGIN
    FOR r IN
        UPDATE queue_rules q SET fired = q.fired + 1, fired_at = now()
        WHERE q.when_kind = p_kind AND q.grp = p_group
          AND (p_then_kind IS NULL OR (q.then_kind = p_then_kind AND q.then_key = p_then_key))
        RETURNING q.then_kind, q.then_key, q.payload, q.set_id
    LOOP
        PERFORM renderer.queue_enqueue_many(
            ARRAY[r.then_kind], ARRAY[r.then_key], ARRAY[r.payload], ARRAY[NULL::text],
            ARRAY[r.set_id], ARRAY[0], ARRAY[NULL::text], ARRAY[NULL::timestamptz], true);
        v_n := v_n + 1;
    END LOOP;
    RETURN v_n;
END
$$;

-- name: queue_reap_v2@0017
-- queue_reap, after ending the sessions of frozen owners: an item whose lease expired is
-- still locked by its owner's processing transaction (queue_lock_v2 names that session
-- after the lease token), and the owner has not heartbeated for a whole lease (stopped,
-- paused, cut off). A live owner heartbeats from its own thread whatever its handler does;
-- one stuck in a handler is its supervisor's to kill. Ending the session rolls the batch
-- back and frees the rows, which are then reaped here, within about a lease of the freeze.
CREATE FUNCTION renderer.queue_reap_v2() RETURNS integer
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM work_queue w JOIN queue_workers qw ON qw.owner = w.lease_owner
        WHERE w.state = 'running' AND w.lease_expires < now()
          AND qw.seen_at < now() - (w.lease_expires - w.started_at)) THEN
        PERFORM pg_terminate_backend(a.pid, 5000)
        FROM pg_stat_activity a
        WHERE a.pid <> pg_backend_pid() AND a.application_name IN (
            SELECT 'renderer lease ' || w.lease_token
            FROM work_queue w JOIN queue_workers qw ON qw.owner = w.lease_owner
            WHERE w.state = 'running' AND w.lease_expires < now()
              AND qw.seen_at < now() - (w.lease_expires - w.started_at));
    END IF;
    RETURN renderer.queue_reap();
END
$$;

-- name: queue_complete_v2@0024
-- Complete items whose lease token is still current; returns the ids refused (fencing:
-- their lease was taken over), which are also recorded and logged as a warning. Each item
-- that ends done adds a run timing (claim to completion). A rerun requested during the
-- attempt (queue_reruns) is consumed here, in the completion's transaction.
CREATE OR REPLACE FUNCTION renderer.queue_complete_v2(p_ids bigint[], p_token uuid)
RETURNS bigint[]
LANGUAGE plpgsql AS $$
DECLARE
    v_done bigint[];
    v_rejected bigint[];
    v_again bigint[] := '{}';
    v_prints text[] := '{}';
BEGIN
    IF EXISTS (SELECT 1 FROM queue_reruns) THEN
        WITH r AS (
            DELETE FROM queue_reruns x USING work_queue q
            WHERE q.id = ANY (p_ids) AND q.lease_token = p_token AND q.state = 'running'
              AND x.kind = q.kind AND x.key = q.key
            RETURNING q.id, x.fingerprint, x.requested_at >= q.started_at AS again)
        SELECT coalesce(array_agg(r.id), '{}'), coalesce(array_agg(r.fingerprint), '{}')
        INTO v_again, v_prints FROM r WHERE r.again;
    END IF;
    WITH u AS (
        UPDATE work_queue w SET
            state = CASE WHEN w.rerun OR w.id = ANY (v_again)
                         THEN renderer.queue_target_state(w.set_id) ELSE 'done' END,
            attempt = CASE WHEN w.rerun OR w.id = ANY (v_again) THEN 0 ELSE w.attempt END,
            run_after = CASE WHEN w.rerun OR w.id = ANY (v_again) THEN now()
                             ELSE w.run_after END,
            fingerprint = CASE WHEN w.id = ANY (v_again) THEN coalesce(
                                   v_prints[array_position(v_again, w.id)], w.fingerprint)
                               ELSE w.fingerprint END,
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
$$;

-- name: queue_fail@0024
-- Record failed attempts; an item with attempts left goes back (after a backoff with
-- jitter), otherwise, or when p_final, it is failed. Returns (item_id, new_state) for
-- each item accepted; the others (stale token) are recorded as rejected and logged.
CREATE OR REPLACE FUNCTION renderer.queue_fail(
    p_ids bigint[], p_token uuid, p_types text[], p_messages text[],
    p_tracebacks text[] DEFAULT NULL, p_final boolean DEFAULT false,
    p_outcome text DEFAULT 'failed')
RETURNS TABLE (item_id bigint, new_state text)
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    v_accepted bigint[] := '{}';
BEGIN
    FOR r IN
        WITH f AS (
            SELECT f.id, f.etype, f.message, f.tb
            FROM unnest(p_ids, p_types, p_messages,
                        coalesce(p_tracebacks,
                                 array_fill(NULL::text, ARRAY[cardinality(p_ids)])))
                 AS f(id, etype, message, tb)),
        cur AS (SELECT q.id, q.lease_owner FROM work_queue q WHERE q.id = ANY (p_ids)),
        u AS (
            UPDATE work_queue w SET
                state = CASE WHEN p_final OR w.attempt >= renderer.queue_max_attempts(w.kind)
                             THEN 'failed' ELSE renderer.queue_target_state(w.set_id) END,
                run_after = now() + renderer.queue_backoff(
                    renderer.queue_backoff_base(w.kind), w.attempt),
                rerun = false, lease_owner = NULL, lease_token = NULL, lease_expires = NULL,
                finished_at = now(), last_error = left(f.etype || ' ' || f.message, 2000)
            FROM f
            WHERE w.id = f.id AND w.lease_token = p_token AND w.state = 'running'
            RETURNING w.id, w.kind, w.key, w.attempt, w.state),
        a AS (
            INSERT INTO queue_attempts
                (item_id, kind, key, attempt, outcome, owner, error_type, message, traceback)
            SELECT u.id, u.kind, u.key, u.attempt, p_outcome, cur.lease_owner, f.etype,
                   f.message, f.tb
            FROM u JOIN f ON f.id = u.id LEFT JOIN cur ON cur.id = u.id)
        SELECT u.id, u.state FROM u
    LOOP
        item_id := r.id;
        new_state := r.state;
        v_accepted := v_accepted || r.id;
        RETURN NEXT;
    END LOOP;
    IF cardinality(v_accepted) < cardinality(p_ids) THEN
        PERFORM renderer.queue_reject(
            ARRAY(SELECT unnest(p_ids) EXCEPT SELECT unnest(v_accepted)), 'failure');
    END IF;
END
$$;

-- name: queue_complete_v2@0025
-- Complete items whose lease token is still current; returns the ids refused (fencing:
-- their lease was taken over), which are also recorded and logged as a warning. Each item
-- that ends done adds a run timing (claim to completion). A rerun requested during the
-- attempt (queue_reruns) is consumed here, in the completion's transaction.
CREATE OR REPLACE FUNCTION renderer.queue_complete_v2(p_ids bigint[], p_token uuid)
RETURNS bigint[]
LANGUAGE plpgsql AS $$
DECLARE
    v_done bigint[];
    v_rejected bigint[];
    v_again bigint[] := '{}';
    v_prints text[] := '{}';
BEGIN
    IF EXISTS (SELECT 1 FROM queue_reruns) THEN
        WITH r AS (
            DELETE FROM queue_reruns x USING work_queue q
            WHERE q.id = ANY (p_ids) AND q.lease_token = p_token AND q.state = 'running'
              AND x.kind = q.kind AND x.key = q.key
            RETURNING q.id, x.fingerprint, x.requested_at >= q.started_at AS again)
        SELECT coalesce(array_agg(r.id), '{}'), coalesce(array_agg(r.fingerprint), '{}')
        INTO v_again, v_prints FROM r WHERE r.again;
    END IF;
    WITH u AS (
        UPDATE work_queue w SET
            state = CASE WHEN w.rerun OR w.id = ANY (v_again)
                         THEN renderer.queue_target_state(w.set_id) ELSE 'done' END,
            attempt = CASE WHEN w.rerun OR w.id = ANY (v_again) THEN 0 ELSE w.attempt END,
            run_after = CASE WHEN w.rerun OR w.id = ANY (v_again) THEN now()
                             ELSE w.run_after END,
            fingerprint = CASE WHEN w.id = ANY (v_again) THEN coalesce(
                                   v_prints[array_position(v_again, w.id)], w.fingerprint)
                               ELSE w.fingerprint END,
            rerun = false, lease_owner = NULL, lease_token = NULL, lease_expires = NULL,
            finished_at = clock_timestamp(), last_error = NULL
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
$$;

-- name: queue_claim_next_v2@0025
-- The worker's claim in one function (issue 16): queue_claim_next and queue_claim flattened,
-- so the batch is materialised once, not at each of three nested RETURN QUERY levels, and
-- only the columns a worker reads come back. First it lets through what throttled sets
-- allow (queue_feed; unthrottled, one probe of the empty queue_throttles), then picks the
-- kind at the head of the queue among p_kinds (on a batch turn, the head of the batch
-- priority), takes that kind's batch (a fifth of it, all of it on a batch turn, first from
-- batch priority, so on-demand work cannot starve the batch), and leases it. The rows are
-- updated by the tuple ids their lock returned (no second index probe per item).
-- Asynchronous commit: a claim lost in a crash only makes its items claimable again. Each
-- claimed item adds a claim_wait timing.
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
                     greatest(0, extract(epoch FROM c.started_at
                                         - greatest(c.run_after, c.enqueued_at)))::float8 AS s
              FROM c) w
        GROUP BY 1, 2, 3, 4)
    SELECT c.id, c.kind, c.key, c.payload, c.attempt, c.set_id, c.grp, c.lease_token,
           c.priority, c.fingerprint FROM c;
END
$$;

-- name: work_queue@0038
CREATE TABLE work_queue (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    kind text NOT NULL,
    key text NOT NULL,
    state text NOT NULL DEFAULT 'pending' CONSTRAINT work_queue_state CHECK
        (state IN ('pending', 'held', 'running', 'done', 'failed', 'cancelled')),
    payload jsonb NOT NULL DEFAULT '{}',
    priority integer NOT NULL DEFAULT 0,
    run_after timestamptz NOT NULL DEFAULT now(),
    fingerprint text,
    set_id text,
    grp text,
    attempt integer NOT NULL DEFAULT 0,
    rerun boolean NOT NULL DEFAULT false,
    lease_owner text,
    lease_token uuid,
    lease_expires timestamptz,
    last_error text,
    enqueued_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    finished_at timestamptz
) WITH (autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_insert_scale_factor = 0.02,
        autovacuum_analyze_scale_factor = 0.02, autovacuum_vacuum_cost_delay = 0);

-- name: work_queue_claim@0038
-- Claims walk this in order; done rows (the bulk of a big table) are never in it.
CREATE INDEX work_queue_claim ON work_queue (kind, priority DESC, run_after, id)
       WHERE state = 'pending';

-- name: work_queue_set_pending@0038
CREATE INDEX work_queue_set_pending ON work_queue (set_id, run_after)
       WHERE state = 'pending' AND set_id IS NOT NULL;

-- name: work_queue_running@0038
CREATE INDEX work_queue_running ON work_queue (lease_owner) WHERE state = 'running';

-- name: work_queue_parked@0038
CREATE INDEX work_queue_parked ON work_queue (set_id, kind) WHERE state IN ('held', 'failed');

-- name: queue_feed@0038
-- Let held items of throttled active sets of p_kinds through (held -> pending), each set up
-- to its allowance. One feeder per set at a time: the set's throttle row is locked for the
-- caller's transaction, and a set another feeder holds is skipped, never waited on. The
-- held items are read by the parked index in its order (about the order they came in).
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

-- name: queue_throttle_waiting@0038
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

-- name: queue_claim_next_v2@0038
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

-- name: queue_lock_v3@0038
-- Start processing a claimed batch: take the batch's advisory lock (queue_batch_key) for
-- the rest of the transaction, then return the ids still leased with p_token. Nobody takes
-- them over now: the reaper, heartbeat, release and enqueue see the lock (queue_batch_free)
-- and leave the batch to its completion, which fences with the token. One lock per batch
-- instead of a row lock per item (queue_lock_v2): no WAL record and no tuple written per
-- item. The lock is taken first and the rows read after, by a statement of their own with
-- its own snapshot, so a reaper that took the batch just before is seen. The session is
-- named after the lease token for the transaction (queue_reap_v3 ends it when its owner
-- froze); past p_idle_seconds idle the server ends the transaction.
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
    RETURN QUERY SELECT q.id FROM work_queue q  -- by primary key (queue_complete_v2)
        WHERE q.id = ANY (p_ids) AND q.lease_token = p_token
          AND coalesce(q.state, '') = 'running'
        ORDER BY q.id;
END
$$;

-- name: queue_heartbeat_v2@0038
-- Record the worker as alive and extend the leases of its items that no processing
-- transaction runs (their batch lock free and, for a worker of the previous release, their
-- rows unlocked) and that expire within half a lease: a batch just claimed is left alone
-- (the next heartbeat, a quarter of a lease later, finds it), so the heartbeat neither
-- rewrites its rows nor makes its worker wait for the batch's lock.
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

-- name: queue_release_v2@0038
-- Put an owner's running items back: after a shutdown or reconnect (p_count false: the
-- attempt is given back), or after a crash or a kill (p_count true: the attempt counts,
-- recorded with p_type and p_message, and the item may end failed). Items inside a live
-- processing transaction (their batch lock held, or their rows locked by a worker of the
-- previous release) are skipped.
CREATE OR REPLACE FUNCTION renderer.queue_release_v2(
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

-- name: queue_reap_v3@0038
-- queue_reap_v2 for batch locks (queue_lock_v3): first the sessions of frozen owners are
-- ended as there, then the items whose lease expired count a failed attempt, except those
-- of a batch a worker runs (its lock held, or, for a worker of the previous release, its
-- rows locked). One lock probe per expired batch.
CREATE OR REPLACE FUNCTION renderer.queue_reap_v3() RETURNS integer
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

-- name: queue_complete_v2@0038
-- Complete items whose lease token is still current; returns the ids refused (fencing:
-- their lease was taken over), which are also recorded and logged as a warning. Each item
-- that ends done adds a run timing (claim to completion). A rerun requested during the
-- attempt (queue_reruns) is consumed here, in the completion's transaction.
-- The items are found by their primary key: ``coalesce(state, '')`` (state is never NULL)
-- keeps the planner off the running index, which it chose with the statistics of an idle
-- queue and then scanned whole, comparing each running row with every id given (a quarter
-- of a million comparisons for a batch of 500 among 1,000 running items). Run seconds by
-- date_part (float8), not extract (numeric: 1 us a row more).
CREATE OR REPLACE FUNCTION renderer.queue_complete_v2(p_ids bigint[], p_token uuid)
RETURNS bigint[]
LANGUAGE plpgsql AS $$
DECLARE
    v_done bigint[];
    v_rejected bigint[];
    v_again bigint[] := '{}';
    v_prints text[] := '{}';
BEGIN
    IF EXISTS (SELECT 1 FROM queue_reruns) THEN
        WITH r AS (
            DELETE FROM queue_reruns x USING work_queue q
            WHERE q.id = ANY (p_ids) AND q.lease_token = p_token
              AND coalesce(q.state, '') = 'running' AND x.kind = q.kind AND x.key = q.key
            RETURNING q.id, x.fingerprint, x.requested_at >= q.started_at AS again)
        SELECT coalesce(array_agg(r.id), '{}'), coalesce(array_agg(r.fingerprint), '{}')
        INTO v_again, v_prints FROM r WHERE r.again;
    END IF;
    WITH u AS (
        UPDATE work_queue w SET
            state = CASE WHEN w.rerun OR w.id = ANY (v_again)
                         THEN renderer.queue_target_state(w.set_id) ELSE 'done' END,
            attempt = CASE WHEN w.rerun OR w.id = ANY (v_again) THEN 0 ELSE w.attempt END,
            run_after = CASE WHEN w.rerun OR w.id = ANY (v_again) THEN now()
                             ELSE w.run_after END,
            fingerprint = CASE WHEN w.id = ANY (v_again) THEN coalesce(
                                   v_prints[array_position(v_again, w.id)], w.fingerprint)
                               ELSE w.fingerprint END,
            rerun = false, lease_owner = NULL, lease_token = NULL, lease_expires = NULL,
            finished_at = clock_timestamp(), last_error = NULL
        WHERE w.id = ANY (p_ids) AND w.lease_token = p_token
          AND coalesce(w.state, '') = 'running'
        RETURNING w.id, w.kind, w.set_id, w.state, w.started_at, w.finished_at),
    t AS (
        INSERT INTO queue_timing_deltas
        SELECT r.kind, r.set_id, 'run', renderer.queue_timing_bucket(r.s), count(*),
               sum(r.s), max(r.s), min(r.started_at), max(r.finished_at)
        FROM (SELECT u.kind, coalesce(u.set_id, '') AS set_id, u.started_at, u.finished_at,
                     greatest(0::float8, date_part('epoch', u.finished_at - u.started_at)) AS s
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
$$;

-- name: queue_fail@0038
-- Record failed attempts; an item with attempts left goes back (after a backoff with
-- jitter), otherwise, or when p_final, it is failed. Returns (item_id, new_state) for
-- each item accepted; the others (stale token) are recorded as rejected and logged.
CREATE OR REPLACE FUNCTION renderer.queue_fail(
    p_ids bigint[], p_token uuid, p_types text[], p_messages text[],
    p_tracebacks text[] DEFAULT NULL, p_final boolean DEFAULT false,
    p_outcome text DEFAULT 'failed')
RETURNS TABLE (item_id bigint, new_state text)
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    v_accepted bigint[] := '{}';
BEGIN
    FOR r IN
        WITH f AS (
            SELECT f.id, f.etype, f.message, f.tb
            FROM unnest(p_ids, p_types, p_messages,
                        coalesce(p_tracebacks,
                                 array_fill(NULL::text, ARRAY[cardinality(p_ids)])))
                 AS f(id, etype, message, tb)),
        cur AS (SELECT q.id, q.lease_owner FROM work_queue q WHERE q.id = ANY (p_ids)),
        u AS (
            UPDATE work_queue w SET
                state = CASE WHEN p_final OR w.attempt >= renderer.queue_max_attempts(w.kind)
                             THEN 'failed' ELSE renderer.queue_target_state(w.set_id) END,
                run_after = now() + renderer.queue_backoff(
                    renderer.queue_backoff_base(w.kind), w.attempt),
                rerun = false, lease_owner = NULL, lease_token = NULL, lease_expires = NULL,
                finished_at = clock_timestamp(), last_error = left(f.etype || ' ' || f.message, 2000)
            FROM f
            WHERE w.id = f.id AND w.lease_token = p_token AND w.state = 'running'
            RETURNING w.id, w.kind, w.key, w.attempt, w.state),
        a AS (
            INSERT INTO queue_attempts
                (item_id, kind, key, attempt, outcome, owner, error_type, message, traceback)
            SELECT u.id, u.kind, u.key, u.attempt, p_outcome, cur.lease_owner, f.etype,
                   f.message, f.tb
            FROM u JOIN f ON f.id = u.id LEFT JOIN cur ON cur.id = u.id)
        SELECT u.id, u.state FROM u
    LOOP
        item_id := r.id;
        new_state := r.state;
        v_accepted := v_accepted || r.id;
        RETURN NEXT;
    END LOOP;
    IF cardinality(v_accepted) < cardinality(p_ids) THEN
        PERFORM renderer.queue_reject(
            ARRAY(SELECT unnest(p_ids) EXCEPT SELECT unnest(v_accepted)), 'failure');
    END IF;
END
$$;

-- name: queue_enqueue_many_v4@0038
-- queue_enqueue_many_v3 for workers that hold one advisory lock per batch (queue_lock_v3)
-- instead of a row lock per item: a running item is busy when its batch's lock is held, or
-- (a worker of the previous release, during a rolling deploy) its row is locked. Taking the
-- batch's lock makes the item ours until commit, as locking its row did.
CREATE OR REPLACE FUNCTION renderer.queue_enqueue_many_v4(
    p_kinds text[], p_keys text[], p_payloads jsonb[], p_fingerprints text[],
    p_set_ids text[], p_priorities integer[], p_groups text[], p_run_afters timestamptz[],
    p_force boolean DEFAULT false) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_n bigint;
    v_asked bigint := 0;
    v_busy_kinds text[];
    v_busy_keys text[];
BEGIN
    INSERT INTO queue_sets (id)
    SELECT DISTINCT s FROM unnest(p_set_ids) AS s WHERE s IS NOT NULL
    ON CONFLICT (id) DO NOTHING;

    -- Running items of the chunk whose batch a worker runs: the running items (a few
    -- batches' worth, read by their partial index) hashed against the chunk, as in v3, then
    -- one lock probe per batch; left out of the upsert. Those of a free batch whose row a
    -- worker of the previous release holds (queue_lock_v2) are busy too.
    WITH a AS MATERIALIZED (
        SELECT w.id, w.kind, w.key, w.lease_token FROM work_queue w WHERE w.state = 'running'),
    r AS MATERIALIZED (
        SELECT a.* FROM a
        WHERE (a.kind, a.key) IN (SELECT i.kind, i.key
                                  FROM unnest(p_kinds, p_keys) AS i(kind, key))),
    b AS MATERIALIZED (
        SELECT t.token, renderer.queue_batch_free(t.token) AS free
        FROM (SELECT DISTINCT r.lease_token AS token FROM r) t WHERE t.token IS NOT NULL)
    SELECT coalesce(array_agg(r.kind), '{}'), coalesce(array_agg(r.key), '{}')
    INTO v_busy_kinds, v_busy_keys
    FROM r LEFT JOIN b ON b.token = r.lease_token
    WHERE CASE WHEN coalesce(b.free, true)
               THEN NOT EXISTS (SELECT 1 FROM work_queue l WHERE l.id = r.id
                                FOR UPDATE SKIP LOCKED)
               ELSE true END;

    IF cardinality(v_busy_kinds) > 0 THEN
        WITH r AS (
            INSERT INTO queue_reruns AS r (kind, key, fingerprint, requested_at)
            SELECT DISTINCT ON (i.kind, i.key) i.kind, i.key, i.fingerprint, clock_timestamp()
            FROM unnest(p_kinds, p_keys, p_fingerprints) AS i(kind, key, fingerprint)
            JOIN unnest(v_busy_kinds, v_busy_keys) AS b(kind, key)
                 ON b.kind = i.kind AND b.key = i.key
            JOIN work_queue w ON w.kind = i.kind AND w.key = i.key
            WHERE p_force OR i.fingerprint IS NULL
               OR i.fingerprint IS DISTINCT FROM w.fingerprint
            ORDER BY i.kind, i.key
            ON CONFLICT (kind, key) DO UPDATE SET requested_at = excluded.requested_at,
                fingerprint = coalesce(excluded.fingerprint, r.fingerprint)
            RETURNING 1)
        SELECT count(*) INTO v_asked FROM r;
    END IF;

    INSERT INTO work_queue AS w
        (kind, key, payload, fingerprint, set_id, priority, grp, run_after, state)
    SELECT DISTINCT ON (i.kind, i.key)
           i.kind, i.key, coalesce(i.payload, '{}'), i.fingerprint, i.set_id,
           coalesce(i.priority, 0), i.grp, coalesce(i.run_after, now()),
           CASE s.state WHEN 'paused' THEN 'held' WHEN 'cancelled' THEN 'cancelled'
                        ELSE CASE WHEN t.set_id IS NULL THEN 'pending' ELSE 'held' END END
    FROM unnest(p_kinds, p_keys, p_payloads, p_fingerprints, p_set_ids, p_priorities,
                p_groups, p_run_afters)
         AS i(kind, key, payload, fingerprint, set_id, priority, grp, run_after)
    LEFT JOIN queue_sets s ON s.id = i.set_id
    LEFT JOIN queue_throttles t ON t.set_id = i.set_id
    WHERE cardinality(v_busy_kinds) = 0
       OR NOT EXISTS (SELECT 1 FROM unnest(v_busy_kinds, v_busy_keys) AS b(kind, key)
                      WHERE b.kind = i.kind AND b.key = i.key)
    ORDER BY i.kind, i.key, i.priority DESC
    ON CONFLICT (kind, key) DO UPDATE SET
        state = CASE WHEN w.state = 'cancelled'
                          OR (w.state IN ('done', 'failed') AND (p_force
                              OR excluded.fingerprint IS DISTINCT FROM w.fingerprint
                                 AND excluded.fingerprint IS NOT NULL))
                     THEN excluded.state ELSE w.state END,
        rerun = w.rerun OR (w.state = 'running' AND (p_force OR excluded.fingerprint IS NULL
                             OR excluded.fingerprint IS DISTINCT FROM w.fingerprint)),
        attempt = CASE WHEN w.state IN ('done', 'failed', 'cancelled') THEN 0
                       ELSE w.attempt END,
        priority = CASE WHEN w.state IN ('done', 'failed', 'cancelled') THEN excluded.priority
                        ELSE greatest(w.priority, excluded.priority) END,
        payload = CASE WHEN w.state IN ('done', 'failed', 'cancelled') THEN excluded.payload
                       ELSE w.payload END,
        fingerprint = coalesce(excluded.fingerprint, w.fingerprint),
        set_id = CASE WHEN w.state IN ('done', 'failed', 'cancelled')
                      THEN coalesce(excluded.set_id, w.set_id) ELSE w.set_id END,
        grp = coalesce(w.grp, excluded.grp),
        run_after = CASE WHEN w.state IN ('done', 'failed', 'cancelled')
                         THEN excluded.run_after ELSE w.run_after END,
        last_error = CASE WHEN w.state IN ('done', 'failed', 'cancelled') THEN NULL
                          ELSE w.last_error END,
        enqueued_at = CASE WHEN w.state IN ('done', 'failed', 'cancelled') THEN now()
                           ELSE w.enqueued_at END,
        finished_at = CASE WHEN w.state IN ('done', 'failed', 'cancelled') THEN NULL
                           ELSE w.finished_at END
    WHERE (w.state = 'cancelled' AND excluded.state <> 'cancelled')
       OR (w.state IN ('done', 'failed') AND (p_force
           OR excluded.fingerprint IS DISTINCT FROM w.fingerprint
              AND excluded.fingerprint IS NOT NULL))
       OR (w.state = 'running' AND NOT w.rerun AND (p_force OR excluded.fingerprint IS NULL
           OR excluded.fingerprint IS DISTINCT FROM w.fingerprint))
       OR (w.state IN ('pending', 'held', 'running') AND (excluded.priority > w.priority
           OR excluded.fingerprint IS DISTINCT FROM w.fingerprint
              AND excluded.fingerprint IS NOT NULL));
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n + v_asked;
END
$$;

-- name: queue_enqueue_v4@0038
-- One item; returns what happened: inserted, requeued, rerun, updated, unchanged, cancelled.
-- Never waits on a worker running the item (queue_enqueue_many_v4: batch locks); held in
-- a throttled set.
CREATE OR REPLACE FUNCTION renderer.queue_enqueue_v4(
    p_kind text, p_key text, p_payload jsonb DEFAULT '{}', p_fingerprint text DEFAULT NULL,
    p_set_id text DEFAULT NULL, p_priority integer DEFAULT 0, p_group text DEFAULT NULL,
    p_run_after timestamptz DEFAULT NULL, p_force boolean DEFAULT false) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_old text;
    v_new text;
    v_n bigint;
BEGIN
    SELECT state INTO v_old FROM work_queue WHERE kind = p_kind AND key = p_key;
    v_n := renderer.queue_enqueue_many_v4(ARRAY[p_kind], ARRAY[p_key], ARRAY[p_payload],
                                          ARRAY[p_fingerprint], ARRAY[p_set_id],
                                          ARRAY[p_priority], ARRAY[p_group],
                                          ARRAY[p_run_after], p_force);
    IF v_n = 0 THEN
        RETURN 'unchanged';
    END IF;
    SELECT state INTO v_new FROM work_queue WHERE kind = p_kind AND key = p_key;
    RETURN CASE
        WHEN v_new = 'cancelled' THEN 'cancelled'
        WHEN v_old IS NULL THEN 'inserted'
        WHEN v_new = 'running' AND v_old = 'running' THEN 'rerun'
        WHEN v_old IN ('done', 'failed', 'cancelled') THEN 'requeued'
        ELSE 'updated' END;
END
$$;

-- name: queue_fire@0038
-- Fire the rules of a group that just closed (or of one rule when p_then_kind is given).
-- Through queue_enqueue_many_v3: a successor being run gets a rerun request instead of
-- waiting on its worker's row lock.
CREATE OR REPLACE FUNCTION renderer.queue_fire(p_kind text, p_group text, p_then_kind text DEFAULT NULL,
                                    p_then_key text DEFAULT NULL) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    v_n integer := 0;
BEGIN
    FOR r IN
        UPDATE queue_rules q SET fired = q.fired + 1, fired_at = now()
        WHERE q.when_kind = p_kind AND q.grp = p_group
          AND (p_then_kind IS NULL OR (q.then_kind = p_then_kind AND q.then_key = p_then_key))
        RETURNING q.then_kind, q.then_key, q.payload, q.set_id
    LOOP
        PERFORM renderer.queue_enqueue_many_v3(
            ARRAY[r.then_kind], ARRAY[r.then_key], ARRAY[r.payload], ARRAY[NULL::text],
            ARRAY[r.set_id], ARRAY[0], ARRAY[NULL::text], ARRAY[NULL::timestamptz], true);
        v_n := v_n + 1;
    END LOOP;
    RETURN v_n;
END
$$;

-- name: queue_apply_reruns@0038
-- Settle the rerun requests no completion consumed: a request is satisfied by an attempt
-- that started after it, or by one to come (the item is pending or held); an item that
-- finished (done or failed) an attempt begun before the request is queued again. Items
-- locked by a worker are left to their completion.
CREATE OR REPLACE FUNCTION renderer.queue_apply_reruns() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_n integer;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM queue_reruns) THEN
        RETURN 0;
    END IF;
    WITH x AS (
        SELECT r.kind, r.key, r.fingerprint, r.requested_at, w.id, w.state, w.started_at
        FROM queue_reruns r JOIN work_queue w ON w.kind = r.kind AND w.key = r.key
        FOR UPDATE OF r, w SKIP LOCKED),
    d AS (
        DELETE FROM queue_reruns r USING x
        WHERE r.kind = x.kind AND r.key = x.key
          AND (x.state <> 'running' OR x.started_at > x.requested_at)
        RETURNING x.id, x.state, x.fingerprint, x.started_at, x.requested_at),
    u AS (
        UPDATE work_queue w SET state = renderer.queue_target_state(w.set_id), attempt = 0,
            run_after = now(), finished_at = NULL,
            fingerprint = coalesce(d.fingerprint, w.fingerprint)
        FROM d
        WHERE w.id = d.id AND d.state IN ('done', 'failed')
          AND (d.started_at IS NULL OR d.started_at <= d.requested_at)
        RETURNING 1)
    SELECT count(*) INTO v_n FROM u;
    DELETE FROM queue_reruns r  -- their item was deleted (pruned)
    WHERE NOT EXISTS (SELECT 1 FROM work_queue w WHERE w.kind = r.kind AND w.key = r.key);
    RETURN v_n;
END
$$;

-- name: queue_retry@0038
CREATE OR REPLACE FUNCTION renderer.queue_retry(p_kind text DEFAULT NULL, p_set_id text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_n bigint;
BEGIN
    UPDATE work_queue w SET state = renderer.queue_target_state(w.set_id), attempt = 0,
        run_after = now(), finished_at = NULL
    WHERE w.state = 'failed' AND (p_kind IS NULL OR w.kind = p_kind)
      AND (p_set_id IS NULL OR w.set_id = p_set_id);
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n;
END
$$;

-- name: queue_throttle@0038
-- Set a set's limits (NULL: no such limit; both NULL: clear them), creating the set if
-- need be. A newly throttled set's pending items are held for the feed; a cleared active
-- set's held items go back to pending. Returns the number of items moved.
CREATE OR REPLACE FUNCTION renderer.queue_throttle(p_set_id text, p_in_flight integer,
                                        p_per_hour integer) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_new boolean;
    v_n bigint := 0;
BEGIN
    INSERT INTO queue_sets (id) VALUES (p_set_id) ON CONFLICT (id) DO NOTHING;
    IF p_in_flight IS NULL AND p_per_hour IS NULL THEN
        DELETE FROM queue_throttles WHERE set_id = p_set_id;
        IF FOUND THEN
            UPDATE work_queue SET state = 'pending'
            WHERE state = 'held' AND set_id = p_set_id
              AND (SELECT s.state FROM queue_sets s WHERE s.id = p_set_id) = 'active';
            GET DIAGNOSTICS v_n = ROW_COUNT;
        END IF;
        RETURN v_n;
    END IF;
    INSERT INTO queue_throttles AS t (set_id, in_flight, per_hour)
    VALUES (p_set_id, p_in_flight, p_per_hour)
    ON CONFLICT (set_id) DO UPDATE SET in_flight = excluded.in_flight,
        per_hour = excluded.per_hour, changed_at = now()
    RETURNING t.xmax = 0 INTO v_new;
    IF v_new THEN
        UPDATE work_queue SET state = 'held' WHERE state = 'pending' AND set_id = p_set_id;
        GET DIAGNOSTICS v_n = ROW_COUNT;
    END IF;
    RETURN v_n;
END
$$;

-- name: queue_pause_set@0038
-- Pause: pending items of the set are held (out of the claim index) until resumed.
-- Returns the number of items moved, NULL when there is no such set.
CREATE OR REPLACE FUNCTION renderer.queue_pause_set(p_id text) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_n bigint;
BEGIN
    UPDATE queue_sets SET state = 'paused', changed_at = now()
    WHERE id = p_id AND state = 'active';
    IF NOT EXISTS (SELECT 1 FROM queue_sets WHERE id = p_id) THEN
        RETURN NULL;
    END IF;
    UPDATE work_queue SET state = 'held'
    WHERE state = 'pending' AND set_id = p_id
      AND (SELECT s.state FROM queue_sets s WHERE s.id = p_id) = 'paused';
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n;
END
$$;

-- name: queue_resume_set@0038
-- Resume: the held items go back to pending, except in a throttled set, where they wait for
-- the feed (queue_feed). Returns the number of items moved, NULL when the set is missing or
-- cancelled.
CREATE OR REPLACE FUNCTION renderer.queue_resume_set(p_id text) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_n bigint;
BEGIN
    UPDATE queue_sets SET state = 'active', changed_at = now()
    WHERE id = p_id AND state = 'paused';
    IF NOT EXISTS (SELECT 1 FROM queue_sets WHERE id = p_id AND state = 'active') THEN
        RETURN NULL;
    END IF;
    UPDATE work_queue SET state = 'pending', run_after = least(run_after, now())
    WHERE state = 'held' AND set_id = p_id
      AND NOT EXISTS (SELECT 1 FROM queue_throttles t WHERE t.set_id = p_id);
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n;
END
$$;

-- name: queue_cancel_set@0038
-- Cancel: everything of the set not running or done is cancelled; running items finish,
-- and nothing of the set is queued again.
CREATE OR REPLACE FUNCTION renderer.queue_cancel_set(p_id text) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_n bigint;
BEGIN
    UPDATE queue_sets SET state = 'cancelled', changed_at = now() WHERE id = p_id;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    UPDATE work_queue SET state = 'cancelled', rerun = false
    WHERE set_id = p_id AND state IN ('pending', 'held', 'failed');
    GET DIAGNOSTICS v_n = ROW_COUNT;
    UPDATE work_queue SET rerun = false WHERE set_id = p_id AND state = 'running' AND rerun;
    RETURN v_n;
END
$$;

-- name: queue_on_update@0038
CREATE OR REPLACE FUNCTION renderer.queue_on_update() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    INSERT INTO queue_count_deltas (kind, set_id, state, n)
    SELECT x.kind, x.set_id, x.state, sum(x.n) FROM (
        SELECT o.kind, coalesce(o.set_id, '') AS set_id, o.state, -count(*) AS n
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
              WHERE n.state = 'pending' AND o.state <> 'pending') d;
    END IF;
    RETURN NULL;
END
$$;

-- name: queue_oldest_pending@0038
-- Oldest claimable age per kind without scanning: one probe of the claim index per
-- distinct priority (a loose index scan).
CREATE OR REPLACE FUNCTION renderer.queue_oldest_pending(p_kind text) RETURNS timestamptz
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_p integer;
    v_t timestamptz;
    v_best timestamptz;
BEGIN
    SELECT q.priority INTO v_p FROM work_queue q WHERE q.state = 'pending' AND q.kind = p_kind
    ORDER BY q.priority DESC, q.run_after, q.id LIMIT 1;
    WHILE v_p IS NOT NULL LOOP
        SELECT q.run_after INTO v_t FROM work_queue q
        WHERE q.state = 'pending' AND q.kind = p_kind AND q.priority = v_p
        ORDER BY q.priority DESC, q.run_after, q.id LIMIT 1;
        v_best := least(v_best, v_t);
        v_p := (SELECT q.priority FROM work_queue q
                WHERE q.state = 'pending' AND q.kind = p_kind AND q.priority < v_p
                ORDER BY q.priority DESC, q.run_after, q.id LIMIT 1);
    END LOOP;
    RETURN v_best;
END
$$;

-- name: queue_recount@0038
-- Rebuild the counters from the table (a repair after manual edits; scans everything).
CREATE OR REPLACE FUNCTION renderer.queue_recount() RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_n bigint;
BEGIN
    LOCK TABLE work_queue IN SHARE MODE;
    DELETE FROM queue_count_deltas;
    DELETE FROM queue_counts;
    INSERT INTO queue_counts (kind, set_id, state, n)
    SELECT kind, coalesce(set_id, ''), state, count(*) FROM work_queue GROUP BY 1, 2, 3;
    DELETE FROM queue_groups;
    INSERT INTO queue_groups (kind, grp, open)
    SELECT kind, grp, count(*) FILTER (WHERE state <> 'done')
    FROM work_queue WHERE grp IS NOT NULL GROUP BY 1, 2;
    SELECT coalesce(sum(n), 0) INTO v_n FROM queue_counts;
    RETURN v_n;
END
$$;

-- name: queue_status_v3@0038
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

-- name: queue_claim@0038
-- Claim up to p_limit pending items of one kind. p_reserve of them come first from batch
-- priority (<= 0), so on-demand work cannot starve the batch. Asynchronous commit: a
-- claim lost in a crash only makes its items claimable again. Each claimed item adds a
-- claim_wait timing: from the moment it became claimable (enqueued, or its retry time) to
-- its claim.
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
$$;

-- name: queue_complete@0038
-- Complete items whose lease token is still current; returns the ids refused (fencing:
-- their lease was taken over), which are also recorded and logged as a warning. Each item
-- that ends done adds a run timing (claim to completion).
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
$$;
