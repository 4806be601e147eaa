-- Set-based enqueue (renderer/queue/_bulk.py): a chunk of keys new to the queue is copied
-- straight into work_queue (copy_new); otherwise items are streamed by COPY into a staging
-- table; keys new to the queue are inserted in one INSERT .. SELECT, the others handed to
-- the one upsert every enqueue goes through (renderer.queue_enqueue_many_v4), aggregated
-- server-side, so the rules (duplicates, reruns, fingerprints, sets) are the normal
-- enqueue's (tests/test_queue_bulk.py holds the two equal).

-- name: create_staging
-- The staging table of this transaction (dropped by the caller, and at commit at the latest).
CREATE TEMP TABLE queue_bulk_staging (
    kind text NOT NULL, key text NOT NULL, payload jsonb, fingerprint text, set_id text,
    priority integer NOT NULL, grp text, run_after timestamptz, force boolean NOT NULL
) ON COMMIT DROP;

-- name: copy_staging
COPY queue_bulk_staging (kind, key, payload, fingerprint, set_id, priority, grp, run_after,
                         force) FROM STDIN (FORMAT binary)

-- name: now
-- The transaction's now(): what the column defaults give, sent for a copied run_after not given.
SELECT now();

-- name: set_states
-- The sets of a chunk copied straight into the queue: created if new, and the state their
-- new items take, as insert_new gives it (held in a paused or throttled set, cancelled in a
-- cancelled one); a set not listed takes pending.
WITH sets AS (
    INSERT INTO queue_sets (id) SELECT unnest(%(ids)s::text[]) ORDER BY 1
    ON CONFLICT (id) DO NOTHING)
SELECT i.id, CASE s.state WHEN 'paused' THEN 'held' WHEN 'cancelled' THEN 'cancelled'
                 ELSE CASE WHEN t.set_id IS NULL THEN 'pending' ELSE 'held' END END AS state
FROM unnest(%(ids)s::text[]) AS i(id) LEFT JOIN queue_sets s ON s.id = i.id
LEFT JOIN queue_throttles t ON t.set_id = i.id;

-- name: copy_new
-- A chunk of keys new to the queue, straight in (renderer/queue/_bulk.py, under a
-- savepoint): a key already queued, or twice in the chunk, is a unique violation, and the
-- chunk goes the staged way instead. {columns}: kind, key and those of payload, fingerprint,
-- set_id, priority, grp, run_after, state that a row of the chunk does not leave at the
-- column's default (run_after's, now(), is the transaction's, as the staged insert gives it).
COPY work_queue ({columns}) FROM STDIN (FORMAT binary)

-- name: insert_new
-- The common case first: keys not in the queue are inserted as the upsert would insert them
-- (of duplicates, the highest priority; held in a paused or throttled set), without its per-item checks; the staged rows of
-- every key inserted are removed. What remains (keys already queued, and keys another
-- transaction inserted meanwhile) goes through enqueue_staged. Returns the rows inserted.
WITH sets AS (
    INSERT INTO queue_sets (id)
    SELECT DISTINCT set_id FROM queue_bulk_staging
    WHERE force = %(force)s AND set_id IS NOT NULL
    ON CONFLICT (id) DO NOTHING),
ins AS (
    INSERT INTO work_queue AS w
        (kind, key, payload, fingerprint, set_id, priority, grp, run_after, state)
    SELECT DISTINCT ON (i.kind, i.key)
           i.kind, i.key, coalesce(i.payload, '{}'), i.fingerprint, i.set_id, i.priority,
           i.grp, coalesce(i.run_after, now()),
           CASE s.state WHEN 'paused' THEN 'held' WHEN 'cancelled' THEN 'cancelled'
                        ELSE CASE WHEN t.set_id IS NULL THEN 'pending' ELSE 'held' END END
    FROM queue_bulk_staging i LEFT JOIN queue_sets s ON s.id = i.set_id
    LEFT JOIN queue_throttles t ON t.set_id = i.set_id
    WHERE i.force = %(force)s
    ORDER BY i.kind, i.key, i.priority DESC
    ON CONFLICT (kind, key) DO NOTHING
    RETURNING w.kind, w.key),
gone AS (
    DELETE FROM queue_bulk_staging b USING ins
    WHERE b.kind = ins.kind AND b.key = ins.key AND b.force = %(force)s)
SELECT count(*) AS n FROM ins;

-- name: enqueue_staged
-- Enqueue the staged items of one force value left by insert_new in one call of the upsert;
-- returns the rows inserted or changed.
SELECT CASE WHEN count(*) = 0 THEN 0 ELSE renderer.queue_enqueue_many_v4(
           array_agg(kind), array_agg(key), array_agg(payload), array_agg(fingerprint),
           array_agg(set_id), array_agg(priority), array_agg(grp), array_agg(run_after),
           %(force)s) END AS n
FROM queue_bulk_staging WHERE force = %(force)s;

-- name: clear_staging
TRUNCATE queue_bulk_staging;

-- name: drop_staging
DROP TABLE queue_bulk_staging;
