-- Cron schedules (renderer/schedules.py).

-- name: schedules
-- One row per cron schedule. last_tick is the latest tick fired: advancing it is a
-- compare-and-set in the same transaction as the enqueue, so several schedulers fire each
-- tick once. A NULL priority means the queue's batch priority.
CREATE TABLE schedules (
    name          text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$'),
    cron          text NOT NULL,
    kind          text NOT NULL,
    key           text NOT NULL,
    payload       jsonb NOT NULL DEFAULT '{}'::jsonb
                  CHECK (jsonb_typeof(payload) = 'object'),
    priority      integer,
    enabled       boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_tick     timestamptz,
    last_fired_at timestamptz
);
