-- The work queue (queue.sql): previous versions of the enqueue, kept because workers of the
-- previous release call them during a rolling deploy (sql/schema/README.md). Nothing in this
-- release calls them; a migration drops them once no released code does.

-- name: queue_enqueue_many
-- The one upsert behind every enqueue. A pending item is left as it is (its priority may
-- rise, its fingerprint follows the newest inputs); a running item is marked to run once
-- more unless the same inputs are already running; a done or failed item is requeued
-- only when forced or its fingerprint changed; a cancelled one is requeued.
CREATE FUNCTION renderer.queue_enqueue_many(
    p_kinds text[], p_keys text[], p_payloads jsonb[], p_fingerprints text[],
    p_set_ids text[], p_priorities integer[], p_groups text[], p_run_afters timestamptz[],
    p_force boolean DEFAULT false) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_n bigint;
BEGIN
    INSERT INTO queue_sets (id)
    SELECT DISTINCT s FROM unnest(p_set_ids) AS s WHERE s IS NOT NULL
    ON CONFLICT (id) DO NOTHING;

    INSERT INTO work_queue AS w
        (kind, key, payload, fingerprint, set_id, priority, grp, run_after, state)
    SELECT DISTINCT ON (i.kind, i.key)
           i.kind, i.key, coalesce(i.payload, '{}'), i.fingerprint, i.set_id,
           coalesce(i.priority, 0), i.grp, coalesce(i.run_after, now()),
           CASE s.state WHEN 'paused' THEN 'held' WHEN 'cancelled' THEN 'cancelled'
                        ELSE 'pending' END
    FROM unnest(p_kinds, p_keys, p_payloads, p_fingerprints, p_set_ids, p_priorities,
                p_groups, p_run_afters)
         AS i(kind, key, payload, fingerprint, set_id, priority, grp, run_after)
    LEFT JOIN queue_sets s ON s.id = i.set_id
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
    RETURN v_n;
END
$$;

-- name: queue_enqueue_many_v2
-- The one upsert behind every enqueue. A pending item is left as it is (its priority may
-- rise, its fingerprint follows the newest inputs); a running item is marked to run once
-- more unless the same inputs are already running; a done or failed item is requeued
-- only when forced or its fingerprint changed; a cancelled one is requeued.
-- Unlike queue_enqueue_many it never waits on a worker: a running item whose row a worker
-- holds locked for its batch gets a rerun request (queue_reruns) instead of an update, so
-- an enqueue returns at once whatever the workers are doing.
CREATE FUNCTION renderer.queue_enqueue_many_v2(
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

    -- Running items locked by someone else (a worker's batch): left out of the upsert.
    -- Those we could lock are now ours, and the upsert below marks them as before.
    SELECT coalesce(array_agg(w.kind), '{}'), coalesce(array_agg(w.key), '{}')
    INTO v_busy_kinds, v_busy_keys
    FROM (SELECT DISTINCT i.kind, i.key FROM unnest(p_kinds, p_keys) AS i(kind, key)) i
    JOIN work_queue w ON w.kind = i.kind AND w.key = i.key
    WHERE w.state = 'running'
      AND NOT EXISTS (SELECT 1 FROM work_queue l WHERE l.id = w.id FOR UPDATE SKIP LOCKED);

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
                        ELSE 'pending' END
    FROM unnest(p_kinds, p_keys, p_payloads, p_fingerprints, p_set_ids, p_priorities,
                p_groups, p_run_afters)
         AS i(kind, key, payload, fingerprint, set_id, priority, grp, run_after)
    LEFT JOIN queue_sets s ON s.id = i.set_id
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

-- name: queue_enqueue_many_v3
-- The one upsert behind every enqueue. A pending item is left as it is (its priority may
-- rise, its fingerprint follows the newest inputs); a running item is marked to run once
-- more unless the same inputs are already running; a done or failed item is requeued
-- only when forced or its fingerprint changed; a cancelled one is requeued.
-- Unlike queue_enqueue_many it never waits on a worker: a running item whose row a worker
-- holds locked for its batch gets a rerun request (queue_reruns) instead of an update, so
-- an enqueue returns at once whatever the workers are doing.
-- v3: a new item of a throttled set waits held for the feed (queue_feed), as in a paused one.
CREATE FUNCTION renderer.queue_enqueue_many_v3(
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

    -- Running items locked by someone else (a worker's batch): left out of the upsert.
    -- Those we could lock are now ours, and the upsert below marks them as before. Driven
    -- from the running items (a few batches' worth, read by their partial index) hashed
    -- against the chunk, not by a (kind, key) probe per item of the chunk, which cost
    -- queue_enqueue_many_v2 a tenth more per chunk than the upsert alone.
    WITH r AS MATERIALIZED (
        SELECT w.id, w.kind, w.key FROM work_queue w WHERE w.state = 'running')
    SELECT coalesce(array_agg(r.kind), '{}'), coalesce(array_agg(r.key), '{}')
    INTO v_busy_kinds, v_busy_keys
    FROM r
    WHERE (r.kind, r.key) IN (SELECT i.kind, i.key FROM unnest(p_kinds, p_keys) AS i(kind, key))
      AND NOT EXISTS (SELECT 1 FROM work_queue l WHERE l.id = r.id FOR UPDATE SKIP LOCKED);

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

-- name: queue_enqueue
-- One item; returns what happened: inserted, requeued, rerun, updated, unchanged, cancelled.
CREATE FUNCTION renderer.queue_enqueue(
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
    v_n := renderer.queue_enqueue_many(ARRAY[p_kind], ARRAY[p_key], ARRAY[p_payload],
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

-- name: queue_enqueue_v2
-- One item; returns what happened: inserted, requeued, rerun, updated, unchanged, cancelled.
-- Never waits on a worker running the item (queue_enqueue_many_v2).
CREATE FUNCTION renderer.queue_enqueue_v2(
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
    v_n := renderer.queue_enqueue_many_v2(ARRAY[p_kind], ARRAY[p_key], ARRAY[p_payload],
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

-- name: queue_enqueue_v3
-- One item; returns what happened: inserted, requeued, rerun, updated, unchanged, cancelled.
-- Never waits on a worker running the item (queue_enqueue_many_v3); held in a throttled set.
CREATE FUNCTION renderer.queue_enqueue_v3(
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
    v_n := renderer.queue_enqueue_many_v3(ARRAY[p_kind], ARRAY[p_key], ARRAY[p_payload],
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
