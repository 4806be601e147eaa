-- The map-tiles pipeline's canonical schema: regions -> per-zoom shapes -> tile pieces ->
-- feature text, with statistics kept apart and merged into a tile at the last instant.
-- Created by migration 0012 by name (schema.apply); change a definition as
-- sql/schema/README.md says (a new migration with it, the old text to retired/).

-- name: region_types
-- The region types and the DAG their parent fields make (a type's parents are types).
CREATE TABLE region_types (
    type         text PRIMARY KEY CHECK (type ~ '^[A-Za-z][A-Za-z0-9_]{0,62}$'),
    parent_types text[] NOT NULL DEFAULT '{}',
    max_zoom     smallint,                -- not drawn beyond (coarse data); NULL: no limit
    imported_at  timestamptz NOT NULL DEFAULT now()
);

-- name: regions
-- One row per imported region: geometry as imported (repaired when it had to be), the
-- Web Mercator copy the tiles are cut from, and the zoom it appears from.
CREATE TABLE regions (
    id        integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    type      text NOT NULL REFERENCES region_types ON DELETE CASCADE,
    uid       text NOT NULL,
    key       text GENERATED ALWAYS AS (type || '-' || uid) STORED UNIQUE,
    name      text,
    parents   text[] NOT NULL DEFAULT '{}',   -- keys ("Province-11") of its parents
    geom      geometry(MultiPolygon, 4326) NOT NULL,
    merc      geometry(MultiPolygon, 3857) NOT NULL,  -- clipped to Web Mercator's +-85.05
    area_m2   double precision NOT NULL,      -- geodesic
    lat       double precision NOT NULL,      -- of its centroid: the pixel scale there
    repaired  boolean NOT NULL DEFAULT false,
    min_zoom  smallint,                       -- NULL until `tiles render` computes it
    UNIQUE (type, uid)
);

-- name: regions_merc
-- Regions by Web Mercator extent (the spatial joins of the shapes build).
CREATE INDEX regions_merc ON regions USING gist (merc);

-- name: region_rejects
-- Features an import could not use, with the reason (kept, never dropped silently).
CREATE TABLE region_rejects (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    file     text NOT NULL,
    feature  integer NOT NULL,                -- 0-based position in the file
    type     text NOT NULL,
    uid      text,
    reason   text NOT NULL,
    at       timestamptz NOT NULL DEFAULT now()
);

-- name: region_arcs
-- Every region boundary, all types together, noded and merged into arcs between
-- junctions: a border two regions (or a parent and its child) share is one arc, simplified
-- once per zoom, so it stays shared.
CREATE TABLE region_arcs (
    id    integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    types text[] NOT NULL DEFAULT '{}',      -- the region types whose boundaries it is on
    geom  geometry(LineString, 3857) NOT NULL
);

-- name: region_shapes
-- A region's polygon at one zoom: simplified from the shared arcs, snapped to a quarter
-- pixel, islands under 6x6 px dropped.
CREATE TABLE region_shapes (
    zoom      smallint NOT NULL,
    region_id integer NOT NULL REFERENCES regions ON DELETE CASCADE,
    geom      geometry(MultiPolygon, 3857) NOT NULL,
    PRIMARY KEY (zoom, region_id)
);

-- name: region_shapes_geom
-- The shapes of one zoom a block of tiles touches.
CREATE INDEX region_shapes_geom ON region_shapes USING gist (geom);

-- name: tile_regions
-- The regions of one tile, larger first, in one row: their ids, their pieces (each cut to
-- the tile with its pixel margin; NULL for a region covering the whole tile and margin,
-- stored once without geometry) and the GeoJSON text of each feature, open after its last
-- fixed property (the statistics and the closing braces are appended when the tile is
-- served or exported). One row a tile, not one a piece and one a feature text: those
-- rows (about 30 a tile at zoom 14, each with its primary key's B-tree entry and WAL
-- record) were most of a block's writes; the arrays go to TOAST compressed by lz4 (pglz
-- cost as much as the rows saved; tile_regions_compression). No foreign key: a deleted
-- region leaves the tiles by a statement trigger (maptiles_regions_deleted).
CREATE TABLE tile_regions (
    z          smallint NOT NULL,
    x          integer NOT NULL,
    y          integer NOT NULL,
    region_ids integer[] NOT NULL,               -- regions.id, larger regions first
    geoms      geometry[] NOT NULL,              -- Web Mercator; NULL: covers the tile
    features   text[] NOT NULL,
    CHECK (cardinality(region_ids) = cardinality(geoms)
           AND cardinality(region_ids) = cardinality(features)),
    PRIMARY KEY (z, x, y)
);

-- name: tile_regions_compression
-- lz4 for the pieces and the feature texts where the server has it; a server built
-- without lz4 keeps pglz (as traffic_speeds_compression: a DO block, so the offline DDL of
-- `renderer db migrate --sql` decides on the server too).
DO $$ BEGIN
    IF EXISTS (SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression'
                                           AND 'lz4' = ANY(enumvals)) THEN
        ALTER TABLE tile_regions
            ALTER COLUMN geoms SET COMPRESSION lz4,
            ALTER COLUMN features SET COMPRESSION lz4;
    END IF;
END $$;

-- name: tiles
-- One row per rendered tile: its UTFGrids (a JSON list) and when its geometry was made.
-- The grids (5 kB a tile) are compressed with lz4: pglz took 6 % of a block's CPU.
CREATE TABLE tiles (
    z           smallint NOT NULL,
    x           integer NOT NULL,
    y           integer NOT NULL,
    utfgrids    text COMPRESSION lz4 NOT NULL DEFAULT '[]',
    rendered_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (z, x, y)
);

-- name: maptiles_regions_deleted
-- What ON DELETE CASCADE did for the pieces and feature text, once per statement: the
-- deleted regions leave the tiles they were in (their entries dropped from the tiles'
-- arrays, the order of the others kept).
CREATE OR REPLACE FUNCTION renderer.maptiles_regions_deleted() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    gone integer[] := (SELECT array_agg(id) FROM deleted_regions);
BEGIN
    UPDATE tile_regions t
    SET region_ids = k.region_ids, geoms = k.geoms, features = k.features
    FROM (SELECT c.z, c.x, c.y,
                 coalesce(array_agg(u.region_id ORDER BY u.n)
                          FILTER (WHERE u.region_id <> ALL (gone)), '{}') AS region_ids,
                 coalesce(array_agg(u.geom ORDER BY u.n)
                          FILTER (WHERE u.region_id <> ALL (gone)), '{}') AS geoms,
                 coalesce(array_agg(u.feature ORDER BY u.n)
                          FILTER (WHERE u.region_id <> ALL (gone)), '{}') AS features
          FROM tile_regions c,
               unnest(c.region_ids, c.geoms, c.features) WITH ORDINALITY
                   AS u(region_id, geom, feature, n)
          WHERE c.region_ids && gone
          GROUP BY c.z, c.x, c.y) k
    WHERE t.z = k.z AND t.x = k.x AND t.y = k.y;
    RETURN NULL;
END
$$;

-- name: regions_deleted
CREATE TRIGGER regions_deleted AFTER DELETE ON regions
    REFERENCING OLD TABLE AS deleted_regions
    FOR EACH STATEMENT EXECUTE FUNCTION renderer.maptiles_regions_deleted();

-- name: region_stats
-- Statistics by (type, uid) from `tiles stats` CSV files: the JSON members to append to a
-- feature's properties (`"pop":123,"rate":0.5`), merged at the last instant.
CREATE TABLE region_stats (
    type        text NOT NULL,
    uid         text NOT NULL,
    members     text NOT NULL,
    imported_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (type, uid)
);

-- name: maptiles_tile_body
-- A tile's GeoJSON with the statistics merged, by string concatenation, as a row (psql:
-- SELECT body FROM renderer.maptiles_tile_body(3, 4, 2)); no row for a tile never
-- rendered. A set-returning SQL function, so a query calling it in FROM gets its body
-- inlined and planned once (a prepared statement keeps the plan): the scalar
-- maptiles_tile planned its body on every call, 0.5 ms of a served tile's 0.65 ms of
-- server CPU (0.15 ms this way). The features are the tile's row of tile_regions, in
-- their order (larger regions first); a region whose statistics row has no member (a CSV
-- row of empty cells) gets none (its "," made the body invalid JSON).
CREATE OR REPLACE FUNCTION renderer.maptiles_tile_body(p_z integer, p_x integer, p_y integer)
    RETURNS TABLE (body text) LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT '{"type":"FeatureCollection","features":['
           || coalesce((SELECT string_agg(f.feature || coalesce(',' || nullif(s.members, ''), '')
                                          || '}}', ',' ORDER BY f.n)
                        FROM tile_regions c
                        CROSS JOIN LATERAL unnest(c.region_ids, c.features) WITH ORDINALITY
                            AS f(region_id, feature, n)
                        JOIN regions r ON r.id = f.region_id
                        LEFT JOIN region_stats s ON s.type = r.type AND s.uid = r.uid
                        WHERE c.z = t.z AND c.x = t.x AND c.y = t.y), '')
           || '],"utfgrids":' || t.utfgrids || '}'
    FROM tiles t WHERE t.z = p_z AND t.x = p_x AND t.y = p_y
$$;

-- name: maptiles_tile
-- A tile's GeoJSON with the statistics merged (psql: SELECT renderer.maptiles_tile(3, 4,
-- 2)); NULL for a tile never rendered. The body is maptiles_tile_body's.
CREATE OR REPLACE FUNCTION renderer.maptiles_tile(p_z integer, p_x integer, p_y integer)
    RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT body FROM renderer.maptiles_tile_body(p_z, p_x, p_y)
$$;
