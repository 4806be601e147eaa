-- Operations: the callbacks runs asked for (their status is posted back when their set ends).

-- name: run_callbacks
-- One callback per set: the URL the requester named (checked against the allowed hosts when
-- the run was submitted), and where its notice stands: waiting for the set to end, queued
-- (a `notify` item posts it, retried with the queue's backoff), sent (the receiver answered
-- 2xx). No foreign key to queue_sets: a pruned set keeps its callback's record.
CREATE TABLE run_callbacks (
    set_id       text PRIMARY KEY,
    url          text NOT NULL CHECK (url ~ '^https?://'),
    requested_by text NOT NULL DEFAULT '',
    state        text NOT NULL DEFAULT 'waiting'
                 CHECK (state IN ('waiting', 'queued', 'sent')),
    outcome      text CHECK (outcome IN ('done', 'failed', 'cancelled')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    queued_at    timestamptz,
    sent_at      timestamptz,
    response     integer
);

-- name: run_callbacks_waiting
CREATE INDEX run_callbacks_waiting ON run_callbacks (created_at) WHERE state = 'waiting';
