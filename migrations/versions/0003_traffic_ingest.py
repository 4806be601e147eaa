"""Traffic ingest: consumed-files ledger, rejected rows, weekly histogram partitions.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # One row per (mode, segment, next segment, epoch hour, duration bucket, queue bucket):
    # identical bins are summed. next_segment_id NULL means "no next segment"; NULLS NOT
    # DISTINCT lets the upsert treat two NULLs as the same bin. Partitioned by ISO week on
    # the epoch hour (Monday 00:00 UTC), partitions made on demand by
    # renderer.traffic_histogram_partition(hour).
    op.execute("""
        CREATE TABLE traffic_histograms (
            mode            text     NOT NULL,
            segment_id      bigint   NOT NULL,
            next_segment_id bigint,
            hour            integer  NOT NULL,
            duration_code   smallint NOT NULL CHECK (duration_code BETWEEN 0 AND 255),
            queue_code      smallint NOT NULL CHECK (queue_code BETWEEN 0 AND 255),
            count           bigint   NOT NULL CHECK (count > 0),
            CONSTRAINT traffic_histograms_bin UNIQUE NULLS NOT DISTINCT
                (segment_id, hour, mode, next_segment_id, duration_code, queue_code)
        ) PARTITION BY RANGE (hour)
    """)
    op.execute("""
        CREATE FUNCTION renderer.traffic_histogram_partition(p_hour integer) RETURNS text
        LANGUAGE plpgsql AS $$
        DECLARE
            monday  timestamptz := date_trunc('week', to_timestamp(p_hour::bigint * 3600) AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
            lo      integer := (extract(epoch FROM monday) / 3600)::integer;
            name    text := 'traffic_histograms_' || to_char(monday AT TIME ZONE 'UTC', 'IYYY"w"IW');
        BEGIN
            IF to_regclass(name) IS NULL THEN
                -- concurrent creators: the advisory lock makes the second one wait, then skip
                PERFORM pg_advisory_xact_lock(hashtext(name));
                IF to_regclass(name) IS NULL THEN
                    EXECUTE format('CREATE TABLE %I PARTITION OF traffic_histograms FOR VALUES FROM (%s) TO (%s)',
                                   name, lo, lo + 168);
                END IF;
            END IF;
            RETURN name;
        END $$
    """)
    # Reported segment lengths, for "the most common reported length" of a segment.
    op.execute("""
        CREATE TABLE traffic_segment_lengths (
            segment_id   bigint NOT NULL,
            length       integer NOT NULL,
            observations bigint NOT NULL,
            PRIMARY KEY (segment_id, length)
        )
    """)
    # Optional authoritative lengths (loaded by an operator); they win over reported ones.
    op.execute("""
        CREATE TABLE traffic_segments (
            segment_id bigint PRIMARY KEY,
            length     integer NOT NULL CHECK (length > 0)
        )
    """)
    # The consumed-files ledger: a file is new while its (key, size, checksum) is not here.
    # Written in the same transaction as the histogram rows it produced.
    op.execute("""
        CREATE TABLE traffic_files (
            key           text        NOT NULL,
            size          bigint      NOT NULL,
            checksum      text        NOT NULL,
            tile_level    smallint    NOT NULL,
            tile_index    integer     NOT NULL,
            hour          integer     NOT NULL,
            status        text        NOT NULL CHECK (status IN ('consumed', 'rejected')),
            reason        text,
            rows_read     integer     NOT NULL DEFAULT 0,
            rows_accepted integer     NOT NULL DEFAULT 0,
            rows_rejected integer     NOT NULL DEFAULT 0,
            observations  bigint      NOT NULL DEFAULT 0,
            consumed_at   timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (key, size, checksum),
            CHECK (rows_read = rows_accepted + rows_rejected)
        )
    """)
    op.execute("CREATE INDEX traffic_files_prefix ON traffic_files (tile_level, tile_index, hour)")
    op.execute("""
        CREATE TABLE traffic_rejects (
            id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            file_key text    NOT NULL,
            line     integer NOT NULL,
            raw      text    NOT NULL,
            reason   text    NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now()
        )
    """)
    op.execute("CREATE INDEX traffic_rejects_file ON traffic_rejects (file_key, line)")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS traffic_rejects, traffic_files, traffic_segments,"
               " traffic_segment_lengths")
    op.execute("DROP TABLE IF EXISTS traffic_histograms CASCADE")
    op.execute("DROP FUNCTION IF EXISTS renderer.traffic_histogram_partition(integer)")
