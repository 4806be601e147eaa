"""Traffic products: speed tiles, reference tiles, coverage.

Revision ID: 0004
Revises: 0003

Speed tiles keep one row per (mode, week, segment) with sparse per-hour arrays (only the
hours of week that have observations) rather than one row per segment-hour: a level-0 week
of 50,000 segments is 50,000 rows, not 8.4 million, and the export expands them to
OpenTraffic's dense 168-per-segment arrays. Reference tiles keep one row per (mode,
segment). Each built tile has a summary row (``traffic_speed_tiles``,
``traffic_reference_tiles``); the coverage GeoJSON is one statement over the reference
summaries, so refreshing it never reads speeds or crawls the store.
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TILE_ID_MASK = 33554431  # 0x1FFFFFF: segment_id & mask = tile_id = index << 3 | level


def upgrade() -> None:
    # The speed-tile stage reads one tile-week of histograms (and one tile's segment
    # lengths) at a time: without these indexes every speed tile would scan its week's
    # whole partition.
    # In (segment, hour, next segment) order within a tile, so build_speeds streams.
    op.execute(f"""
        CREATE INDEX traffic_histograms_tile
            ON traffic_histograms (((segment_id & {TILE_ID_MASK})::integer), mode, segment_id,
                                   hour, next_segment_id)
    """)
    for table in ("traffic_segments", "traffic_segment_lengths"):
        op.execute(f"""
            CREATE INDEX {table}_tile ON {table} (((segment_id & {TILE_ID_MASK})::integer))
        """)

    # Pure functions used by the bulk statements; each has a Python twin in
    # renderer/traffic/speedtile.py, tested equal. LANGUAGE sql without FROM and not STRICT,
    # so the planner inlines them (a STRICT CASE is not inlined: 40 us per call instead of 0).
    op.execute("""
        CREATE FUNCTION renderer.traffic_duration_seconds(code integer) RETURNS integer
        LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
            SELECT CASE code >> 6
                     WHEN 0 THEN code
                     WHEN 1 THEN 64 + (code & 63) * 2
                     WHEN 2 THEN 192 + (code & 63) * 5
                     ELSE 512 + (code & 63) * 10
                   END
        $$
    """)
    # The level-0 tile (index) holding a tile id of any level.
    op.execute("""
        CREATE FUNCTION renderer.traffic_level0_index(tile_id integer) RETURNS integer
        LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
            SELECT CASE tile_id & 7
                     WHEN 0 THEN tile_id >> 3
                     WHEN 1 THEN ((tile_id >> 3) / 360 / 4) * 90 + ((tile_id >> 3) % 360) / 4
                     ELSE ((tile_id >> 3) / 1440 / 16) * 90 + ((tile_id >> 3) % 1440) / 16
                   END
        $$
    """)
    # OpenTraffic's prevalence: the hour's observation count in 11 bins, bins 1-9 moved by
    # -1/0/+1 with probability 15/70/15 % to obscure true counts (never down to 0, which
    # means no data). Deterministic here: the
    # draw is a Lehmer (MINSTD) hash of segment, hour of week and week, so a rerun gives the
    # same bytes. Every product stays below 2^62, so bigint never overflows.
    op.execute("""
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
        $$
    """)

    # The weeks (first epoch hour) whose histogram partition holds any row, ascending: what
    # the weekly schedule picks from, without scanning the histograms.
    op.execute(r"""
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
        END $$
    """)

    # One row per (mode, week, segment). hours: the hours of week (0 = Monday 00:00 UTC)
    # that had observations, ascending; the per-hour arrays run parallel to it. next_*:
    # one entry per (hour, next segment) of the hours published (>= min count), ordered by
    # hour then next segment id, NULL id (no next segment) last.
    op.execute(f"""
        CREATE TABLE traffic_speeds (
            mode            text     NOT NULL,
            first_hour      integer  NOT NULL,
            segment_id      bigint   NOT NULL,
            tile_id         integer  NOT NULL
                            GENERATED ALWAYS AS ((segment_id & {TILE_ID_MASK})::integer) STORED,
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
        )
    """)
    op.execute("CREATE INDEX traffic_speeds_tile ON traffic_speeds (mode, tile_id, first_hour)")

    # One row per built speed tile (a tile of any level, for one mode and week).
    op.execute("""
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
        )
    """)
    op.execute("CREATE INDEX traffic_speed_tiles_week ON traffic_speed_tiles (first_hour)")

    # Reference speeds: one row per (mode, segment) with non-zero speeds in the reference
    # window: the 20/40/60/80th percentiles of its hourly speeds, and per hour of week with
    # data (hours) the mean speed (hourly); first_hour/last_hour: the first hours of the
    # earliest and latest weeks that contributed.
    op.execute(f"""
        CREATE TABLE traffic_reference (
            mode         text     NOT NULL,
            segment_id   bigint   NOT NULL,
            tile_id      integer  NOT NULL
                         GENERATED ALWAYS AS ((segment_id & {TILE_ID_MASK})::integer) STORED,
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
        )
    """)
    op.execute("CREATE INDEX traffic_reference_tile ON traffic_reference (mode, tile_id)")
    op.execute("""
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
        )
    """)

    # What the last coverage refresh wrote, so an unchanged document is not rewritten.
    op.execute("""
        CREATE TABLE traffic_coverage_state (
            key          text PRIMARY KEY,
            etag         text NOT NULL,
            features     integer NOT NULL,
            refreshed_at timestamptz NOT NULL DEFAULT now()
        )
    """)

    # The coverage GeoJSON (RFC 7946): one polygon per tile, at every level, that has
    # reference data in any mode; counter-clockwise rings; properties as OpenTraffic's
    # coverage map (tileid, level, rangeStart, rangeEnd, rangeStartDate, rangeEndDate) plus
    # segments and observations (summed over modes) and the modes. From psql:
    #     \copy (SELECT renderer.traffic_coverage_geojson()) TO 'coverage.geojson'
    op.execute("""
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
        $$
    """)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS renderer.traffic_coverage_geojson()")
    op.execute("DROP TABLE IF EXISTS traffic_coverage_state, traffic_reference_tiles,"
               " traffic_reference, traffic_speed_tiles, traffic_speeds")
    op.execute("DROP FUNCTION IF EXISTS renderer.traffic_histogram_weeks()")
    op.execute("DROP FUNCTION IF EXISTS renderer.traffic_prevalence(bigint, bigint, integer,"
               " integer)")
    op.execute("DROP FUNCTION IF EXISTS renderer.traffic_level0_index(integer)")
    op.execute("DROP FUNCTION IF EXISTS renderer.traffic_duration_seconds(integer)")
    op.execute("DROP INDEX IF EXISTS traffic_segment_lengths_tile")
    op.execute("DROP INDEX IF EXISTS traffic_segments_tile")
    op.execute("DROP INDEX IF EXISTS traffic_histograms_tile")
