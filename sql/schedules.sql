-- Cron schedules stored in the database, fired by `renderer scheduler` (or `renderer serve`).

-- name: upsert
-- Add a schedule, or replace it when %(replace)s; a replaced schedule keeps its last tick.
INSERT INTO schedules AS s (name, cron, kind, key, payload, priority, enabled)
VALUES (%(name)s, %(cron)s, %(kind)s, %(key)s, %(payload)s, %(priority)s, %(enabled)s)
ON CONFLICT (name) DO UPDATE
   SET cron = excluded.cron, kind = excluded.kind, key = excluded.key,
       payload = excluded.payload, priority = excluded.priority, enabled = excluded.enabled
 WHERE %(replace)s
RETURNING s.*;

-- name: add_missing
-- Add the schedules of a set (the defaults) that do not exist; return those added.
INSERT INTO schedules (name, cron, kind, key)
SELECT * FROM unnest(%(names)s::text[], %(crons)s::text[], %(kinds)s::text[], %(keys)s::text[])
ON CONFLICT (name) DO NOTHING
RETURNING *;

-- name: list
-- Every schedule, by name.
SELECT * FROM schedules ORDER BY name;

-- name: remove
-- Delete a schedule by name.
DELETE FROM schedules WHERE name = %(name)s RETURNING *;

-- name: lock_enabled
-- The enabled schedules this scheduler may fire now; rows another scheduler holds are
-- skipped (it is firing them).
SELECT * FROM schedules WHERE enabled ORDER BY name FOR UPDATE SKIP LOCKED;

-- name: advance
-- Compare-and-set each schedule's last tick to its due tick; only rows that moved come
-- back, so a tick another scheduler already fired is never fired twice.
UPDATE schedules AS s
   SET last_tick = v.tick, last_fired_at = now()
  FROM unnest(%(names)s::text[], %(ticks)s::timestamptz[]) AS v(name, tick)
 WHERE s.name = v.name
   AND (s.last_tick IS NULL OR s.last_tick < v.tick)
RETURNING s.*;
