-- Vessel tracks: ingest (ledger, staging, identities, reports, rejects) and queries. Used by
-- renderer/tracks/ingest.py and renderer/tracks/query.py; the tables are in
-- sql/schema/tracks.sql.

-- name: known_file
-- The ledger row of a file version already ingested, if any.
SELECT id, status FROM tracks_files
WHERE key = %(key)s AND size = %(size)s AND checksum = %(checksum)s;

-- name: reset_stage
-- Drop the previous file's staging tables (temporary, this session only).
DROP TABLE IF EXISTS tracks_stage, tracks_stage_rejects;

-- name: create_stage
-- The accepted reports of the file being ingested, by COPY; set_no names its identifiers.
CREATE TEMP TABLE tracks_stage (
    set_no     integer          NOT NULL,
    t_ms       bigint           NOT NULL,  -- epoch ms: cheaper to write than a timestamp
    lat        double precision NOT NULL,
    lon        double precision NOT NULL,
    latency    integer,
    sog        smallint,
    cog        smallint,
    heading    smallint,
    nav_status smallint,
    rot        smallint,
    source     smallint,
    ais_class  "char"
);

-- name: create_stage_rejects
-- The rejected rows of the file being ingested, by COPY.
CREATE TEMP TABLE tracks_stage_rejects (
    line   bigint NOT NULL,
    reason text   NOT NULL,
    raw    text
);

-- name: copy_stage
-- COPY of the staged reports.
COPY tracks_stage (set_no, t_ms, lat, lon, latency, sog, cog, heading, nav_status, rot, source,
                   ais_class) FROM STDIN;

-- name: copy_stage_csv
-- COPY of the staged reports as CSV (the batch readers' output; an unquoted empty field is
-- NULL).
COPY tracks_stage (set_no, t_ms, lat, lon, latency, sog, cog, heading, nav_status, rot, source,
                   ais_class) FROM STDIN (FORMAT csv);

-- name: copy_stage_rejects
-- COPY of the staged rejects.
COPY tracks_stage_rejects (line, reason, raw) FROM STDIN;

-- name: stage_summary
-- The UTC days (partitions needed) and the time span of the staged reports.
SELECT coalesce(array_agg(DISTINCT DATE '1970-01-01' + (t_ms / 86400000)::integer), '{}')
         AS days,  -- integer division: t_ms >= 0 (validated), per row no numeric
       to_timestamp(min(t_ms) / 1000.0) AS first_time,
       to_timestamp(max(t_ms) / 1000.0) AS last_time, count(*) AS reports
FROM tracks_stage;

-- name: lock_identities
-- One ingest at a time resolves identifiers to vessels (until its commit), so two files
-- naming a new mmsi make one vessel, not two.
SELECT pg_advisory_xact_lock(7301734315);

-- name: known_identifiers
-- The vessels of some identifiers.
SELECT i.key, i.value, i.vessel_id
FROM tracks_identifiers i
JOIN unnest(%(keys)s::text[], %(values)s::text[]) AS w(key, value)
  ON i.key = w.key AND i.value = w.value;

-- name: new_vessels
-- Number %(n)s new vessels.
INSERT INTO tracks_vessels (first_seen)
SELECT now() FROM generate_series(1, %(n)s)
RETURNING vessel_id;

-- name: merge_vessels
-- Fold vessels %(from)s into %(into)s (a report named identifiers of several).
SELECT renderer.tracks_merge_vessels(%(into)s, %(from)s::integer[]) AS moved;

-- name: merge_summary
-- After merge_vessels: the summary rows of the hours of vessels %(from)s, recomputed for them
-- (dropped: their reports moved) and for %(into)s (which now has those reports).
SELECT renderer.tracks_summary_refresh(coalesce(array_agg(p.vessel_id), '{}'),
                                       coalesce(array_agg(p.hour), '{}'))
FROM (
    SELECT s.vessel_id, s.hour FROM tracks_summary s
    WHERE s.vessel_id = ANY (%(from)s::integer[])
    UNION
    SELECT %(into)s::integer, s.hour FROM tracks_summary s
    WHERE s.vessel_id = ANY (%(from)s::integer[])
) p;

-- name: add_identifiers
-- Identifiers seen for the first time, with their vessel.
INSERT INTO tracks_identifiers (key, value, vessel_id)
SELECT * FROM unnest(%(keys)s::text[], %(values)s::text[], %(vessels)s::integer[])
ON CONFLICT (key, value) DO NOTHING;

-- name: record_file
-- Add a file version to the ledger. ON CONFLICT DO NOTHING: a concurrent ingest of the same
-- version waits on the unique key here, then gets no row and rolls back.
INSERT INTO tracks_files (key, size, checksum, format, status, reason, rows_read,
                          rows_accepted, rows_rejected, rows_linked, first_time, last_time)
VALUES (%(key)s, %(size)s, %(checksum)s, %(format)s, %(status)s, %(reason)s, %(rows_read)s,
        %(rows_accepted)s, %(rows_rejected)s, %(rows_linked)s, %(first_time)s, %(last_time)s)
ON CONFLICT ON CONSTRAINT tracks_files_version DO NOTHING
RETURNING id;

-- name: bulk_day
-- The table to load a day into when the day has no partition yet (attached after, which
-- builds its indexes), or NULL: see renderer.tracks_bulk_day.
SELECT renderer.tracks_bulk_day(%(day)s) AS part;

-- name: load_day
-- A new day's staged reports into its own table {part} (no indexes yet): exact duplicates
-- within the file dropped here (the key is built after), in time order. Returns how many
-- rows were stored.
WITH ins AS (
    INSERT INTO {part} (t, lat, lon, vessel_id, file_id, latency, sog, cog, heading,
                        nav_status, rot, source, ais_class)
    SELECT timestamptz 'epoch' + d.t_ms * interval '1 millisecond', d.lat, d.lon,
           d.vessel_id, %(file_id)s, d.latency, d.sog, d.cog, d.heading, d.nav_status, d.rot,
           d.source, d.ais_class
    FROM (
        SELECT DISTINCT ON (m.vessel_id, s.t_ms, s.lat, s.lon) m.vessel_id, s.*
        FROM tracks_stage s
        JOIN unnest(%(set_nos)s::integer[], %(vessels)s::integer[]) AS m(set_no, vessel_id)
          USING (set_no)
        WHERE DATE '1970-01-01' + (s.t_ms / 86400000)::integer = %(day)s
        ORDER BY m.vessel_id, s.t_ms, s.lat, s.lon
    ) d
    ORDER BY d.t_ms, d.vessel_id
    RETURNING 1
)
SELECT count(*) AS stored FROM ins;

-- name: attach_day
-- Attach a day loaded by load_day: its indexes are built here, in one pass each.
SELECT renderer.tracks_attach_day(%(day)s);

-- name: summarise_day
-- A day's hourly summary, built from its reports when it has none (after attach_day, or
-- before the first late reports into a day that has no summary): see
-- renderer.tracks_summary_day.
SELECT renderer.tracks_summary_day(%(day)s);

-- name: summary_staged
-- The summary rows of the (vessel, hour) pairs that the staged reports of days with a
-- partition (not those of %(bulk_days)s) touch, recomputed after they are stored: a late
-- report may come first in its hour or widen its box.
SELECT renderer.tracks_summary_refresh(coalesce(array_agg(p.vessel_id), '{}'),
                                       coalesce(array_agg(p.hour), '{}'))
FROM (
    SELECT DISTINCT m.vessel_id,
           timestamptz 'epoch' + (s.t_ms / 3600000) * interval '1 hour' AS hour
    FROM tracks_stage s
    JOIN unnest(%(set_nos)s::integer[], %(vessels)s::integer[]) AS m(set_no, vessel_id)
      USING (set_no)
    WHERE DATE '1970-01-01' + (s.t_ms / 86400000)::integer <> ALL (%(bulk_days)s::date[])
) p;

-- name: insert_reports
-- The staged reports of days that have a partition (not those of %(bulk_days)s, loaded by
-- load_day) under their vessels (set_no -> vessel_id); exact duplicates, of stored rows or
-- within the file, are dropped by the key. Sorted by time, so that a day's heap is in time
-- order for the BRIN index and for area queries (sorted by the key instead, the heap of a
-- file lay vessel by vessel and the planner never used the BRIN). Returns how many rows
-- were stored.
WITH ins AS (
    INSERT INTO tracks_reports (t, lat, lon, vessel_id, file_id, latency, sog, cog, heading,
                                nav_status, rot, source, ais_class)
    SELECT timestamptz 'epoch' + s.t_ms * interval '1 millisecond', s.lat, s.lon,
           m.vessel_id, %(file_id)s, s.latency,
           s.sog, s.cog, s.heading,
           s.nav_status, s.rot, s.source, s.ais_class
    FROM tracks_stage s
    JOIN unnest(%(set_nos)s::integer[], %(vessels)s::integer[]) AS m(set_no, vessel_id)
      USING (set_no)
    WHERE DATE '1970-01-01' + (s.t_ms / 86400000)::integer <> ALL (%(bulk_days)s::date[])
    ORDER BY s.t_ms, m.vessel_id
    ON CONFLICT DO NOTHING
    RETURNING 1
)
SELECT count(*) AS stored FROM ins;

-- name: record_duplicates
-- The accepted reports that were not stored (already there).
UPDATE tracks_files SET rows_duplicate = %(duplicates)s WHERE id = %(file_id)s;

-- name: record_rejects
-- The file's rejected rows, with their file.
INSERT INTO tracks_rejects (file_id, line, reason, raw)
SELECT %(file_id)s, line, reason, raw FROM tracks_stage_rejects ORDER BY line;

-- name: reject_file
-- A file rejected whole: its reason as line 0.
INSERT INTO tracks_rejects (file_id, line, reason) VALUES (%(file_id)s, 0, %(reason)s);

-- name: rejects
-- Rejected rows (line > 0) and wholly rejected files (line 0) of files whose key is LIKE
-- %(like)s (all when NULL), newest file first.
SELECT f.key AS file, r.line, r.reason, r.raw
FROM tracks_rejects r JOIN tracks_files f ON f.id = r.file_id
WHERE %(like)s::text IS NULL OR f.key LIKE %(like)s
ORDER BY f.id DESC, r.line
LIMIT %(limit)s;

-- name: files
-- The ledger, newest first.
SELECT id, key, format, status, reason, rows_read, rows_accepted, rows_rejected,
       rows_duplicate, rows_linked, first_time, last_time, ingested_at
FROM tracks_files
WHERE %(like)s::text IS NULL OR key LIKE %(like)s
ORDER BY id DESC
LIMIT %(limit)s;

-- name: vessels_of
-- The vessels named by any of some identifiers.
SELECT DISTINCT i.vessel_id
FROM tracks_identifiers i
JOIN unnest(%(keys)s::text[], %(values)s::text[]) AS w(key, value)
  ON i.key = w.key AND i.value = w.value
ORDER BY 1;

-- name: identifiers_of
-- The identifiers of some vessels.
SELECT vessel_id, key, value FROM tracks_identifiers
WHERE vessel_id = ANY (%(vessels)s::integer[])
ORDER BY vessel_id, key, value;

-- name: days
-- The UTC days with a partition between %(lo)s and %(hi)s (dates, both inclusive).
SELECT d AS day FROM renderer.tracks_days() AS d
WHERE d BETWEEN %(lo)s AND %(hi)s
ORDER BY d;

-- name: reports
-- Reports with %(lo)s <= t <= %(hi)s, of %(vessels)s (all when NULL), inside the box
-- (none when NULL; a box crossing the antimeridian is two: longitudes min_lon..max_lon and
-- min_lon2..max_lon2), after the row (%(after_t)s, %(after_vessel)s, %(after_lat)s,
-- %(after_lon)s) (from the start when NULL), in (t, vessel, lat, lon) order.
-- A %(narrow)s span (an area query's first hour) tests the box on lat and lon, the same
-- inclusive test, so that its rows are found by the BRIN on t alone: through the GiST the
-- box's reports of the whole day are gathered first (217k rows, 200 ms at 100M reports,
-- BENCHMARKS.md). One of the two box conditions folds to TRUE when planned.
SELECT r.t, r.vessel_id, r.lat, r.lon, r.sog, r.cog, r.heading, r.nav_status, r.rot,
       r.latency, r.source, r.ais_class
FROM tracks_reports r
WHERE r.t >= %(lo)s AND r.t <= %(hi)s
  AND (%(vessels)s::integer[] IS NULL OR r.vessel_id = ANY (%(vessels)s::integer[]))
  AND (%(narrow)s::boolean
       OR renderer.tracks_in_box(r.lon, r.lat, %(min_lat)s::float8, %(min_lon)s::float8,
                                 %(max_lat)s::float8, %(max_lon)s::float8,
                                 %(min_lon2)s::float8, %(max_lon2)s::float8))
  AND (NOT %(narrow)s::boolean OR %(min_lat)s::float8 IS NULL
       OR (r.lat >= %(min_lat)s::float8 AND r.lat <= %(max_lat)s::float8
           AND ((r.lon >= %(min_lon)s::float8 AND r.lon <= %(max_lon)s::float8)
                OR (r.lon >= %(min_lon2)s::float8 AND r.lon <= %(max_lon2)s::float8))))
  AND (%(after_t)s::timestamptz IS NULL
       OR (r.t, r.vessel_id, r.lat, r.lon)
          > (%(after_t)s::timestamptz, %(after_vessel)s::integer, %(after_lat)s::float8,
             %(after_lon)s::float8))
ORDER BY r.t, r.vessel_id, r.lat, r.lon
LIMIT %(limit)s;

-- name: reports_sampled
-- As reports (a %(narrow)s span tests the box on lat and lon), then each vessel's first
-- report in each interval of %(sample)s seconds (counted from the epoch), the cursor applied
-- after sampling.
SELECT * FROM (
    SELECT DISTINCT ON (r.vessel_id, renderer.tracks_bucket(r.t, %(sample)s))
           r.t, r.vessel_id, r.lat, r.lon, r.sog, r.cog, r.heading, r.nav_status, r.rot,
           r.latency, r.source, r.ais_class
    FROM tracks_reports r
    WHERE r.t >= %(lo)s AND r.t <= %(hi)s
      AND (%(vessels)s::integer[] IS NULL OR r.vessel_id = ANY (%(vessels)s::integer[]))
      AND (%(narrow)s::boolean
           OR renderer.tracks_in_box(r.lon, r.lat, %(min_lat)s::float8, %(min_lon)s::float8,
                                     %(max_lat)s::float8, %(max_lon)s::float8,
                                     %(min_lon2)s::float8, %(max_lon2)s::float8))
      AND (NOT %(narrow)s::boolean OR %(min_lat)s::float8 IS NULL
           OR (r.lat >= %(min_lat)s::float8 AND r.lat <= %(max_lat)s::float8
               AND ((r.lon >= %(min_lon)s::float8 AND r.lon <= %(max_lon)s::float8)
                    OR (r.lon >= %(min_lon2)s::float8 AND r.lon <= %(max_lon2)s::float8))))
    ORDER BY r.vessel_id, renderer.tracks_bucket(r.t, %(sample)s), r.t, r.lat, r.lon
) s
WHERE %(after_t)s::timestamptz IS NULL
   OR (s.t, s.vessel_id, s.lat, s.lon)
      > (%(after_t)s::timestamptz, %(after_vessel)s::integer, %(after_lat)s::float8,
         %(after_lon)s::float8)
ORDER BY s.t, s.vessel_id, s.lat, s.lon
LIMIT %(limit)s;

-- name: reports_probed
-- The same rows as reports_sampled for a few vessels and a coarse interval, read by one
-- index probe per (vessel, interval) of the key (vessel_id, t, lat, lon), LIMIT 1, instead
-- of reading every report and keeping the first of each interval: an hourly month of a
-- vessel reporting every 15 s is 720 probes instead of 14,000 heap rows (BENCHMARKS.md).
-- Intervals without a partition cost nothing (pruned at run time). %(lo)s and %(hi)s must
-- lie within the days that have partitions (the caller clamps them).
SELECT s.t, s.vessel_id, s.lat, s.lon, s.sog, s.cog, s.heading, s.nav_status, s.rot,
       s.latency, s.source, s.ais_class
FROM unnest(%(vessels)s::integer[]) AS v(vessel_id)
CROSS JOIN generate_series(renderer.tracks_bucket(%(lo)s, %(sample)s),
                           renderer.tracks_bucket(%(hi)s, %(sample)s)) AS b(n)
CROSS JOIN LATERAL (
    SELECT r.t, r.vessel_id, r.lat, r.lon, r.sog, r.cog, r.heading, r.nav_status, r.rot,
           r.latency, r.source, r.ais_class
    FROM tracks_reports r
    WHERE r.vessel_id = v.vessel_id
      AND r.t >= %(lo)s::timestamptz  -- a constant bound: partitions before lo pruned when planned
      AND r.t >= greatest(%(lo)s::timestamptz, to_timestamp(b.n * %(sample)s::bigint))
      AND r.t < to_timestamp((b.n + 1) * %(sample)s::bigint)
      AND r.t <= %(hi)s
      AND renderer.tracks_in_box(r.lon, r.lat, %(min_lat)s::float8, %(min_lon)s::float8,
                                 %(max_lat)s::float8, %(max_lon)s::float8,
                                 %(min_lon2)s::float8, %(max_lon2)s::float8)
    ORDER BY r.t, r.lat, r.lon
    LIMIT 1
) s
WHERE %(after_t)s::timestamptz IS NULL
   OR (s.t, s.vessel_id, s.lat, s.lon)
      > (%(after_t)s::timestamptz, %(after_vessel)s::integer, %(after_lat)s::float8,
         %(after_lon)s::float8)
ORDER BY s.t, s.vessel_id, s.lat, s.lon
LIMIT %(limit)s;

-- name: reports_summarised
-- The same rows as reports_sampled for an interval of %(sample)s seconds, a multiple of an
-- hour, read from the hourly summary (tracks_summary) instead of every report: an hour whose
-- reports all lie in the time range and the box answers with its first report as stored;
-- an hour whose box only meets the query's box, or that the range cuts, is probed on the key
-- (its first report in the range and box, LIMIT 1); an hour whose box misses is not read.
-- Then each vessel's first of its hours in each interval. The probe tests the box on lat
-- and lon (the same inclusive test as tracks_in_box's point <@ box): the planner then
-- walks the key in order and stops at the first report inside, where with point <@ box,
-- which it takes as very selective, it read every report of the hour and sorted them
-- (1.4-2x the whole statement, BENCHMARKS.md).
SELECT * FROM (
    SELECT DISTINCT ON (h.vessel_id, renderer.tracks_bucket(h.hour, %(sample)s))
           f.t, f.vessel_id, f.lat, f.lon, f.sog, f.cog, f.heading, f.nav_status, f.rot,
           f.latency, f.source, f.ais_class
    FROM tracks_summary h
    CROSS JOIN LATERAL (
        SELECT h.t, h.vessel_id, h.lat, h.lon, h.sog, h.cog, h.heading, h.nav_status, h.rot,
               h.latency, h.source, h.ais_class
        WHERE h.t >= %(lo)s AND h.t_last <= %(hi)s
          AND renderer.tracks_box_within(h.area, %(min_lat)s::float8, %(min_lon)s::float8,
                                         %(max_lat)s::float8, %(max_lon)s::float8,
                                         %(min_lon2)s::float8, %(max_lon2)s::float8)
        UNION ALL
        (SELECT r.t, r.vessel_id, r.lat, r.lon, r.sog, r.cog, r.heading, r.nav_status, r.rot,
                r.latency, r.source, r.ais_class
         FROM tracks_reports r
         WHERE (h.t >= %(lo)s AND h.t_last <= %(hi)s
                AND renderer.tracks_box_within(h.area, %(min_lat)s::float8,
                                               %(min_lon)s::float8, %(max_lat)s::float8,
                                               %(max_lon)s::float8, %(min_lon2)s::float8,
                                               %(max_lon2)s::float8)) IS NOT TRUE
           AND r.vessel_id = h.vessel_id
           AND r.t >= %(lo)s::timestamptz  -- constant bounds: the span's days alone planned
           AND r.t >= greatest(%(lo)s::timestamptz, h.hour)
           AND r.t < h.hour + interval '1 hour' AND r.t <= %(hi)s
           AND (%(min_lat)s::float8 IS NULL
                OR (r.lat >= %(min_lat)s::float8 AND r.lat <= %(max_lat)s::float8
                    AND ((r.lon >= %(min_lon)s::float8 AND r.lon <= %(max_lon)s::float8)
                         OR (r.lon >= %(min_lon2)s::float8 AND r.lon <= %(max_lon2)s::float8))))
         ORDER BY r.t, r.lat, r.lon
         LIMIT 1)
    ) f
    WHERE h.hour >= date_bin('1 hour', %(lo)s::timestamptz, timestamptz '1970-01-01 00:00+00')
      AND h.hour <= %(hi)s
      AND h.t_last >= %(lo)s AND h.t <= %(hi)s
      AND (%(vessels)s::integer[] IS NULL OR h.vessel_id = ANY (%(vessels)s::integer[]))
      -- the box: through the GiST on area for the area queries' day spans; for vessels
      -- and for a narrow span (an area query's first hour) tested on the rows that
      -- the key or the BRIN on hour finds (area + (0,0) is area, but no index's
      -- expression): through the GiST every hour of the day in the box is gathered first
      -- (24k rows for one vessel's 24, or 3,200 pages for an hour's 100, at 100M reports,
      -- BENCHMARKS.md). One of the two conditions folds to TRUE when planned.
      AND (%(vessels)s::integer[] IS NOT NULL OR %(narrow)s::boolean
           OR renderer.tracks_box_meets(h.area, %(min_lat)s::float8, %(min_lon)s::float8,
                                        %(max_lat)s::float8, %(max_lon)s::float8,
                                        %(min_lon2)s::float8, %(max_lon2)s::float8))
      AND ((%(vessels)s::integer[] IS NULL AND NOT %(narrow)s::boolean)
           OR renderer.tracks_box_meets(h.area + point '(0,0)', %(min_lat)s::float8,
                                        %(min_lon)s::float8, %(max_lat)s::float8,
                                        %(max_lon)s::float8, %(min_lon2)s::float8,
                                        %(max_lon2)s::float8))
    ORDER BY h.vessel_id, renderer.tracks_bucket(h.hour, %(sample)s), f.t, f.lat, f.lon
) s
WHERE %(after_t)s::timestamptz IS NULL
   OR (s.t, s.vessel_id, s.lat, s.lon)
      > (%(after_t)s::timestamptz, %(after_vessel)s::integer, %(after_lat)s::float8,
         %(after_lon)s::float8)
ORDER BY s.t, s.vessel_id, s.lat, s.lon
LIMIT %(limit)s;

-- name: index_prefixes
-- The first geohash characters of a UTC day's reports (one export item each).
SELECT DISTINCT ST_GeoHash(ST_SetSRID(ST_MakePoint(lon, lat), 4326), 1) AS prefix
FROM tracks_reports
WHERE t >= %(day)s::date::timestamp AT TIME ZONE 'UTC'
  AND t < (%(day)s::date + 1)::timestamp AT TIME ZONE 'UTC'
ORDER BY 1;

-- name: index_reports
-- A UTC day's reports under a geohash prefix (all when NULL) with their 10-character
-- geohash and the vessel's (lowest) mmsi, in time order, for the static index export.
SELECT (extract(epoch FROM r.t) * 1000)::bigint AS t_ms, r.vessel_id, r.lat, r.lon,
       r.latency, r.source, r.nav_status, r.rot, r.sog, r.cog, r.heading,
       r.ais_class::text AS ais_class, g.geohash,
       (SELECT min(i.value) FROM tracks_identifiers i
        WHERE i.vessel_id = r.vessel_id AND i.key = 'mmsi') AS mmsi
FROM tracks_reports r
CROSS JOIN LATERAL (
    SELECT ST_GeoHash(ST_SetSRID(ST_MakePoint(r.lon, r.lat), 4326), 10) AS geohash) g
WHERE r.t >= %(day)s::date::timestamp AT TIME ZONE 'UTC'
  AND r.t < (%(day)s::date + 1)::timestamp AT TIME ZONE 'UTC'
  AND (%(prefix)s::text IS NULL OR left(g.geohash, 1) = %(prefix)s::text)
ORDER BY r.t, r.vessel_id, r.lat, r.lon;

-- name: geohash
-- The geohash of a point (for the tests' independent check).
SELECT ST_GeoHash(ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326), %(length)s) AS geohash;
