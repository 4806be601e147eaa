-- Retired definitions: text a migration or benchmark can still load by name as it was.
-- `-- name: x@R` is x as it was up to revision R (the last revision it was current at).
-- See ../README.md.

-- name: tile_pieces@0030
-- A region's part of one tile (with its pixel margin); covers = it covers the whole tile
-- and margin, stored once without geometry.
CREATE TABLE tile_pieces (
    z         smallint NOT NULL,
    x         integer NOT NULL,
    y         integer NOT NULL,
    region_id integer NOT NULL REFERENCES regions ON DELETE CASCADE,
    covers    boolean NOT NULL,
    geom      geometry(Geometry, 3857),
    CHECK (covers = (geom IS NULL)),
    PRIMARY KEY (z, x, y, region_id)
);

-- name: tile_features@0030
-- The GeoJSON text of each feature of a tile, open after its last fixed property: the
-- statistics and the closing braces are appended when the tile is served or exported.
CREATE TABLE tile_features (
    z         smallint NOT NULL,
    x         integer NOT NULL,
    y         integer NOT NULL,
    region_id integer NOT NULL REFERENCES regions ON DELETE CASCADE,
    ord       integer NOT NULL,               -- larger regions first
    feature   text NOT NULL,
    PRIMARY KEY (z, x, y, region_id)
);

-- name: tiles@0030
-- One row per rendered tile: its UTFGrids (a JSON list) and when its geometry was made.
CREATE TABLE tiles (
    z           smallint NOT NULL,
    x           integer NOT NULL,
    y           integer NOT NULL,
    utfgrids    text NOT NULL DEFAULT '[]',
    rendered_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (z, x, y)
);

-- name: maptiles_tile@0030
-- A tile's GeoJSON with the statistics merged, by string concatenation (psql: SELECT
-- renderer.maptiles_tile(3, 4, 2)); NULL for a tile never rendered.
CREATE FUNCTION renderer.maptiles_tile(p_z integer, p_x integer, p_y integer) RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT '{"type":"FeatureCollection","features":['
           || coalesce((SELECT string_agg(f.feature || coalesce(',' || s.members, '') || '}}',
                                          ',' ORDER BY f.ord)
                        FROM tile_features f
                        JOIN regions r ON r.id = f.region_id
                        LEFT JOIN region_stats s ON s.type = r.type AND s.uid = r.uid
                        WHERE f.z = p_z AND f.x = p_x AND f.y = p_y), '')
           || '],"utfgrids":' || t.utfgrids || '}'
    FROM tiles t WHERE t.z = p_z AND t.x = p_x AND t.y = p_y
$$;

-- name: tile_pieces@0035
-- A region's part of one tile (with its pixel margin); covers = it covers the whole tile
-- and margin, stored once without geometry. No foreign key: its per-row check cost more
-- than any other write of a block (a block writes about ten pieces a tile, all of the
-- block's own shapes' regions); a deleted region's pieces go by a statement trigger.
CREATE TABLE tile_pieces (
    z         smallint NOT NULL,
    x         integer NOT NULL,
    y         integer NOT NULL,
    region_id integer NOT NULL,             -- regions.id (see maptiles_regions_deleted)
    covers    boolean NOT NULL,
    geom      geometry(Geometry, 3857),
    CHECK (covers = (geom IS NULL)),
    PRIMARY KEY (z, x, y, region_id)
);

-- name: tile_features@0035
-- The GeoJSON text of each feature of a tile, open after its last fixed property: the
-- statistics and the closing braces are appended when the tile is served or exported.
CREATE TABLE tile_features (
    z         smallint NOT NULL,
    x         integer NOT NULL,
    y         integer NOT NULL,
    region_id integer NOT NULL,             -- regions.id, as in tile_pieces
    ord       integer NOT NULL,               -- larger regions first
    feature   text NOT NULL,
    PRIMARY KEY (z, x, y, region_id)
);

-- name: maptiles_regions_deleted@0035
-- What ON DELETE CASCADE did for tile_pieces and tile_features, once per statement: the
-- pieces and feature text of the deleted regions go with them.
CREATE FUNCTION renderer.maptiles_regions_deleted() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM tile_pieces WHERE region_id IN (SELECT id FROM deleted_regions);
    DELETE FROM tile_features WHERE region_id IN (SELECT id FROM deleted_regions);
    RETURN NULL;
END
$$;

-- name: maptiles_tile_body@0035
-- A tile's GeoJSON with the statistics merged, by string concatenation, as a row (psql:
-- SELECT body FROM renderer.maptiles_tile_body(3, 4, 2)); no row for a tile never
-- rendered. A set-returning SQL function, so a query calling it in FROM gets its body
-- inlined and planned once (a prepared statement keeps the plan): the scalar
-- maptiles_tile planned its body on every call, 0.5 ms of a served tile's 0.65 ms of
-- server CPU (0.15 ms this way).
CREATE FUNCTION renderer.maptiles_tile_body(p_z integer, p_x integer, p_y integer)
    RETURNS TABLE (body text) LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT '{"type":"FeatureCollection","features":['
           || coalesce((SELECT string_agg(f.feature || coalesce(',' || s.members, '') || '}}',
                                          ',' ORDER BY f.ord)
                        FROM tile_features f
                        JOIN regions r ON r.id = f.region_id
                        LEFT JOIN region_stats s ON s.type = r.type AND s.uid = r.uid
                        WHERE f.z = t.z AND f.x = t.x AND f.y = t.y), '')
           || '],"utfgrids":' || t.utfgrids || '}'
    FROM tiles t WHERE t.z = p_z AND t.x = p_x AND t.y = p_y
$$;
