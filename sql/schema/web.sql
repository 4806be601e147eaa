-- The HTTP service: API tokens and the signatures of accepted webhook calls.

-- name: api_tokens
-- Tokens are 256-bit random strings, so a plain SHA-256 is enough to store them: a slow
-- password hash only helps against guessable secrets. The prefix lets `tokens list` show
-- which token is which without keeping anything that authenticates.
CREATE TABLE api_tokens (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         text NOT NULL CHECK (name <> ''),
    token_hash   bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    prefix       text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);

-- name: api_tokens_active_name
CREATE UNIQUE INDEX api_tokens_active_name ON api_tokens (name) WHERE revoked_at IS NULL;

-- name: web_seen_signatures
-- Signatures of accepted signed webhook calls, so a captured request replayed inside the
-- timestamp window is refused too; rows older than the window are deleted as new ones
-- arrive.
CREATE TABLE web_seen_signatures (
    digest  bytea PRIMARY KEY,
    seen_at timestamptz NOT NULL DEFAULT now()
);

-- name: web_seen_signatures_seen_at
CREATE INDEX web_seen_signatures_seen_at ON web_seen_signatures (seen_at);
