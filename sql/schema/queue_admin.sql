-- The work queue (queue.sql): an operator's verbs: retry, prune, sets and their throttles.

-- name: queue_retry
-- Make failed items pending again with fresh attempts (read from queue_parked).
CREATE OR REPLACE FUNCTION renderer.queue_retry(p_kind text DEFAULT NULL,
                                                p_set_id text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_n bigint;
BEGIN
    UPDATE work_queue w SET state = renderer.queue_target_state(w.set_id), attempt = 0,
        run_after = now(), finished_at = NULL
    WHERE w.id IN (SELECT p.id FROM queue_parked p
                   WHERE p.state = 'failed' AND (p_kind IS NULL OR p.kind = p_kind)
                     AND (p_set_id IS NULL OR p.set_id = p_set_id))
      AND w.state = 'failed';
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n;
END
$$;

-- name: queue_create_set
CREATE FUNCTION renderer.queue_create_set(p_id text, p_info jsonb DEFAULT '{}')
RETURNS text
LANGUAGE sql AS $$
    INSERT INTO queue_sets AS s (id, info) VALUES (p_id, p_info)
    ON CONFLICT (id) DO UPDATE SET info = s.info || excluded.info
    RETURNING s.id
$$;

-- name: queue_throttle
-- Set a set's limits (NULL: no such limit; both NULL: clear them), creating the set if
-- need be. A newly throttled set's pending items are held for the feed (those in
-- queue_pending, locked there first so that no claim leases them meanwhile; leased items
-- run on); a cleared active set's held items go back to pending. Returns the number of
-- items moved.
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
            WHERE id IN (SELECT p.id FROM queue_parked p
                         WHERE p.state = 'held' AND p.set_id = p_set_id)
              AND state = 'held'
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
        UPDATE work_queue SET state = 'held'
        WHERE id IN (SELECT p.id FROM queue_pending p WHERE p.set_id = p_set_id
                     FOR UPDATE OF p)
          AND state = 'pending';
        GET DIAGNOSTICS v_n = ROW_COUNT;
    END IF;
    RETURN v_n;
END
$$;

-- name: queue_pause_set
-- Pause: pending items of the set are held until resumed (those in queue_pending, locked
-- there first so that no claim leases them meanwhile; leased items run on). Returns the
-- number of items moved, NULL when there is no such set.
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
    WHERE id IN (SELECT p.id FROM queue_pending p WHERE p.set_id = p_id FOR UPDATE OF p)
      AND state = 'pending'
      AND (SELECT s.state FROM queue_sets s WHERE s.id = p_id) = 'paused';
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n;
END
$$;

-- name: queue_resume_set
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
    WHERE id IN (SELECT p.id FROM queue_parked p WHERE p.state = 'held' AND p.set_id = p_id)
      AND state = 'held'
      AND NOT EXISTS (SELECT 1 FROM queue_throttles t WHERE t.set_id = p_id);
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n;
END
$$;

-- name: queue_cancel_set
-- Cancel: everything of the set not running or done is cancelled (the pending items those
-- in queue_pending, locked there first; leased items are running); running items finish,
-- and nothing of the set is queued again.
CREATE OR REPLACE FUNCTION renderer.queue_cancel_set(p_id text) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_n bigint;
    v_m bigint;
BEGIN
    UPDATE queue_sets SET state = 'cancelled', changed_at = now() WHERE id = p_id;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    UPDATE work_queue SET state = 'cancelled', rerun = false
    WHERE id IN (SELECT p.id FROM queue_pending p WHERE p.set_id = p_id FOR UPDATE OF p)
      AND state = 'pending';
    GET DIAGNOSTICS v_n = ROW_COUNT;
    UPDATE work_queue SET state = 'cancelled', rerun = false
    WHERE id IN (SELECT p.id FROM queue_parked p WHERE p.set_id = p_id)
      AND state IN ('held', 'failed');
    GET DIAGNOSTICS v_m = ROW_COUNT;
    v_n := v_n + v_m;
    UPDATE work_queue SET rerun = false
    WHERE id IN (SELECT x.id FROM queue_leases l CROSS JOIN LATERAL unnest(l.ids) AS x(id))
      AND set_id = p_id AND rerun;
    RETURN v_n;
END
$$;

-- name: queue_prune_v3
-- queue_prune_v2 holding the maintenance lock (the one queue_maintain_v2 tries): the rollups
-- fold into the per-kind rows, whose row locks prune holds from its own rollup to its
-- commit, so a maintenance rollup beside it would wait on them while holding counter rows
-- prune may delete next (a deadlock). With the lock, maintenance reaps and skips its
-- rollup until prune commits; the status views read the deltas meanwhile.
CREATE FUNCTION renderer.queue_prune_v3(p_older_than interval) RETURNS bigint
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(7301734222);
    RETURN renderer.queue_prune_v2(p_older_than);
END
$$;
