-- The work queue (queue.sql): previous versions of the claim, lock, heartbeat, completion,
-- release and reaper, kept because workers of the previous
-- release call them during a rolling deploy (sql/schema/README.md). Nothing in this release
-- calls them; a migration drops them once no released code does.

-- name: queue_claim
-- Claim up to p_limit pending items of one kind (the psql verb; queue_claim_v2 calls it
-- after the feed). p_reserve of them come first from batch priority (<= 0), so on-demand
-- work cannot starve the batch. The batch is leased (queue_lease_batch): the rows returned
-- are the items as their readers see them while leased (queue_items), running.
-- Asynchronous commit: a claim lost in a crash only makes its items claimable again.
CREATE OR REPLACE FUNCTION renderer.queue_claim(
    p_kind text, p_limit integer DEFAULT 1, p_owner text DEFAULT 'psql',
    p_lease_seconds double precision DEFAULT 60, p_reserve integer DEFAULT 0)
RETURNS SETOF work_queue
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    RETURN QUERY
    SELECT w.id, w.kind, w.key, 'running'::text, w.payload, w.priority, w.run_after,
           w.fingerprint, w.set_id, w.grp, c.attempt, w.rerun, p_owner, c.lease_token,
           now() + make_interval(secs => p_lease_seconds), w.last_error, w.enqueued_at,
           now(), w.finished_at
    FROM renderer.queue_lease_batch(p_kind, p_limit, p_reserve, p_owner, p_lease_seconds) c
    JOIN work_queue w ON w.id = c.id;
END
$$;

-- name: queue_claim_next
-- The worker's claim: pick the kind at the head of the queue among p_kinds (every so
-- often, p_batch_turn, the head of the batch priority), then claim a batch of that kind
-- with that kind's limit and lease.
CREATE FUNCTION renderer.queue_claim_next(
    p_kinds text[], p_limits integer[], p_leases double precision[], p_owner text,
    p_batch_turn boolean DEFAULT false)
RETURNS SETOF work_queue
LANGUAGE plpgsql AS $$
DECLARE
    v_kind text;
    v_pos integer;
    v_limit integer;
BEGIN
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
    RETURN QUERY SELECT * FROM renderer.queue_claim(
        v_kind, v_limit, p_owner, p_leases[v_pos],
        CASE WHEN p_batch_turn THEN v_limit ELSE v_limit / 5 END);
END
$$;

-- name: queue_lock
-- Start processing claimed items: lock those whose lease is still ours for the rest of
-- the transaction (nobody can take them over now) and return their ids. The transaction
-- may idle while handlers run; past p_idle_seconds the server ends it.
CREATE FUNCTION renderer.queue_lock(p_ids bigint[], p_token uuid,
                                    p_idle_seconds double precision DEFAULT 0)
RETURNS SETOF bigint
LANGUAGE plpgsql AS $$
BEGIN
    IF p_idle_seconds > 0 THEN
        PERFORM set_config('idle_in_transaction_session_timeout',
                           (ceil(p_idle_seconds * 1000))::bigint::text, true);
    END IF;
    RETURN QUERY SELECT q.id FROM work_queue q
        WHERE q.id = ANY (p_ids) AND q.lease_token = p_token AND q.state = 'running'
        ORDER BY q.id FOR UPDATE;
END
$$;

-- name: queue_lock_v2
-- Start processing claimed items: lock those whose lease is still ours for the rest of
-- the transaction (nobody can take them over now) and return their ids. The transaction
-- may idle while handlers run; past p_idle_seconds the server ends it. The session is
-- named after the lease token for the transaction, so that the reaper can end it when its
-- owner froze (queue_reap_v2).
CREATE FUNCTION renderer.queue_lock_v2(p_ids bigint[], p_token uuid,
                                    p_idle_seconds double precision DEFAULT 0)
RETURNS SETOF bigint
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('application_name', 'renderer lease ' || p_token, true);
    IF p_idle_seconds > 0 THEN
        PERFORM set_config('idle_in_transaction_session_timeout',
                           (ceil(p_idle_seconds * 1000))::bigint::text, true);
    END IF;
    RETURN QUERY SELECT q.id FROM work_queue q
        WHERE q.id = ANY (p_ids) AND q.lease_token = p_token AND q.state = 'running'
        ORDER BY q.id FOR UPDATE;
END
$$;

-- name: queue_heartbeat
-- Extend the leases of an owner's unlocked items and record the worker as alive.
CREATE FUNCTION renderer.queue_heartbeat(p_owner text,
                                         p_lease_seconds double precision DEFAULT 60,
                                         p_info jsonb DEFAULT '{}')
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_n integer;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    INSERT INTO queue_workers AS qw (owner, info) VALUES (p_owner, p_info)
    ON CONFLICT (owner) DO UPDATE SET seen_at = now(), info = qw.info || excluded.info;
    UPDATE work_queue w SET lease_expires = now() + make_interval(secs => p_lease_seconds)
    WHERE w.id IN (SELECT q.id FROM work_queue q
                   WHERE q.state = 'running' AND q.lease_owner = p_owner
                   FOR UPDATE SKIP LOCKED);
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n;
END
$$;

-- name: queue_complete
-- Complete items whose lease token is still current (queue_lease_complete, without the
-- rerun requests queue_complete_v2 consumes); returns the ids refused.
CREATE OR REPLACE FUNCTION renderer.queue_complete(p_ids bigint[], p_token uuid)
RETURNS bigint[]
LANGUAGE plpgsql AS $$
BEGIN
    RETURN renderer.queue_lease_complete(p_ids, p_token, false);
END
$$;

-- name: queue_finish
-- A worker's end of a batch in one call: complete the good items, fail the bad ones
-- (p_outcomes says failed or timeout for each). Returns the ids refused by fencing.
CREATE FUNCTION renderer.queue_finish(
    p_token uuid, p_ok bigint[], p_failed bigint[], p_types text[], p_messages text[],
    p_tracebacks text[], p_outcomes text[]) RETURNS bigint[]
LANGUAGE plpgsql AS $$
DECLARE
    v_rejected bigint[] := '{}';
    v_outcome text;
    v_sel integer[];
    v_ids bigint[];
    v_accepted bigint[];
BEGIN
    IF cardinality(p_ok) > 0 THEN
        v_rejected := renderer.queue_complete(p_ok, p_token);
    END IF;
    FOR v_outcome IN SELECT DISTINCT o FROM unnest(p_outcomes) AS o LOOP
        v_sel := ARRAY(SELECT i FROM generate_subscripts(p_failed, 1) AS i
                       WHERE p_outcomes[i] = v_outcome);
        v_ids := ARRAY(SELECT p_failed[i] FROM unnest(v_sel) AS i);
        v_accepted := ARRAY(SELECT f.item_id FROM renderer.queue_fail(
            v_ids, p_token,
            ARRAY(SELECT p_types[i] FROM unnest(v_sel) AS i),
            ARRAY(SELECT p_messages[i] FROM unnest(v_sel) AS i),
            ARRAY(SELECT p_tracebacks[i] FROM unnest(v_sel) AS i),
            false, v_outcome) f);
        v_rejected := v_rejected
            || ARRAY(SELECT unnest(v_ids) EXCEPT SELECT unnest(v_accepted));
    END LOOP;
    RETURN v_rejected;
END
$$;

-- name: queue_release
-- Put an owner's running items back: after a shutdown or reconnect (p_count false: the
-- attempt is given back), or after a crash or a kill (p_count true: the attempt counts,
-- recorded with p_type and p_message, and the item may end failed). Locked items (still
-- inside a live transaction) are skipped.
CREATE FUNCTION renderer.queue_release(
    p_owner text, p_ids bigint[] DEFAULT NULL, p_count boolean DEFAULT false,
    p_type text DEFAULT 'Released', p_message text DEFAULT 'released by its worker',
    p_outcome text DEFAULT 'released') RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_n integer;
BEGIN
    WITH x AS (
        SELECT q.id FROM work_queue q
        WHERE q.state = 'running' AND q.lease_owner = p_owner
          AND (p_ids IS NULL OR q.id = ANY (p_ids))
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

-- name: queue_reap
-- Items whose lease expired (and that no live transaction holds) count a failed attempt.
CREATE FUNCTION renderer.queue_reap() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_n integer;
BEGIN
    WITH x AS (
        SELECT q.id, q.lease_owner FROM work_queue q
        WHERE q.state = 'running' AND q.lease_expires < now()
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

-- name: queue_reap_v2
-- queue_reap, after ending the sessions of frozen owners: an item whose lease expired is
-- still locked by its owner's processing transaction (queue_lock_v2 names that session
-- after the lease token), and the owner has not heartbeated for a whole lease (stopped,
-- paused, cut off). A live owner heartbeats from its own thread whatever its handler does;
-- one stuck in a handler is its supervisor's to kill. Ending the session rolls the batch
-- back and frees the rows, which are then reaped here, within about a lease of the freeze.
-- A reaper whose role may not end a session (not a superuser, not in pg_signal_backend, or
-- the session a superuser's) warns and reaps the rest: those items wait until their
-- session ends or a reaper with the right comes by.
CREATE OR REPLACE FUNCTION renderer.queue_reap_v2() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_pid integer;
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM work_queue w JOIN queue_workers qw ON qw.owner = w.lease_owner
        WHERE w.state = 'running' AND w.lease_expires < now()
          AND qw.seen_at < now() - (w.lease_expires - w.started_at)) THEN
        RETURN renderer.queue_reap();
    END IF;
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
    RETURN renderer.queue_reap();
END
$$;
