"""Traffic histograms: append-only storage for cheaper writes.

Revision ID: 0007
Revises: 0006

Exactly-once moved from the unique index to the ledger. A histogram row was written at most
once per bin because ``traffic_histograms_bin`` (6 columns, NULLS NOT DISTINCT) made late data
an upsert. But what keeps a file from being counted twice is the consumed-files ledger: its
rows are inserted in the same transaction as the file's bins, before them, and a second
attempt on the same file fails on the ledger's primary key. The unique index added nothing to
that, and it, with the 5-column ``traffic_histograms_tile`` btree, made a bin cost about 7 us
of server time against about 2 us for a heap row (BENCHMARKS.md, "Traffic ingest").

So the histograms are append-only: each item writes its (tile, hour)'s bins, summed within
the item; late data for a (tile, hour) already written adds rows beside the earlier ones, and
every reader sums counts with GROUP BY. The speed-tile stage reads one mode, one level-0 tile
and its children, one week: a BRIN on the tile id serves it for almost nothing per row, since
an item writes its tile's rows as one contiguous run.

Reported segment lengths likewise: items append (segment, length, observations) rows to
``traffic_segment_length_reports``, so concurrent workers never wait on each other's rows
(the upsert of shared rows made them queue behind one another). ``traffic_segment_lengths``
is now a view summing them, with the columns it had; an INSTEAD OF INSERT trigger keeps
inserts (and COPY) into it working.
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TILE_ID = "((segment_id & 33554431)::integer)"  # index << 3 | level


def upgrade() -> None:
    op.execute("ALTER TABLE traffic_histograms DROP CONSTRAINT traffic_histograms_bin")
    op.execute("DROP INDEX traffic_histograms_tile")
    # 16 pages (about 2,000 rows) per range: an item of the sample writes 800 rows at a time.
    op.execute(f"""
        CREATE INDEX traffic_histograms_tile ON traffic_histograms
            USING brin ({TILE_ID}) WITH (pages_per_range = 16)
    """)

    op.execute("ALTER TABLE traffic_segment_lengths RENAME TO traffic_segment_length_reports")
    op.execute("ALTER TABLE traffic_segment_length_reports"
               " DROP CONSTRAINT traffic_segment_lengths_pkey")
    op.execute("DROP INDEX traffic_segment_lengths_tile")
    op.execute(f"""
        CREATE INDEX traffic_segment_length_reports_tile ON traffic_segment_length_reports
            USING brin ({TILE_ID}) WITH (pages_per_range = 16)
    """)
    op.execute("""
        CREATE VIEW traffic_segment_lengths AS
        SELECT segment_id, length, sum(observations)::bigint AS observations
          FROM traffic_segment_length_reports
         GROUP BY segment_id, length
    """)
    op.execute("""
        CREATE FUNCTION renderer.traffic_segment_lengths_insert() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO traffic_segment_length_reports (segment_id, length, observations)
            VALUES (NEW.segment_id, NEW.length, NEW.observations);
            RETURN NEW;
        END $$
    """)
    op.execute("""
        CREATE TRIGGER traffic_segment_lengths_insert
            INSTEAD OF INSERT ON traffic_segment_lengths
            FOR EACH ROW EXECUTE FUNCTION renderer.traffic_segment_lengths_insert()
    """)


def downgrade() -> None:
    op.execute("DROP VIEW traffic_segment_lengths")
    op.execute("DROP FUNCTION renderer.traffic_segment_lengths_insert()")
    op.execute("""
        CREATE TABLE traffic_segment_lengths AS
        SELECT segment_id, length, sum(observations)::bigint AS observations
          FROM traffic_segment_length_reports
         GROUP BY segment_id, length
    """)
    op.execute("ALTER TABLE traffic_segment_lengths ALTER segment_id SET NOT NULL,"
               " ALTER length SET NOT NULL, ALTER observations SET NOT NULL,"
               " ADD PRIMARY KEY (segment_id, length)")
    op.execute(f"CREATE INDEX traffic_segment_lengths_tile ON traffic_segment_lengths ({TILE_ID})")
    op.execute("DROP TABLE traffic_segment_length_reports")

    op.execute("DROP INDEX traffic_histograms_tile")
    # Sum the rows of each bin again before the unique constraint comes back.
    op.execute("""
        CREATE TEMPORARY TABLE traffic_histograms_summed ON COMMIT DROP AS
        SELECT mode, segment_id, next_segment_id, hour, duration_code, queue_code,
               sum(count)::bigint AS count
          FROM traffic_histograms
         GROUP BY mode, segment_id, next_segment_id, hour, duration_code, queue_code
    """)
    op.execute("TRUNCATE traffic_histograms")
    op.execute("INSERT INTO traffic_histograms SELECT * FROM traffic_histograms_summed")
    op.execute("DROP TABLE traffic_histograms_summed")
    op.execute("""
        ALTER TABLE traffic_histograms ADD CONSTRAINT traffic_histograms_bin UNIQUE NULLS NOT
            DISTINCT (segment_id, hour, mode, next_segment_id, duration_code, queue_code)
    """)
    op.execute(f"""
        CREATE INDEX traffic_histograms_tile
            ON traffic_histograms ({TILE_ID}, mode, segment_id, hour, next_segment_id)
    """)
