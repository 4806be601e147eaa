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
