-- The coverage GeoJSON (renderer/traffic/coverage.py); the document itself is built by the
-- SQL function renderer.traffic_coverage_geojson_v2() (sql/schema/traffic.sql), so psql can
-- make it.

-- name: geojson
-- The whole FeatureCollection as text, with its feature count: the tiles of some levels
-- (NULL: every level), with OpenTraffic's styling properties or without.
SELECT g::text AS geojson, json_array_length(g -> 'features') AS features
  FROM renderer.traffic_coverage_geojson_v2(%(levels)s::integer[],
                                            %(opentraffic_style)s) AS g;

-- name: state
-- What the last refresh wrote under a key, locked so two refreshes write one after the other.
SELECT etag, features, refreshed_at FROM traffic_coverage_state WHERE key = %(key)s FOR UPDATE;

-- name: lock
-- Serialize refreshes of one key (the state row may not exist yet) until the transaction ends.
SELECT pg_advisory_xact_lock(hashtext('traffic_coverage/' || %(key)s));

-- name: record
-- Remember what a refresh wrote.
INSERT INTO traffic_coverage_state (key, etag, features)
VALUES (%(key)s, %(etag)s, %(features)s)
ON CONFLICT (key) DO UPDATE
   SET etag = excluded.etag, features = excluded.features, refreshed_at = now();
