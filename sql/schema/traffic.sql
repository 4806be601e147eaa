-- Traffic: identifiers, histograms, segment lengths, the ingest ledger, speed tiles,
-- reference tiles and the coverage GeoJSON.
--
-- Segment id (64-bit, OpenTraffic/Valhalla): bits 0-2 level, bits 3-24 tile index, bits
-- 25-45 segment index within the tile; tile id = index << 3 | level = segment_id & 0x1FFFFFF
-- (33554431). The functions below name those fields once; statements call them by name.
-- LANGUAGE sql, IMMUTABLE, no FROM and not STRICT: the planner inlines them, so a statement
-- using them plans exactly as with the bare arithmetic (and matches the expression indexes
-- below, which spell the mask out: changing an index or generated-column expression means
-- rebuilding it).

-- name: segment_tile_id
-- The tile id (index << 3 | level) of a segment id.
CREATE FUNCTION renderer.segment_tile_id(segment_id bigint) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (segment_id & 33554431)::integer  -- 0x1FFFFFF: bits 0-24
$$;

-- name: segment_index
-- The index of a segment within its tile.
CREATE FUNCTION renderer.segment_index(segment_id bigint) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (segment_id >> 25)::integer
$$;

-- name: tile_level
-- The level (0, 1, 2) of a tile id.
CREATE FUNCTION renderer.tile_level(tile_id integer) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT tile_id & 7
$$;

-- name: tile_index
-- The index of a tile id within its level.
CREATE FUNCTION renderer.tile_index(tile_id integer) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT tile_id >> 3
$$;

-- name: tile_id
-- The tile id of a tile given by level and index.
CREATE FUNCTION renderer.tile_id(level integer, tile_index integer) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (tile_index << 3) | level
$$;

-- name: traffic_duration_seconds
-- The lower bound (s) of a duration bucket, as renderer.binning.duration_seconds: codes
-- 0-63 by 1 s from 0, 64-127 by 2 s from 64, 128-191 by 5 s from 192, 192-255 by 10 s from
-- 512. Runs once per histogram row of a speed-tile build (millions): a subscript of a
-- constant array, cheaper than a CASE of three comparisons. Pure functions used by the bulk
-- statements have a Python twin in renderer/traffic/speedtile.py, tested equal; they are
-- LANGUAGE sql without FROM and not STRICT, so the planner inlines them (a STRICT CASE is
-- not inlined: 40 us per call instead of 0).
CREATE FUNCTION renderer.traffic_duration_seconds(code integer) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ('{0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,
              16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,
              32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,
              48,49,50,51,52,53,54,55,56,57,58,59,60,61,62,63,
              64,66,68,70,72,74,76,78,80,82,84,86,88,90,92,94,
              96,98,100,102,104,106,108,110,112,114,116,118,120,122,124,126,
              128,130,132,134,136,138,140,142,144,146,148,150,152,154,156,158,
              160,162,164,166,168,170,172,174,176,178,180,182,184,186,188,190,
              192,197,202,207,212,217,222,227,232,237,242,247,252,257,262,267,
              272,277,282,287,292,297,302,307,312,317,322,327,332,337,342,347,
              352,357,362,367,372,377,382,387,392,397,402,407,412,417,422,427,
              432,437,442,447,452,457,462,467,472,477,482,487,492,497,502,507,
              512,522,532,542,552,562,572,582,592,602,612,622,632,642,652,662,
              672,682,692,702,712,722,732,742,752,762,772,782,792,802,812,822,
              832,842,852,862,872,882,892,902,912,922,932,942,952,962,972,982,
              992,1002,1012,1022,1032,1042,1052,1062,1072,1082,1092,1102,1112,1122,1132,1142}'
            ::integer[])[code + 1]
$$;

-- name: traffic_level0_index
-- The level-0 tile (index) holding a tile id of any level.
CREATE FUNCTION renderer.traffic_level0_index(tile_id integer) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE tile_id & 7
             WHEN 0 THEN tile_id >> 3
             WHEN 1 THEN ((tile_id >> 3) / 360 / 4) * 90 + ((tile_id >> 3) % 360) / 4
             ELSE ((tile_id >> 3) / 1440 / 16) * 90 + ((tile_id >> 3) % 1440) / 16
           END
$$;

-- name: traffic_prevalence
-- OpenTraffic's prevalence: the hour's observation count in 11 bins, bins 1-9 moved by
-- -1/0/+1 with probability 15/70/15 % to obscure true counts (never down to 0, which means
-- no data). Deterministic here: the draw is a Lehmer (MINSTD) hash of segment, hour of week
-- and week, so a rerun gives the same bytes. Every product stays below 2^62, so bigint
-- never overflows.
CREATE FUNCTION renderer.traffic_prevalence(
    total bigint, segment_id bigint, hour_of_week integer, first_hour integer)
RETURNS smallint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (CASE
              WHEN total <= 0 THEN 0
              WHEN total > 90 THEN 10
              ELSE greatest(1,
                   width_bucket(total, ARRAY[1, 3, 7, 13, 21, 31, 43, 57, 73]::bigint[])
                   + width_bucket(
                       (((((segment_id % 2147483647) * 48271 + hour_of_week)
                          % 2147483647 * 48271 + first_hour)
                         % 2147483647) * 48271 % 2147483647) % 100,
                       ARRAY[15, 85]::bigint[]) - 1)
            END)::smallint
$$;

-- name: traffic_histograms
-- Counts per (mode, segment, next segment, epoch hour, duration bucket, queue bucket).
-- next_segment_id NULL means "no next segment". Append-only: each item writes its (tile,
-- hour)'s bins, summed within the item; late data for a (tile, hour) already written adds
-- rows beside the earlier ones, and every reader sums counts with GROUP BY. Exactly once
-- comes from the consumed-files ledger (traffic_files), written in the same transaction
-- before the bins: a second attempt on the same file fails on the ledger's key. (A unique
-- bin index made a bin cost about 7 us of server time against about 2 us for a heap row.)
-- Partitioned by ISO week on the epoch hour (Monday 00:00 UTC), partitions made on demand
-- by renderer.traffic_histogram_partition(hour).
CREATE TABLE traffic_histograms (
    mode            text     NOT NULL,
    segment_id      bigint   NOT NULL,
    next_segment_id bigint,
    hour            integer  NOT NULL,
    duration_code   smallint NOT NULL CHECK (duration_code BETWEEN 0 AND 255),
    queue_code      smallint NOT NULL CHECK (queue_code BETWEEN 0 AND 255),
    count           bigint   NOT NULL CHECK (count > 0)
) PARTITION BY RANGE (hour);

-- name: traffic_histograms_tile
-- The speed-tile stage reads one mode, one level-0 tile and its children, one week: a BRIN
-- on the tile id (renderer.segment_tile_id) serves it for almost nothing per row, since an
-- item writes its tile's rows as one contiguous run. 16 pages (about 2,000 rows) per range:
-- an item of the sample writes 800 rows at a time.
CREATE INDEX traffic_histograms_tile ON traffic_histograms
    USING brin (((segment_id & 33554431)::integer)) WITH (pages_per_range = 16);

-- name: traffic_histogram_partition
-- The week partition of traffic_histograms holding an epoch hour, made if missing.
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
END $$;

-- name: traffic_histogram_weeks
-- The weeks (first epoch hour) whose histogram partition holds any row, ascending: what the
-- weekly schedule picks from, without scanning the histograms.
CREATE FUNCTION renderer.traffic_histogram_weeks() RETURNS SETOF integer
LANGUAGE plpgsql STABLE AS $$
DECLARE
    part  regclass;
    lo    integer;
    found boolean;
BEGIN
    FOR part, lo IN
        SELECT c.oid::regclass,
               (regexp_match(pg_get_expr(c.relpartbound, c.oid),
                             'FROM \(([-0-9]+)\)'))[1]::integer
          FROM pg_inherits i
          JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'traffic_histograms'::regclass
         ORDER BY 2
    LOOP
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s)', part) INTO found;
        IF found THEN
            RETURN NEXT lo;
        END IF;
    END LOOP;
END $$;

-- name: traffic_segment_length_reports
-- Reported segment lengths, for "the most common reported length" of a segment: items
-- append (segment, length, observations) rows, so concurrent workers never wait on each
-- other's rows (an upsert of shared rows made them queue behind one another).
CREATE TABLE traffic_segment_length_reports (
    segment_id   bigint NOT NULL,
    length       integer NOT NULL,
    observations bigint NOT NULL
);

-- name: traffic_segment_length_reports_tile
CREATE INDEX traffic_segment_length_reports_tile ON traffic_segment_length_reports
    USING brin (((segment_id & 33554431)::integer)) WITH (pages_per_range = 16);

-- name: traffic_segment_lengths
-- The reports summed per (segment, length); an INSTEAD OF INSERT trigger keeps inserts (and
-- COPY) into it working.
CREATE VIEW traffic_segment_lengths AS
SELECT segment_id, length, sum(observations)::bigint AS observations
  FROM traffic_segment_length_reports
 GROUP BY segment_id, length;

-- name: traffic_segment_lengths_insert
CREATE FUNCTION renderer.traffic_segment_lengths_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO traffic_segment_length_reports (segment_id, length, observations)
    VALUES (NEW.segment_id, NEW.length, NEW.observations);
    RETURN NEW;
END $$;

-- name: traffic_segment_lengths_insert_trigger
CREATE TRIGGER traffic_segment_lengths_insert
    INSTEAD OF INSERT ON traffic_segment_lengths
    FOR EACH ROW EXECUTE FUNCTION renderer.traffic_segment_lengths_insert();

-- name: traffic_segments
-- Optional authoritative lengths (loaded by an operator); they win over reported ones.
CREATE TABLE traffic_segments (
    segment_id bigint PRIMARY KEY,
    length     integer NOT NULL CHECK (length > 0)
);

-- name: traffic_segments_tile
CREATE INDEX traffic_segments_tile ON traffic_segments (((segment_id & 33554431)::integer));

-- name: traffic_known_segments
-- Per tile id, the highest segment index of the segments table: a tile's total segment
-- count is one more than the highest index seen in it or here.
CREATE VIEW traffic_known_segments AS
SELECT renderer.segment_tile_id(segment_id) AS tile_id,
       max(renderer.segment_index(segment_id)) AS max_index
  FROM traffic_segments
 GROUP BY 1;

-- name: traffic_files
-- The consumed-files ledger: a file is new while its (key, size, checksum) is not here.
-- Written in the same transaction as the histogram rows it produced.
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
);

-- name: traffic_files_prefix
CREATE INDEX traffic_files_prefix ON traffic_files (tile_level, tile_index, hour);

-- name: traffic_rejects
-- Rows refused by the ingest, with file, line and reason.
CREATE TABLE traffic_rejects (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    file_key   text    NOT NULL,
    line       integer NOT NULL,
    raw        text    NOT NULL,
    reason     text    NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- name: traffic_rejects_file
CREATE INDEX traffic_rejects_file ON traffic_rejects (file_key, line);

-- name: traffic_speeds
-- Speed tiles keep one row per (mode, week, segment) with sparse per-hour values (only the
-- hours of week that have observations) rather than one row per segment-hour: a level-0
-- week of 50,000 segments is 50,000 rows, not 8.4 million, and the export expands them to
-- OpenTraffic's dense 168-per-segment arrays. hours: the hours of week (0 = Monday 00:00
-- UTC) that had observations, ascending; observations, speeds and the records of
-- hour_values run parallel to it. nexts: one record per (hour, next segment) of the hours
-- published (>= min count), ordered by hour then next segment id, "no next segment" last.
-- hour_values and nexts are fixed-width big-endian records (renderer/traffic/
-- speedtile_pack.py: hour_values mean speed int2, speed variance int4, prevalence int2,
-- the hour's number of nexts records int2 (OpenTraffic's nextSegmentCounts); nexts hour int2, next segment id int8 (-2^63: none), count int8, delay int4, delay
-- variance int8, queue length int4, queue length variance int8): a tile-week's write
-- then parses no array elements, which cost about 0.9 of its 2.1 server CPU s as 13 arrays
-- (BENCHMARKS.md, wave 8). What SQL reads (hours, observations, speeds) stays arrays.
-- total_observations is the sum of observations (the tile summary's). tile_id is
-- renderer.segment_tile_id(segment_id), spelled out (a generated column's expression
-- cannot change without a rewrite).
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
    hour_values     bytea      NOT NULL,
    nexts           bytea      NOT NULL,
    total_observations bigint  NOT NULL,
    PRIMARY KEY (segment_id, mode, first_hour)
);

-- name: traffic_speeds_compression
-- A level-0 tile-week writes rows of several KB each, so nearly every row is compressed
-- and moved out of line (TOAST). With the default pglz that compression was about 1.5 s of
-- a 14 s build of 50,000 segments; lz4 compresses the same values in a tenth of the time.
-- Servers built without lz4 keep pglz (a DO block, so the offline DDL of
-- `renderer db migrate --sql` decides on the server too).
DO $$ BEGIN
    IF EXISTS (SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression'
                                           AND 'lz4' = ANY(enumvals)) THEN
        ALTER TABLE traffic_speeds
            ALTER COLUMN hours SET COMPRESSION lz4,
            ALTER COLUMN observations SET COMPRESSION lz4,
            ALTER COLUMN speeds SET COMPRESSION lz4,
            ALTER COLUMN hour_values SET COMPRESSION lz4,
            ALTER COLUMN nexts SET COMPRESSION lz4;
    END IF;
END $$;

-- name: traffic_speeds_tile
CREATE INDEX traffic_speeds_tile ON traffic_speeds (mode, tile_id, first_hour);

-- name: traffic_packed_int
-- The signed big-endian integer of `width` bytes (2, 4 or 8) at byte offset `at` of a
-- packed traffic_speeds column (hour_values, nexts): how SQL reads them
-- (sql/traffic_tables.sql). A bit string of the bytes, widened to 64 bits on the right,
-- cast to bigint and shifted back (an arithmetic shift keeps the sign). Inlined.
CREATE FUNCTION renderer.traffic_packed_int(b bytea, at integer, width integer)
RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ('x' || encode(substring(b FROM at + 1 FOR width), 'hex'))::bit(64)::bigint
           >> (64 - 8 * width)
$$;

-- name: traffic_speed_tiles
-- One row per built speed tile (a tile of any level, for one mode and week).
CREATE TABLE traffic_speed_tiles (
    mode           text     NOT NULL,
    level          smallint NOT NULL,
    tile_index     integer  NOT NULL,
    first_hour     integer  NOT NULL,
    week           text     NOT NULL,
    total_segments integer  NOT NULL,
    segments       integer  NOT NULL,
    observations   bigint   NOT NULL,
    min_count      integer  NOT NULL,
    built_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (mode, level, tile_index, first_hour)
);

-- name: traffic_speed_tiles_week
CREATE INDEX traffic_speed_tiles_week ON traffic_speed_tiles (first_hour);

-- name: traffic_reference
-- Reference speeds: one row per (mode, segment) with non-zero speeds in the reference
-- window: the 20/40/60/80th percentiles of its hourly speeds, and per hour of week with
-- data (hours) the mean speed (hourly); first_hour/last_hour: the first hours of the
-- earliest and latest weeks that contributed. tile_id as in traffic_speeds.
CREATE TABLE traffic_reference (
    mode         text     NOT NULL,
    segment_id   bigint   NOT NULL,
    tile_id      integer  NOT NULL
                 GENERATED ALWAYS AS ((segment_id & 33554431)::integer) STORED,
    ref20        smallint NOT NULL,
    ref40        smallint NOT NULL,
    ref60        smallint NOT NULL,
    ref80        smallint NOT NULL,
    hours        smallint[] NOT NULL,
    hourly       smallint[] NOT NULL CHECK (cardinality(hourly) = cardinality(hours)),
    samples      integer  NOT NULL,
    first_hour   integer  NOT NULL,
    last_hour    integer  NOT NULL,
    weeks        integer  NOT NULL,
    observations bigint   NOT NULL,
    PRIMARY KEY (segment_id, mode)
);

-- name: traffic_reference_tile
CREATE INDEX traffic_reference_tile ON traffic_reference (mode, tile_id);

-- name: traffic_reference_tiles
-- One row per built reference tile: the coverage GeoJSON is one statement over these, so
-- refreshing it never reads speeds or crawls the store.
CREATE TABLE traffic_reference_tiles (
    mode           text     NOT NULL,
    level          smallint NOT NULL,
    tile_index     integer  NOT NULL,
    range_start    bigint   NOT NULL,
    range_end      bigint   NOT NULL,
    weeks          integer  NOT NULL,
    total_segments integer  NOT NULL,
    segments       integer  NOT NULL,
    observations   bigint   NOT NULL,
    built_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (mode, level, tile_index)
);

-- name: traffic_coverage_state
-- What the last coverage refresh wrote, so an unchanged document is not rewritten.
CREATE TABLE traffic_coverage_state (
    key          text PRIMARY KEY,
    etag         text NOT NULL,
    features     integer NOT NULL,
    refreshed_at timestamptz NOT NULL DEFAULT now()
);

-- name: traffic_coverage_geojson
-- The coverage GeoJSON (RFC 7946): one polygon per tile, at every level, that has reference
-- data in any mode; counter-clockwise rings; properties tileid, rangeStart, rangeEnd,
-- rangeStartDate, rangeEndDate as in OpenTraffic's coverage map, plus our own level,
-- segments and observations (summed over modes) and the modes. Kept for workers older than
-- 0014; current code calls traffic_coverage_geojson_v2. From psql:
--     \copy (SELECT renderer.traffic_coverage_geojson()) TO 'coverage.geojson'
CREATE FUNCTION renderer.traffic_coverage_geojson() RETURNS json
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    WITH tiles AS (
        SELECT level, tile_index,
               min(range_start) AS range_start, max(range_end) AS range_end,
               sum(segments)::bigint AS segments,
               sum(observations)::bigint AS observations,
               array_agg(mode ORDER BY mode) AS modes,
               (ARRAY[4.0, 1.0, 0.25])[level + 1] AS size
          FROM traffic_reference_tiles
         WHERE segments > 0
         GROUP BY level, tile_index
    ), boxes AS (
        SELECT t.*,
               -180 + (tile_index % (360 / size)::integer) * size AS west,
               -90 + (tile_index / (360 / size)::integer) * size AS south
          FROM tiles t
    )
    SELECT json_build_object(
             'type', 'FeatureCollection',
             'features', coalesce(json_agg(json_build_object(
                 'type', 'Feature',
                 'geometry', ST_AsGeoJSON(ST_ForcePolygonCCW(ST_MakeEnvelope(
                     west, south, west + size, south + size, 4326)))::json,
                 'properties', json_build_object(
                     'tileid', tile_index,
                     'level', level,
                     'rangeStart', range_start,
                     'rangeEnd', range_end,
                     'rangeStartDate', to_char(to_timestamp(range_start) AT TIME ZONE 'UTC',
                                               'YYYY-MM-DD HH24:MI:SS'),
                     'rangeEndDate', to_char(to_timestamp(range_end) AT TIME ZONE 'UTC',
                                             'YYYY-MM-DD HH24:MI:SS'),
                     'segments', segments,
                     'observations', observations,
                     'modes', to_json(modes)))
               ORDER BY level, tile_index), '[]'::json))
      FROM boxes
$$;

-- name: traffic_coverage_geojson_v2
-- The coverage GeoJSON of traffic_coverage_geojson, of some levels only (p_levels; NULL:
-- every level, the default document, byte for byte the same as traffic_coverage_geojson())
-- and, with p_opentraffic_style, OpenTraffic's styling properties first on every feature,
-- with its names and values (fillOpacity 0.33, color, fill and fillColor #50bf40, contour
-- 15, opacity 0.33, fill-opacity 0.33), as its make_coverage_map.py wrote them. OpenTraffic
-- listed level 1 only and had no level, segments, observations or modes: those stay ours.
-- From psql, OpenTraffic's map:
--     \copy (SELECT renderer.traffic_coverage_geojson_v2('{1}', true)) TO 'coverage.geojson'
CREATE FUNCTION renderer.traffic_coverage_geojson_v2(
    p_levels integer[] DEFAULT NULL, p_opentraffic_style boolean DEFAULT false) RETURNS json
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    WITH tiles AS (
        SELECT level, tile_index,
               min(range_start) AS range_start, max(range_end) AS range_end,
               sum(segments)::bigint AS segments,
               sum(observations)::bigint AS observations,
               array_agg(mode ORDER BY mode) AS modes,
               (ARRAY[4.0, 1.0, 0.25])[level + 1] AS size
          FROM traffic_reference_tiles
         WHERE segments > 0 AND (p_levels IS NULL OR level = ANY (p_levels))
         GROUP BY level, tile_index
    ), boxes AS (
        SELECT t.*,
               -180 + (tile_index % (360 / size)::integer) * size AS west,
               -90 + (tile_index / (360 / size)::integer) * size AS south,
               to_char(to_timestamp(range_start) AT TIME ZONE 'UTC',
                       'YYYY-MM-DD HH24:MI:SS') AS start_date,
               to_char(to_timestamp(range_end) AT TIME ZONE 'UTC',
                       'YYYY-MM-DD HH24:MI:SS') AS end_date
          FROM tiles t
    )
    SELECT json_build_object(
             'type', 'FeatureCollection',
             'features', coalesce(json_agg(json_build_object(
                 'type', 'Feature',
                 'geometry', ST_AsGeoJSON(ST_ForcePolygonCCW(ST_MakeEnvelope(
                     west, south, west + size, south + size, 4326)))::json,
                 'properties', CASE WHEN p_opentraffic_style THEN json_build_object(
                     'fillOpacity', 0.33, 'color', '#50bf40', 'fill', '#50bf40',
                     'fillColor', '#50bf40', 'contour', 15, 'opacity', 0.33,
                     'fill-opacity', 0.33,
                     'tileid', tile_index, 'level', level,
                     'rangeStart', range_start, 'rangeEnd', range_end,
                     'rangeStartDate', start_date, 'rangeEndDate', end_date,
                     'segments', segments, 'observations', observations,
                     'modes', to_json(modes))
                 ELSE json_build_object(
                     'tileid', tile_index, 'level', level,
                     'rangeStart', range_start, 'rangeEnd', range_end,
                     'rangeStartDate', start_date, 'rangeEndDate', end_date,
                     'segments', segments, 'observations', observations,
                     'modes', to_json(modes)) END)
               ORDER BY level, tile_index), '[]'::json))
      FROM boxes
$$;
