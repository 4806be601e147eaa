-- The work queue's statements. Each verb is one call of a renderer.queue_* function
-- (defined in sql/schema/queue_*.sql), the same an operator runs from psql.

-- name: enqueue
-- Enqueue one item (upsert, never waiting on a worker); returns what happened to it.
SELECT renderer.queue_enqueue_v4(%(kind)s, %(key)s, %(payload)s, %(fingerprint)s, %(set_id)s,
                              %(priority)s, %(group)s, %(run_after)s, %(force)s) AS action;

-- name: enqueue_many
-- Enqueue a chunk of items given as parallel arrays; returns the rows inserted or changed.
SELECT renderer.queue_enqueue_many_v4(%(kinds)s, %(keys)s, %(payloads)s::jsonb[],
                                   %(fingerprints)s, %(set_ids)s, %(priorities)s, %(groups)s,
                                   %(run_afters)s, %(force)s) AS n;

-- name: claim
-- Claim up to %(limit)s pending items of one kind with a lease of %(lease_seconds)s.
-- The columns in the order of renderer.queue.Item's fields (the verbs build items from
-- tuples); the token as text, not a UUID object a row.
SELECT id, kind, key, payload, attempt, set_id, grp, lease_token::text, priority, fingerprint
FROM renderer.queue_claim_v2(%(kind)s, %(limit)s, %(owner)s, %(lease_seconds)s, %(reserve)s);

-- name: claim_batch
-- The worker's claim: a batch of the kind at the head of the queue among %(kinds)s.
SELECT id, kind, key, payload, attempt, set_id, grp, lease_token::text, priority, fingerprint
FROM renderer.queue_claim_next_v2(%(kinds)s, %(limits)s, %(leases)s, %(owner)s, %(batch_turn)s);

-- name: lock
-- Lock the claimed items still leased with %(token)s for the processing transaction.
SELECT renderer.queue_lock_v3(%(ids)s, %(token)s, %(idle_seconds)s) AS id;

-- name: complete
-- Complete items leased with %(token)s; returns the ids refused (stale lease).
SELECT renderer.queue_complete_v2(%(ids)s::bigint[], %(token)s) AS rejected;

-- name: fail
-- Record failed attempts of items leased with %(token)s; returns (item_id, new_state).
SELECT item_id, new_state FROM renderer.queue_fail(%(ids)s::bigint[], %(token)s, %(types)s,
                                                   %(messages)s, %(tracebacks)s, %(final)s,
                                                   %(outcome)s);

-- name: finish
-- Complete %(ok)s and fail %(failed)s of one claim in one call; returns the refused ids.
SELECT renderer.queue_finish_v2(%(token)s, %(ok)s::bigint[], %(failed)s::bigint[], %(types)s,
                             %(messages)s, %(tracebacks)s, %(outcomes)s) AS rejected;

-- name: release
-- Put an owner's running items back (the attempt counts when %(count)s).
SELECT renderer.queue_release_v2(%(owner)s, %(ids)s, %(count)s, %(type)s, %(message)s,
                              %(outcome)s) AS n;

-- name: heartbeat
-- Record a worker as alive and extend the leases of its unlocked items.
SELECT renderer.queue_heartbeat_v2(%(owner)s, %(lease_seconds)s, %(info)s) AS n;

-- name: maintain
-- Reap expired leases; roll up counters (one caller at a time).
SELECT renderer.queue_maintain_v3() AS reaped;

-- name: reap
-- Make items whose lease expired claimable again (a failed attempt each).
SELECT renderer.queue_reap_v3() AS n;

-- name: rollup
-- Fold counter deltas into the counters, unless maintenance or a prune holds the maintenance
-- lock (then 0: the deltas wait for the next fold). A fold beside a prune would wait on the
-- rows the prune rolled up, holding counter rows it may delete next: a deadlock.
SELECT CASE WHEN pg_try_advisory_xact_lock(7301734222) THEN renderer.queue_rollup() ELSE 0 END
       AS n;

-- name: add_rules
-- Declare fan-in rules given as parallel arrays; returns how many fired at once.
SELECT renderer.queue_add_rules(%(when_kinds)s, %(groups)s, %(then_kinds)s, %(then_keys)s,
                                %(payloads)s::jsonb[], %(set_ids)s) AS fired;

-- name: sync_kinds
-- Record the registry's settings of each kind, which the SQL verbs read.
INSERT INTO queue_kinds AS k (kind, max_attempts, backoff_seconds, time_limit, lease_seconds,
                              batch_size)
SELECT * FROM unnest(%(kinds)s::text[], %(max_attempts)s::integer[],
                     %(backoff)s::double precision[], %(time_limits)s::double precision[],
                     %(leases)s::double precision[], %(batch_sizes)s::integer[])
ON CONFLICT (kind) DO UPDATE SET
    max_attempts = excluded.max_attempts, backoff_seconds = excluded.backoff_seconds,
    time_limit = excluded.time_limit, lease_seconds = excluded.lease_seconds,
    batch_size = excluded.batch_size, updated_at = now()
WHERE (k.max_attempts, k.backoff_seconds, k.time_limit, k.lease_seconds, k.batch_size)
      IS DISTINCT FROM (excluded.max_attempts, excluded.backoff_seconds, excluded.time_limit,
                        excluded.lease_seconds, excluded.batch_size);

-- name: idle
-- Whether anything of %(kinds)s is pending (claimable now or later) or running (leased),
-- counting the held items of throttled sets (claimable when their limits let some through
-- now) and the rerun requests no completion consumed yet (maintenance queues those items
-- again).
SELECT EXISTS (SELECT 1 FROM queue_pending
               WHERE kind = ANY (%(kinds)s) AND run_after <= now())
       OR (EXISTS (SELECT 1 FROM queue_throttles)
           AND renderer.queue_throttle_waiting(%(kinds)s, true))
           AS claimable,
       EXISTS (SELECT 1 FROM queue_pending WHERE kind = ANY (%(kinds)s))
       OR EXISTS (SELECT 1 FROM queue_leases WHERE kind = ANY (%(kinds)s))
       OR (EXISTS (SELECT 1 FROM queue_throttles)
           AND renderer.queue_throttle_waiting(%(kinds)s, false))
       OR EXISTS (SELECT 1 FROM queue_reruns WHERE kind = ANY (%(kinds)s))
           AS busy;

-- name: remaining
-- Pending and running items of %(kinds)s, from the counters (no scan).
SELECT coalesce(sum(n), 0)::bigint AS n FROM (
    SELECT n FROM queue_counts WHERE kind = ANY (%(kinds)s) AND state IN ('pending', 'running')
    UNION ALL
    SELECT n FROM queue_count_deltas
    WHERE kind = ANY (%(kinds)s) AND state IN ('pending', 'running')) x;

-- name: status
-- Counts, rates, ETA and oldest pending age per kind, per set (those of %(set_ids)s; NULL:
-- all) and in total: the kinds and the total from the per-kind rows.
SELECT * FROM renderer.queue_status_v3(%(window)s, %(set_ids)s::text[]);

-- name: open_sets
-- The sets with pending, held or running items (those not yet folded in included), newest
-- first, at most %(limit)s: an index of the few open sets, not a pass over every set.
SELECT s.id FROM queue_sets s
WHERE s.id IN (SELECT c.set_id FROM queue_counts c
               WHERE c.state IN ('pending', 'held', 'running') AND c.n <> 0
               UNION
               SELECT d.set_id FROM queue_count_deltas d
               WHERE d.state IN ('pending', 'held', 'running') AND d.n > 0)
ORDER BY s.created_at DESC, s.id DESC
LIMIT %(limit)s;

-- name: workers
-- Workers that heartbeated within %(alive_seconds)s seconds.
SELECT owner, info, started_at, seen_at,
       extract(epoch FROM now() - seen_at)::double precision AS silent_s
FROM queue_workers
WHERE seen_at > now() - make_interval(secs => %(alive_seconds)s)
ORDER BY owner;

-- name: forget_worker
-- Remove a worker's row at its clean exit.
DELETE FROM queue_workers WHERE owner = %(owner)s;

-- name: owner_running
-- How many items an owner still holds as running (its leases).
SELECT coalesce(sum(cardinality(ids)), 0)::bigint AS n FROM queue_leases
WHERE owner = %(owner)s;

-- name: item
-- One item by (kind, key), as its readers mean it (a leased item is running).
SELECT id, kind, key, state, payload, priority, run_after, fingerprint, set_id, grp AS group,
       attempt, rerun, lease_owner, lease_expires, last_error, enqueued_at, started_at,
       finished_at
FROM queue_items WHERE kind = %(kind)s AND key = %(key)s;

-- name: item_attempts
-- The recorded attempts (failures, expiries, refusals) of one item, oldest first.
SELECT attempt, outcome, owner, error_type, message, traceback, at
FROM queue_attempts WHERE kind = %(kind)s AND key = %(key)s ORDER BY id;

-- name: list_failed
-- Failed items, optionally of one kind and/or one set, newest first.
SELECT id, kind, key, set_id, grp AS group, attempt, last_error, finished_at
FROM work_queue
WHERE id IN (SELECT p.id FROM queue_parked p
             WHERE p.state = 'failed' AND (%(kind)s::text IS NULL OR p.kind = %(kind)s)
               AND (%(set_id)s::text IS NULL OR p.set_id = %(set_id)s))
  AND state = 'failed'
ORDER BY finished_at DESC NULLS LAST, id
LIMIT %(limit)s;

-- name: retry_failed
-- Make failed items pending again with fresh attempts.
SELECT renderer.queue_retry(%(kind)s, %(set_id)s) AS n;

-- name: prune
-- Delete done items older than %(older_than)s and old attempts; forget the sets emptied.
SELECT renderer.queue_prune_v3(%(older_than)s) AS n;

-- name: create_set
-- Create a set (idempotent); returns its id.
SELECT renderer.queue_create_set(%(id)s, %(info)s) AS id;

-- name: pause_set
-- Hold the set's pending items; NULL when there is no such set.
SELECT renderer.queue_pause_set(%(id)s) AS n;

-- name: resume_set
-- Release the set's held items; NULL when the set is not paused or active.
SELECT renderer.queue_resume_set(%(id)s) AS n;

-- name: cancel_set
-- Cancel the set's items that are not running or done; NULL when there is no such set.
SELECT renderer.queue_cancel_set(%(id)s) AS n;

-- name: get_set
-- One set, with its limits (NULL: not throttled).
SELECT s.id, s.state, s.info, s.created_at, s.changed_at, t.in_flight, t.per_hour
FROM queue_sets s LEFT JOIN queue_throttles t ON t.set_id = s.id WHERE s.id = %(id)s;

-- name: throttle
-- Set (or with both NULL clear) a set's limits; returns the number of items moved.
SELECT renderer.queue_throttle(%(id)s, %(in_flight)s, %(per_hour)s) AS n;

-- name: list_sets
-- Sets, newest first, a page of %(limit)s (NULL: all) after the set (%(before_at)s,
-- %(before_id)s) (NULL: from the newest): a keyset page, one index range whatever the depth;
-- with each set's limits (NULL: not throttled).
SELECT s.id, s.state, s.info, s.created_at, s.changed_at, t.in_flight, t.per_hour
FROM queue_sets s LEFT JOIN queue_throttles t ON t.set_id = s.id
WHERE (s.created_at, s.id) < (coalesce(%(before_at)s::timestamptz, 'infinity'),
                              coalesce(%(before_id)s::text, ''))
ORDER BY s.created_at DESC, s.id DESC
LIMIT %(limit)s;

-- name: timings
-- Claim waits and run times as log-2 buckets per (kind, what), of one set or (NULL) of all:
-- the folded histograms (all: the per-kind rows; a set: its own rows) plus the deltas not
-- yet folded. A few rows whatever the number of sets or of a set's items.
SELECT x.kind, x.what, x.bucket, sum(x.n)::bigint AS n, sum(x.sum)::float8 AS sum,
       max(x.max)::float8 AS max, min(x.first_at) AS first_at, max(x.last_at) AS last_at
FROM (
    SELECT kind, what, bucket, n, sum, max, first_at, last_at FROM queue_kind_timings
    WHERE %(set_id)s::text IS NULL
    UNION ALL
    SELECT kind, what, bucket, n, sum, max, first_at, last_at FROM queue_timings
    WHERE set_id = %(set_id)s::text
    UNION ALL
    SELECT kind, what, bucket, n, sum, max, first_at, last_at FROM queue_timing_deltas
    WHERE %(set_id)s::text IS NULL OR set_id = %(set_id)s::text
) x
GROUP BY 1, 2, 3
HAVING sum(x.n) > 0
ORDER BY 1, 2, 3;
