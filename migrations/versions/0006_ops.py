"""Operations: API tokens, schedules, seen webhook signatures.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Tokens are 256-bit random strings, so a plain SHA-256 is enough to store them: a slow
    # password hash only helps against guessable secrets. The prefix lets `tokens list`
    # show which token is which without keeping anything that authenticates.
    op.execute("""
        CREATE TABLE api_tokens (
            id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            name         text NOT NULL CHECK (name <> ''),
            token_hash   bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
            prefix       text NOT NULL,
            created_at   timestamptz NOT NULL DEFAULT now(),
            last_used_at timestamptz,
            revoked_at   timestamptz
        )
    """)
    op.execute("""
        CREATE UNIQUE INDEX api_tokens_active_name ON api_tokens (name)
            WHERE revoked_at IS NULL
    """)

    # One row per cron schedule. last_tick is the latest tick fired: advancing it is a
    # compare-and-set in the same transaction as the enqueue, so several schedulers fire each
    # tick once. A NULL priority means the queue's batch priority.
    op.execute(r"""
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
        )
    """)
    # The defaults (kept equal to renderer.schedules.DEFAULTS by a test); the migration
    # writes them literally so that later code changes never alter what this revision did.
    op.execute("""
        INSERT INTO schedules (name, cron, kind, key) VALUES
            ('traffic-submit', '*/5 * * * *', 'traffic-submit', 'traffic-submit'),
            ('traffic-speedtiles', '0 2 * * 1', 'traffic-schedule', 'traffic-schedule'),
            ('queue-prune', '30 3 * * *', 'queue-prune', 'queue-prune')
    """)

    # Signatures of accepted signed webhook calls, so a captured request replayed inside
    # the timestamp window is refused too; rows older than the window are deleted as new
    # ones arrive.
    op.execute("""
        CREATE TABLE web_seen_signatures (
            digest  bytea PRIMARY KEY,
            seen_at timestamptz NOT NULL DEFAULT now()
        )
    """)
    op.execute("CREATE INDEX web_seen_signatures_seen_at ON web_seen_signatures (seen_at)")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS web_seen_signatures")
    op.execute("DROP TABLE IF EXISTS schedules")
    op.execute("DROP TABLE IF EXISTS api_tokens")
