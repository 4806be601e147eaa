-- Retired definitions: text a migration or benchmark can still load by name as it was.
-- `-- name: x@R` is x as it was up to revision R (the last revision it was current at).
-- See ../README.md.

-- name: traffic_speeds@0036
-- Speed tiles keep one row per (mode, week, segment) with sparse per-hour arrays (only the
-- hours of week that have observations) rather than one row per segment-hour: a level-0
-- week of 50,000 segments is 50,000 rows, not 8.4 million, and the export expands them to
-- OpenTraffic's dense 168-per-segment arrays. hours: the hours of week (0 = Monday 00:00
-- UTC) that had observations, ascending; the per-hour arrays run parallel to it. next_*: one
-- entry per (hour, next segment) of the hours published (>= min count), ordered by hour then
-- next segment id, NULL id (no next segment) last. tile_id is
-- renderer.segment_tile_id(segment_id), spelled out (a generated column's expression cannot
-- change without a rewrite).
CREATE TABLE traffic_speeds (
    mode            text     NOT NULL,
    first_hour      integer  NOT NULL,
    segment_id      bigint   NOT NULL,
    tile_id         integer  NOT NULL
                    GENERATED ALWAYS AS ((segment_id & 33554431)::integer) STORED,
    length          integer,
    hours           smallint[] NOT NULL,
    observations    bigint[]   NOT NULL,
    speeds          smallint[] NOT NULL,
    mean_speeds     smallint[] NOT NULL,
    speed_variances integer[]  NOT NULL,
    prevalences     smallint[] NOT NULL,
    next_hours      smallint[] NOT NULL,
    next_ids        bigint[]   NOT NULL,
    next_counts     bigint[]   NOT NULL,
    delays          integer[]  NOT NULL,
    delay_variances bigint[]   NOT NULL,
    queue_lengths   integer[]  NOT NULL,
    queue_length_variances bigint[] NOT NULL,
    PRIMARY KEY (segment_id, mode, first_hour)
);

-- name: traffic_speeds_compression@0036
-- A level-0 tile-week writes rows of 13 arrays, several KB each, so nearly every row is
-- compressed and moved out of line (TOAST). With the default pglz that compression was
-- about 1.5 s of a 14 s build of 50,000 segments; lz4 compresses the same arrays in a tenth
-- of the time. Servers built without lz4 keep pglz (a DO block, so the offline DDL of
-- `renderer db migrate --sql` decides on the server too).
DO $$ BEGIN
    IF EXISTS (SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression'
                                           AND 'lz4' = ANY(enumvals)) THEN
        ALTER TABLE traffic_speeds
            ALTER COLUMN hours SET COMPRESSION lz4,
            ALTER COLUMN observations SET COMPRESSION lz4,
            ALTER COLUMN speeds SET COMPRESSION lz4,
            ALTER COLUMN mean_speeds SET COMPRESSION lz4,
            ALTER COLUMN speed_variances SET COMPRESSION lz4,
            ALTER COLUMN prevalences SET COMPRESSION lz4,
            ALTER COLUMN next_hours SET COMPRESSION lz4,
            ALTER COLUMN next_ids SET COMPRESSION lz4,
            ALTER COLUMN next_counts SET COMPRESSION lz4,
            ALTER COLUMN delays SET COMPRESSION lz4,
            ALTER COLUMN delay_variances SET COMPRESSION lz4,
            ALTER COLUMN queue_lengths SET COMPRESSION lz4,
            ALTER COLUMN queue_length_variances SET COMPRESSION lz4;
    END IF;
END $$;
