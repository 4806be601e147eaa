-- The work queue (queue.sql): enqueue, batch keys and fan-in rules.

-- name: queue_batch_key
-- The advisory lock of a claimed batch, keyed by its lease token (issue 16): 64 bits of the
-- token as the two-integer key, a key space of its own (the other advisory locks of the
-- schema take one bigint). A worker holds it for its processing transaction
-- (queue_lock_v3) instead of a row lock per item: no WAL, no tuple written. Only ever
-- transaction-scoped (PgBouncer's transaction pooling).
CREATE FUNCTION renderer.queue_batch_key(p_token uuid) RETURNS integer[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ARRAY[('x' || left(p_token::text, 8))::bit(32)::integer,
                 ('x' || right(p_token::text, 8))::bit(32)::integer]
$$;

-- name: queue_batch_free
-- Whether no worker is running the batch leased with p_token: its advisory lock is taken
-- for the caller's transaction (a worker starting that batch now waits for the caller's
-- commit, as it waited on the row locks of the previous verbs). False: a worker holds it.
CREATE FUNCTION renderer.queue_batch_free(p_token uuid) RETURNS boolean
LANGUAGE sql VOLATILE AS $$
    SELECT pg_try_advisory_xact_lock(k[1], k[2]) FROM renderer.queue_batch_key(p_token) k
$$;

-- name: queue_enqueue_many_v4
-- queue_enqueue_many_v3 for workers that hold one advisory lock per batch (queue_lock_v3)
-- and per-batch leases: an item is running while a lease holds it (its state stays
-- 'pending' in work_queue), and busy when its batch's lock is held. Taking the batch's lock
-- makes the item ours until commit.
CREATE OR REPLACE FUNCTION renderer.queue_enqueue_many_v4(
    p_kinds text[], p_keys text[], p_payloads jsonb[], p_fingerprints text[],
    p_set_ids text[], p_priorities integer[], p_groups text[], p_run_afters timestamptz[],
    p_force boolean DEFAULT false) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_n bigint;
    v_asked bigint := 0;
    v_busy_kinds text[] := '{}';
    v_busy_keys text[] := '{}';
    v_leased bigint[] := '{}';
BEGIN
    INSERT INTO queue_sets (id)
    SELECT DISTINCT s FROM unnest(p_set_ids) AS s WHERE s IS NOT NULL
    ON CONFLICT (id) DO NOTHING;

    -- Leased items of the chunk: the leases' items (a few batches' worth) hashed against
    -- the chunk, then one lock probe per batch. Those whose batch a worker runs are busy
    -- (left out of the upsert, a rerun request instead); the others are running items the
    -- upsert marks for a rerun.
    IF EXISTS (SELECT 1 FROM queue_leases) THEN
        WITH a AS MATERIALIZED (
            SELECT w.id, w.kind, w.key, l.token
            FROM queue_leases l CROSS JOIN LATERAL unnest(l.ids) AS x(id)
            JOIN work_queue w ON w.id = x.id AND w.state = 'pending'),
        r AS MATERIALIZED (
            SELECT a.* FROM a
            WHERE (a.kind, a.key) IN (SELECT i.kind, i.key
                                      FROM unnest(p_kinds, p_keys) AS i(kind, key))),
        b AS MATERIALIZED (
            SELECT t.token, renderer.queue_batch_free(t.token) AS free
            FROM (SELECT DISTINCT r.token FROM r) t)
        SELECT coalesce(array_agg(r.kind) FILTER (WHERE NOT b.free), '{}'),
               coalesce(array_agg(r.key) FILTER (WHERE NOT b.free), '{}'),
               coalesce(array_agg(r.id) FILTER (WHERE b.free), '{}')
        INTO v_busy_kinds, v_busy_keys, v_leased
        FROM r JOIN b ON b.token = r.token;
    END IF;

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
        rerun = w.rerun OR ((w.state = 'running' OR w.id = ANY (v_leased))
                            AND (p_force OR excluded.fingerprint IS NULL
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
       OR ((w.state = 'running' OR w.id = ANY (v_leased)) AND NOT w.rerun
           AND (p_force OR excluded.fingerprint IS NULL
                OR excluded.fingerprint IS DISTINCT FROM w.fingerprint))
       OR (w.state IN ('pending', 'held', 'running') AND (excluded.priority > w.priority
           OR excluded.fingerprint IS DISTINCT FROM w.fingerprint
              AND excluded.fingerprint IS NOT NULL));
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n + v_asked;
END
$$;

-- name: queue_enqueue_v4
-- One item; returns what happened: inserted, requeued, rerun, updated, unchanged, cancelled.
-- Never waits on a worker running the item (queue_enqueue_many_v4: batch locks); held in
-- a throttled set. A leased item is running (queue_items).
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
    SELECT state INTO v_old FROM queue_items WHERE kind = p_kind AND key = p_key;
    v_n := renderer.queue_enqueue_many_v4(ARRAY[p_kind], ARRAY[p_key], ARRAY[p_payload],
                                          ARRAY[p_fingerprint], ARRAY[p_set_id],
                                          ARRAY[p_priority], ARRAY[p_group],
                                          ARRAY[p_run_after], p_force);
    IF v_n = 0 THEN
        RETURN 'unchanged';
    END IF;
    SELECT state INTO v_new FROM queue_items WHERE kind = p_kind AND key = p_key;
    RETURN CASE
        WHEN v_new = 'cancelled' THEN 'cancelled'
        WHEN v_old IS NULL THEN 'inserted'
        WHEN v_new = 'running' AND v_old = 'running' THEN 'rerun'
        WHEN v_old IN ('done', 'failed', 'cancelled') THEN 'requeued'
        ELSE 'updated' END;
END
$$;

-- name: queue_fire
-- Fire the rules of a group that just closed (or of one rule when p_then_kind is given).
-- Through queue_enqueue_many_v4: a successor being run gets a rerun request instead of
-- waiting on its worker, and a leased successor is seen as running.
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
        PERFORM renderer.queue_enqueue_many_v4(
            ARRAY[r.then_kind], ARRAY[r.then_key], ARRAY[r.payload], ARRAY[NULL::text],
            ARRAY[r.set_id], ARRAY[0], ARRAY[NULL::text], ARRAY[NULL::timestamptz], true);
        v_n := v_n + 1;
    END LOOP;
    RETURN v_n;
END
$$;

-- name: queue_add_rules
-- Declare fan-in rules: when every item of when_kind in group is done (none pending,
-- held, running or failed), enqueue (then_kind, then_key). The group row is locked first,
-- so a rule added while the group's last item completes elsewhere is fired exactly once,
-- here (if the group is already all done) or there. Returns the number fired now.
CREATE FUNCTION renderer.queue_add_rules(
    p_when_kinds text[], p_groups text[], p_then_kinds text[], p_then_keys text[],
    p_payloads jsonb[], p_set_ids text[]) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    v_open bigint;
    v_fired integer := 0;
BEGIN
    FOR r IN
        SELECT DISTINCT ON (i.wk, i.g, i.tk, i.tkey) i.*
        FROM unnest(p_when_kinds, p_groups, p_then_kinds, p_then_keys, p_payloads, p_set_ids)
             AS i(wk, g, tk, tkey, payload, set_id)
        ORDER BY i.wk, i.g, i.tk, i.tkey
    LOOP
        SELECT g.open INTO v_open FROM queue_groups g
        WHERE g.kind = r.wk AND g.grp = r.g FOR UPDATE;
        IF NOT EXISTS (SELECT 1 FROM queue_rules q WHERE q.when_kind = r.wk AND q.grp = r.g
                       AND q.then_kind = r.tk AND q.then_key = r.tkey) THEN
            INSERT INTO queue_rules (when_kind, grp, then_kind, then_key, payload, set_id)
            VALUES (r.wk, r.g, r.tk, r.tkey, coalesce(r.payload, '{}'), r.set_id)
            ON CONFLICT DO NOTHING;
        END IF;
        IF v_open = 0 THEN
            v_fired := v_fired + renderer.queue_fire(r.wk, r.g, r.tk, r.tkey);
        END IF;
    END LOOP;
    RETURN v_fired;
END
$$;

-- name: queue_add_rule
CREATE FUNCTION renderer.queue_add_rule(
    p_when_kind text, p_group text, p_then_kind text, p_then_key text,
    p_payload jsonb DEFAULT '{}', p_set_id text DEFAULT NULL) RETURNS integer
LANGUAGE sql AS $$
    SELECT renderer.queue_add_rules(ARRAY[p_when_kind], ARRAY[p_group], ARRAY[p_then_kind],
                                    ARRAY[p_then_key], ARRAY[p_payload], ARRAY[p_set_id])
$$;

-- name: queue_apply_reruns
-- Settle the rerun requests no completion consumed: a request is satisfied by an attempt
-- that started after it, or by one to come (the item is pending or held); an item that
-- finished (done or failed) an attempt begun before the request is queued again. An item
-- a lease holds is running, since its lease's start.
CREATE OR REPLACE FUNCTION renderer.queue_apply_reruns() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_n integer;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM queue_reruns) THEN
        RETURN 0;
    END IF;
    WITH lz AS MATERIALIZED (
        SELECT x.id, l.started_at FROM queue_leases l CROSS JOIN LATERAL unnest(l.ids) AS x(id)),
    x AS (
        SELECT r.kind, r.key, r.fingerprint, r.requested_at, w.id,
               CASE WHEN lz.id IS NOT NULL AND w.state = 'pending' THEN 'running'
                    ELSE w.state END AS state,
               CASE WHEN lz.id IS NOT NULL AND w.state = 'pending' THEN lz.started_at
                    ELSE w.started_at END AS started_at
        FROM queue_reruns r JOIN work_queue w ON w.kind = r.kind AND w.key = r.key
        LEFT JOIN lz ON lz.id = w.id
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
