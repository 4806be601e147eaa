-- Statements of the HTTP service: API tokens and replay protection.
-- Queue state for the pages comes from renderer.queue; only what it does not expose is here.

-- name: token_create
-- Store a new token by its SHA-256; the plaintext never reaches the database.
INSERT INTO api_tokens (name, token_hash, prefix)
VALUES (%(name)s, %(token_hash)s, %(prefix)s)
RETURNING id, name, prefix, created_at, last_used_at, revoked_at;

-- name: token_use
-- The active token with this hash, marking it used.
UPDATE api_tokens
   SET last_used_at = now()
 WHERE token_hash = %(token_hash)s AND revoked_at IS NULL
RETURNING id, name, prefix, created_at, last_used_at, revoked_at;

-- name: token_list
-- Tokens, newest first; revoked ones only when asked.
SELECT id, name, prefix, created_at, last_used_at, revoked_at
  FROM api_tokens
 WHERE %(all)s OR revoked_at IS NULL
 ORDER BY created_at DESC, id DESC;

-- name: token_revoke
-- Revoke the active token(s) with this name or id.
UPDATE api_tokens
   SET revoked_at = now()
 WHERE revoked_at IS NULL
   AND (name = %(ref)s OR id::text = %(ref)s OR prefix = %(ref)s)
RETURNING id, name, prefix, created_at, last_used_at, revoked_at;

-- name: token_any_active
-- Whether any token can authenticate (write endpoints refuse when none and no secret).
SELECT EXISTS (SELECT 1 FROM api_tokens WHERE revoked_at IS NULL) AS any;

-- name: signature_seen
-- Record a signed request's digest; no row back means it was seen before (a replay).
-- Digests older than the window are dropped first; they could not pass the timestamp check.
WITH expired AS (
    DELETE FROM web_seen_signatures
     WHERE seen_at < now() - make_interval(secs => %(window)s * 2)
)
INSERT INTO web_seen_signatures (digest) VALUES (%(digest)s)
ON CONFLICT (digest) DO NOTHING
RETURNING digest;

-- name: throughput_hours
-- Items done per hour over the last %(hours)s hours, from the queue's per-minute rates and
-- the deltas not yet rolled up (never a scan of work_queue).
SELECT h.hour, coalesce(sum(x.done), 0)::bigint AS done
  FROM generate_series(date_trunc('hour', now()) - make_interval(hours => %(hours)s - 1),
                       date_trunc('hour', now()), interval '1 hour') AS h(hour)
  LEFT JOIN (
        SELECT minute AS at, done FROM queue_rates
         WHERE minute >= date_trunc('hour', now()) - make_interval(hours => %(hours)s - 1)
        UNION ALL
        SELECT at, n FROM queue_count_deltas WHERE state = 'done' AND n > 0
  ) x ON date_trunc('hour', x.at) = h.hour
 GROUP BY h.hour
 ORDER BY h.hour;

-- name: outcome_totals
-- Attempts by kind and outcome since the counters began (queue_outcome_totals), for the
-- Prometheus counters of /metrics.
SELECT kind, outcome, n FROM queue_outcome_totals ORDER BY kind, outcome;
