-- Operations at run time: callbacks of runs.

-- name: register_callback
-- Remember the callback of a set (a set asked again keeps its first callback's record but
-- takes the newest URL and waits again).
INSERT INTO run_callbacks (set_id, url, requested_by)
VALUES (%(set_id)s, %(url)s, %(requested_by)s)
ON CONFLICT (set_id) DO UPDATE
SET url = excluded.url, requested_by = excluded.requested_by, state = 'waiting',
    outcome = NULL, queued_at = NULL, sent_at = NULL, response = NULL
RETURNING set_id, url, state;

-- name: waiting_callbacks
-- The callbacks whose sets have not ended yet, locked so that two sweeps queue each once.
SELECT set_id, url FROM run_callbacks WHERE state = 'waiting'
ORDER BY created_at FOR UPDATE SKIP LOCKED;

-- name: any_waiting_callback
-- Whether a callback waits for its set to end (the partial index run_callbacks_waiting: one
-- probe, nothing locked): while none does, the sweep's schedule skips its ticks.
SELECT EXISTS (SELECT 1 FROM run_callbacks WHERE state = 'waiting');

-- name: mark_queued
-- A set ended: its notice is queued with the outcome it will report.
UPDATE run_callbacks SET state = 'queued', outcome = %(outcome)s, queued_at = now()
WHERE set_id = %(set_id)s AND state = 'waiting';

-- name: get_callback
-- One set's callback (NULL row: none).
SELECT set_id, url, requested_by, state, outcome, created_at, queued_at, sent_at, response
FROM run_callbacks WHERE set_id = %(set_id)s;

-- name: mark_sent
-- The receiver accepted the notice.
UPDATE run_callbacks SET state = 'sent', sent_at = now(), response = %(response)s
WHERE set_id = %(set_id)s;
