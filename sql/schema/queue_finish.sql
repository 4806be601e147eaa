-- The work queue (queue.sql): completion, rejection and failure.

-- name: queue_complete_v2
-- Complete items their lease p_token still holds, consuming the rerun requests made during
-- the attempt (queue_lease_complete); returns the ids refused (fencing: their lease was
-- taken over), which are also recorded and logged as a warning.
CREATE OR REPLACE FUNCTION renderer.queue_complete_v2(p_ids bigint[], p_token uuid)
RETURNS bigint[]
LANGUAGE plpgsql AS $$
BEGIN
    RETURN renderer.queue_lease_complete(p_ids, p_token, true);
END
$$;

-- name: queue_lease_complete
-- Complete items their lease p_token still holds (queue_complete_v2, and queue_complete
-- with p_reruns false); returns the ids refused (fencing: their lease was taken over),
-- which are also recorded and logged as a warning. The ids are taken
-- out of the lease (queue_lease_take; the lease row goes with its last item) and the items
-- updated to done by primary key: the one write to an item its claim and completion make,
-- HOT (no index names a column it changes). Each item that ends done adds a run timing
-- (claim to completion). With p_reruns, a rerun requested during the attempt
-- (queue_reruns) is consumed here, in the completion's transaction. Run seconds by date_part (float8).
CREATE FUNCTION renderer.queue_lease_complete(p_ids bigint[], p_token uuid,
                                              p_reruns boolean)
RETURNS bigint[]
LANGUAGE plpgsql AS $$
DECLARE
    v_take record;
    v_done bigint[];
    v_rejected bigint[];
    v_again bigint[] := '{}';
    v_prints text[] := '{}';
BEGIN
    v_take := renderer.queue_lease_take(p_token, p_ids);
    IF p_reruns AND cardinality(v_take.ids) > 0 AND EXISTS (SELECT 1 FROM queue_reruns) THEN
        WITH r AS (
            DELETE FROM queue_reruns x USING work_queue q
            WHERE q.id = ANY (v_take.ids) AND x.kind = q.kind AND x.key = q.key
            RETURNING q.id, x.fingerprint, x.requested_at >= v_take.started_at AS again)
        SELECT coalesce(array_agg(r.id), '{}'), coalesce(array_agg(r.fingerprint), '{}')
        INTO v_again, v_prints FROM r WHERE r.again;
    END IF;
    PERFORM set_config('renderer.lease_ending', 'on', true);
    WITH u AS (
        UPDATE work_queue w SET
            state = CASE WHEN w.rerun OR w.id = ANY (v_again)
                         THEN renderer.queue_target_state(w.set_id) ELSE 'done' END,
            attempt = CASE WHEN w.rerun OR w.id = ANY (v_again) THEN 0
                           ELSE w.attempt + 1 END,
            run_after = CASE WHEN w.rerun OR w.id = ANY (v_again) THEN now()
                             ELSE w.run_after END,
            fingerprint = CASE WHEN w.id = ANY (v_again) THEN coalesce(
                                   v_prints[array_position(v_again, w.id)], w.fingerprint)
                               ELSE w.fingerprint END,
            rerun = false, started_at = v_take.started_at, finished_at = clock_timestamp(),
            last_error = NULL
        WHERE w.id = ANY (v_take.ids) AND w.state = 'pending'
        RETURNING w.id, w.kind, w.set_id, w.started_at, w.finished_at),
    t AS (
        INSERT INTO queue_timing_deltas
        SELECT r.kind, r.set_id, 'run', renderer.queue_timing_bucket(r.s), count(*),
               sum(r.s), max(r.s), min(r.started_at), max(r.finished_at)
        FROM (SELECT u.kind, coalesce(u.set_id, '') AS set_id, u.started_at, u.finished_at,
                     greatest(0::float8, date_part('epoch', u.finished_at - u.started_at)) AS s
              FROM u) r
        GROUP BY 1, 2, 3, 4)
    SELECT coalesce(array_agg(u.id), '{}') INTO v_done FROM u;
    PERFORM set_config('renderer.lease_ending', '', true);
    IF cardinality(v_done) = cardinality(p_ids) THEN
        RETURN '{}';
    END IF;
    v_rejected := ARRAY(SELECT unnest(p_ids) EXCEPT SELECT unnest(v_done));
    PERFORM renderer.queue_reject(v_rejected, 'completion');
    RETURN v_rejected;
END
$$;

-- name: queue_complete_one
-- queue_complete of one item: true when it was accepted.
CREATE FUNCTION renderer.queue_complete(p_id bigint, p_token uuid) RETURNS boolean
LANGUAGE sql AS $$
    SELECT cardinality(renderer.queue_complete(ARRAY[p_id], p_token)) = 0
$$;

-- name: queue_reject
CREATE FUNCTION renderer.queue_reject(p_ids bigint[], p_verb text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF cardinality(p_ids) = 0 THEN
        RETURN;
    END IF;
    INSERT INTO queue_attempts (item_id, kind, key, attempt, outcome, message)
    SELECT w.id, w.kind, w.key, w.attempt, 'rejected',
           'late ' || p_verb || ' refused, the lease token is not current'
    FROM work_queue w WHERE w.id = ANY (p_ids);
    RAISE WARNING USING MESSAGE = 'work queue refused a late ' || p_verb || ' of '
        || cardinality(p_ids) || ' item(s), ids ' || array_to_string(p_ids, ',')
        || ', their lease was taken over';
END
$$;

-- name: queue_fail
-- Record failed attempts of items the lease p_token still holds; an item with attempts
-- left goes back (after a backoff with jitter), otherwise, or when p_final, it is failed.
-- Returns (item_id, new_state) for each item accepted; the others (stale token) are
-- recorded as rejected and logged.
CREATE OR REPLACE FUNCTION renderer.queue_fail(
    p_ids bigint[], p_token uuid, p_types text[], p_messages text[],
    p_tracebacks text[] DEFAULT NULL, p_final boolean DEFAULT false,
    p_outcome text DEFAULT 'failed')
RETURNS TABLE (item_id bigint, new_state text)
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    v_take record;
    v_accepted bigint[] := '{}';
BEGIN
    v_take := renderer.queue_lease_take(p_token, p_ids);
    PERFORM set_config('renderer.lease_ending', 'on', true);
    FOR r IN
        WITH f AS (
            SELECT f.id, f.etype, f.message, f.tb
            FROM unnest(p_ids, p_types, p_messages,
                        coalesce(p_tracebacks,
                                 array_fill(NULL::text, ARRAY[cardinality(p_ids)])))
                 AS f(id, etype, message, tb)
            WHERE f.id = ANY (v_take.ids)),
        u AS (
            UPDATE work_queue w SET
                state = CASE WHEN p_final
                                  OR w.attempt + 1 >= renderer.queue_max_attempts(w.kind)
                             THEN 'failed' ELSE renderer.queue_target_state(w.set_id) END,
                attempt = w.attempt + 1,
                run_after = now() + renderer.queue_backoff(
                    renderer.queue_backoff_base(w.kind), w.attempt + 1),
                rerun = false, started_at = v_take.started_at,
                finished_at = clock_timestamp(),
                last_error = left(f.etype || ' ' || f.message, 2000)
            FROM f
            WHERE w.id = f.id AND w.state = 'pending'
            RETURNING w.id, w.kind, w.key, w.attempt, w.state),
        a AS (
            INSERT INTO queue_attempts
                (item_id, kind, key, attempt, outcome, owner, error_type, message, traceback)
            SELECT u.id, u.kind, u.key, u.attempt, p_outcome, v_take.owner, f.etype,
                   f.message, f.tb
            FROM u JOIN f ON f.id = u.id)
        SELECT u.id, u.state FROM u
    LOOP
        item_id := r.id;
        new_state := r.state;
        v_accepted := v_accepted || r.id;
        RETURN NEXT;
    END LOOP;
    PERFORM set_config('renderer.lease_ending', '', true);
    IF cardinality(v_accepted) < cardinality(p_ids) THEN
        PERFORM renderer.queue_reject(
            ARRAY(SELECT unnest(p_ids) EXCEPT SELECT unnest(v_accepted)), 'failure');
    END IF;
END
$$;

-- name: queue_fail_one
-- queue_fail of one item: its new state, or 'rejected' (stale token).
CREATE FUNCTION renderer.queue_fail(p_id bigint, p_token uuid, p_message text,
                                    p_type text DEFAULT 'Error',
                                    p_traceback text DEFAULT NULL) RETURNS text
LANGUAGE sql AS $$
    SELECT coalesce((SELECT f.new_state FROM renderer.queue_fail(
        ARRAY[p_id], p_token, ARRAY[p_type], ARRAY[p_message], ARRAY[p_traceback]) f),
        'rejected')
$$;

-- name: queue_finish_v2
-- A worker's end of a batch in one call: complete the good items, fail the bad ones
-- (p_outcomes says failed or timeout for each). Returns the ids refused by fencing.
-- Completes through queue_complete_v2 (rerun requests).
CREATE FUNCTION renderer.queue_finish_v2(
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
        v_rejected := renderer.queue_complete_v2(p_ok, p_token);
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
