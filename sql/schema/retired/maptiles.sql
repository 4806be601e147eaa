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
