-- Named statements of the map-tiles pipeline (renderer.maptiles); the tables are in
-- sql/schema/maptiles.sql.

-- name: create_staging
-- The features of one file as read, before any check (dropped at commit).
CREATE TEMP TABLE maptiles_staging (
    feature integer NOT NULL, uid text, name text, parents text[] NOT NULL, wkb bytea
) ON COMMIT DROP;
CREATE TEMP TABLE maptiles_checked (
    feature integer NOT NULL, uid text, name text, parents text[] NOT NULL,
    repaired boolean, geom geometry(MultiPolygon, 4326), reason text
) ON COMMIT DROP;

-- name: copy_staging
COPY maptiles_staging (feature, uid, name, parents, wkb) FROM STDIN

-- name: check_staged
-- Each staged feature accepted (repaired with ST_MakeValid when invalid) or given a reason.
INSERT INTO maptiles_checked
WITH parsed AS (
    SELECT s.feature, nullif(btrim(s.uid), '') AS uid, s.name, s.parents,
           ST_Transform(ST_SetSRID(ST_GeomFromWKB(s.wkb), %(srid)s), 4326) AS g,
           row_number() OVER (PARTITION BY nullif(btrim(s.uid), '') ORDER BY s.feature) AS nth
    FROM maptiles_staging s
), judged AS (
    SELECT p.*,
           CASE WHEN p.uid IS NULL THEN 'no uid'
                WHEN p.nth > 1 THEN 'uid ' || p.uid || ' repeated in the file (first kept)'
                WHEN p.g IS NULL OR ST_IsEmpty(p.g) THEN 'no geometry'
                WHEN ST_Dimension(p.g) <> 2 THEN 'not a polygon (' || GeometryType(p.g) || ')'
           END AS reason
    FROM parsed p
), valid AS MATERIALIZED (
    -- ST_IsValid once a feature (an inlined CTE evaluated it in each of three places)
    SELECT j.*, CASE WHEN j.reason IS NULL THEN ST_IsValid(j.g) END AS valid FROM judged j
), fixed AS MATERIALIZED (
    SELECT j.feature, j.uid, j.name, j.parents, j.reason, NOT j.valid AS repaired,
           CASE WHEN j.valid THEN ST_Multi(ST_CollectionExtract(j.g, 3))
                WHEN NOT j.valid
                    THEN ST_Multi(ST_CollectionExtract(ST_MakeValid(j.g), 3)) END AS geom,
           CASE WHEN NOT j.valid THEN ST_IsValidReason(j.g) END AS why_invalid
    FROM valid j
)
SELECT feature, uid, name, parents, repaired,
       CASE WHEN reason IS NULL AND NOT ST_IsEmpty(geom) AND ST_Area(geom) > 0 THEN geom END,
       coalesce(reason, CASE WHEN geom IS NULL OR ST_IsEmpty(geom) OR ST_Area(geom) = 0
                             THEN 'invalid geometry (' || coalesce(why_invalid, 'no area')
                                  || ') with no area left after ST_MakeValid' END)
FROM fixed;

-- name: keep_rejects
INSERT INTO region_rejects (file, feature, type, uid, reason)
SELECT %(file)s, feature, %(type)s, uid, reason FROM maptiles_checked
WHERE reason IS NOT NULL ORDER BY feature;

-- name: upsert_regions
-- The accepted features of one type, replacing earlier imports of the same uids; a region
-- whose geometry changes waits for the next render (min_zoom NULL).
INSERT INTO regions (type, uid, name, parents, geom, merc, area_m2, lat, repaired)
SELECT %(type)s, c.uid, c.name, c.parents, c.geom,
       -- cut to Web Mercator's latitudes only when it reaches beyond them
       CASE WHEN ST_YMin(c.geom) >= -85.0511287798066 AND ST_YMax(c.geom) <= 85.0511287798066
            THEN ST_Transform(c.geom, 3857)
            ELSE ST_Multi(ST_CollectionExtract(ST_Transform(ST_Intersection(
                     c.geom, ST_MakeEnvelope(-180, -85.0511287798066, 180, 85.0511287798066,
                                             4326)), 3857), 3)) END,
       ST_Area(c.geom::geography), ST_Y(ST_Centroid(c.geom)), c.repaired
FROM maptiles_checked c WHERE c.reason IS NULL
ON CONFLICT (type, uid) DO UPDATE
SET name = EXCLUDED.name, parents = EXCLUDED.parents, geom = EXCLUDED.geom,
    merc = EXCLUDED.merc, area_m2 = EXCLUDED.area_m2, lat = EXCLUDED.lat,
    repaired = EXCLUDED.repaired, min_zoom = NULL;

-- name: drop_staging
DROP TABLE maptiles_staging, maptiles_checked;

-- name: import_counts
SELECT count(*) FILTER (WHERE reason IS NULL) AS imported,
       count(*) FILTER (WHERE reason IS NULL AND repaired) AS repaired,
       count(*) FILTER (WHERE reason IS NOT NULL) AS rejected
FROM maptiles_checked;

-- name: upsert_type
INSERT INTO region_types (type, parent_types, max_zoom)
VALUES (%(type)s, %(parent_types)s, %(max_zoom)s)
ON CONFLICT (type) DO UPDATE
SET parent_types = EXCLUDED.parent_types, max_zoom = EXCLUDED.max_zoom, imported_at = now();

-- name: type_graph
SELECT type, parent_types FROM region_types ORDER BY type;

-- name: rejects
SELECT file, feature, type, uid, reason FROM region_rejects ORDER BY id;

-- name: summary
SELECT r.type, t.parent_types, count(*) AS regions, count(*) FILTER (WHERE r.repaired) AS repaired,
       min(r.min_zoom) AS min_zoom, max(r.min_zoom) AS max_zoom
FROM regions r JOIN region_types t USING (type) GROUP BY r.type, t.parent_types ORDER BY r.type;

-- name: zoom_type
-- The zoom the regions of one type appear from: siblings (same first parent) together,
-- when their average covers %(min_px)s square pixels of a 256-px tile (geodesic area, at
-- their latitude), and never before a parent. Types run parents first.
WITH groups AS (
    SELECT coalesce(parents[1], '') AS parent, avg(area_m2) AS area,
           avg(cos(radians(lat))) AS scale
    FROM regions WHERE type = %(type)s GROUP BY 1
), zooms AS (
    SELECT parent, greatest(0, ceil(ln(sqrt(%(min_px)s / greatest(area, 1e-6))
                                       * 40075016.68557849 * scale / 256) / ln(2)))::int AS zoom
    FROM groups
)
UPDATE regions r
SET min_zoom = least(99, greatest(z.zoom, coalesce(
        (SELECT max(p.min_zoom) FROM regions p WHERE p.key = ANY(r.parents)), 0)))
FROM zooms z
WHERE r.type = %(type)s AND z.parent = coalesce(r.parents[1], '');

-- name: build_arcs
-- Every boundary of every type, noded together and merged at the nodes of degree 2: the
-- arcs between junctions, each on the boundaries of the types listed in `types`. Noded by
-- a union of the linework: the same arcs as ST_Node in 60 percent of its time (the sample's 3,325
-- regions: 4.0 s against 6.6 s). A border is on the boundary of both its neighbours and
-- of their parents, so the union's input is first cut into segments, each kept once
-- (direction made canonical): the same 6,252 arcs for 0.58 instead of 0.91 s of CPU; a
-- border not shared vertex for vertex is still noded by the union. The union only when
-- the segments need noding: when they are simple (they meet only at their ends, no overlap,
-- no crossing; every border shared vertex for vertex, as in the sample) the union returns
-- them as they are, and merging them directly gives the same arcs, the same bytes on the
-- sample, for less than half the CPU (the test 0.16-0.23 s, the union 0.37-0.50 s).
DELETE FROM region_arcs;
INSERT INTO region_arcs (geom)
SELECT d.geom FROM (
    SELECT ST_LineMerge(CASE WHEN ST_IsSimple(c.segments) THEN c.segments
                             ELSE ST_UnaryUnion(c.segments) END) AS lines
    -- ordered: the union's output (its vertex order) follows its input's order, which
    -- without ORDER BY is the plan's (a parallel plan's differs from run to run)
    FROM (SELECT ST_Collect(s.geom ORDER BY s.geom) AS segments
    FROM (SELECT DISTINCT CASE WHEN ST_StartPoint(g.geom) < ST_EndPoint(g.geom) THEN g.geom
                               ELSE ST_Reverse(g.geom) END AS geom
          FROM regions r, ST_DumpSegments(ST_Boundary(r.merc)) g
          WHERE r.min_zoom IS NOT NULL AND NOT ST_IsEmpty(r.merc)) s) c
) m, ST_Dump(m.lines) d;
CREATE TEMP TABLE maptiles_bounds ON COMMIT DROP AS
SELECT r.type, ST_Subdivide(ST_Boundary(r.merc), 128) AS geom
FROM regions r WHERE r.min_zoom IS NOT NULL AND NOT ST_IsEmpty(r.merc);
CREATE INDEX ON maptiles_bounds USING gist (geom);
ANALYZE maptiles_bounds;
UPDATE region_arcs a SET types = coalesce((
    SELECT array_agg(DISTINCT b.type ORDER BY b.type) FROM maptiles_bounds b
    WHERE ST_DWithin(b.geom, ST_LineInterpolatePoint(a.geom, 0.5), 0.01)), '{}');
DROP TABLE maptiles_bounds;

-- name: delete_shapes
DELETE FROM region_shapes WHERE zoom = %(zoom)s::int;

-- name: shapes_at_zoom
-- The regions visible at one zoom, rebuilt from the shared arcs simplified once for the
-- zoom (tolerance and grid in metres): per type, the noded arcs are polygonized into faces
-- that partition the plane (so neighbours can neither overlap nor leave a gap), a face
-- goes to the region containing a point of it, and parts under %(island)s m2 (6x6 px) are
-- dropped but for each region's largest.
INSERT INTO region_shapes (zoom, region_id, geom)
WITH arcs AS MATERIALIZED (
    -- materialized: inlined, each arc was simplified and snapped again for each of the
    -- three uses of geom below
    SELECT a.id, t.type, ST_SnapToGrid(ST_Simplify(a.geom, %(tolerance)s, true), %(grid)s) AS geom
    FROM region_arcs a CROSS JOIN LATERAL unnest(a.types) AS t(type)
    WHERE t.type = ANY(%(types)s)
), noded AS (
    -- noded by a union of the linework (GEOS's overlay): the same faces as ST_Node, which
    -- took three quarters of this statement (5.5 of 6 s for a zoom of 3,325 regions,
    -- 0.6 s this way); the union also merges arcs that simplification made coincide.
    -- Every aggregate of geometries here takes its input in a fixed order (arcs by id,
    -- faces by their place, parts larger first): the union's and the collection's vertex
    -- order follow their input's, which was the plan's (a parallel plan's differs from run
    -- to run, and so did the shapes' bytes)
    -- The union only where the simplified arcs need it: when they are simple (meet only
    -- at their ends: none crossing, none coinciding) they are noded already, and the
    -- faces are the same, the same bytes on the sample, for about 0.1 s less a zoom of
    -- 3,325 regions (its test costs less than the union).
    SELECT type, CASE WHEN ST_IsSimple(geom) THEN geom ELSE ST_UnaryUnion(geom) END AS geom
    FROM (SELECT type, ST_Collect(geom ORDER BY id) AS geom FROM arcs
          WHERE NOT ST_IsEmpty(geom) AND ST_NPoints(geom) > 1
          GROUP BY type) c
), faces AS MATERIALIZED (
    -- each face's inside point once (the join below computed it for the index condition
    -- and again for each candidate region)
    SELECT f.type, d.path[1] AS nth, d.geom AS face, ST_PointOnSurface(d.geom) AS inside
    FROM (SELECT n.type, ST_Polygonize(n.geom) AS faces FROM noded n GROUP BY n.type) f,
         ST_Dump(f.faces) d
), owned AS (
    SELECT r.id AS region_id, f.nth, f.face
    FROM faces f JOIN regions r ON r.type = f.type AND r.min_zoom <= %(zoom)s::int
         AND r.merc && f.face AND ST_Intersects(r.merc, f.inside)
), merged AS (
    SELECT region_id, CASE WHEN count(*) = 1 THEN ST_Collect(face)
                           ELSE ST_UnaryUnion(ST_Collect(face ORDER BY nth)) END AS geom
    FROM owned GROUP BY region_id
), parts AS (
    SELECT m.region_id, d.geom,
           row_number() OVER (PARTITION BY m.region_id ORDER BY ST_Area(d.geom) DESC, d.path)
               AS nth
    FROM merged m, ST_Dump(m.geom) d
)
SELECT %(zoom)s::int, region_id, ST_Multi(ST_Collect(geom ORDER BY nth))
FROM parts WHERE nth = 1 OR ST_Area(geom) >= %(island)s
GROUP BY region_id;

-- name: copy_shapes
-- A zoom's shapes taken from a deeper zoom's (its band, see renderer/maptiles/zooms.py):
-- the regions this zoom draws, each with the parts under this zoom's %(island)s m2 dropped
-- but for its largest (a shape of one part is taken as it is). The borders are the deeper
-- zoom's, so they stay shared.
INSERT INTO region_shapes (zoom, region_id, geom)
WITH source AS MATERIALIZED (
    SELECT s.region_id, s.geom, ST_NumGeometries(s.geom) = 1 AS single
    FROM region_shapes s JOIN regions r ON r.id = s.region_id
    WHERE s.zoom = %(source)s::int AND r.min_zoom <= %(zoom)s::int AND r.type = ANY(%(types)s)
), parts AS (
    SELECT s.region_id, d.path, d.geom,
           row_number() OVER (PARTITION BY s.region_id ORDER BY ST_Area(d.geom) DESC) AS nth
    FROM source s, ST_Dump(s.geom) d WHERE NOT s.single
)
SELECT %(zoom)s::int, region_id, geom FROM source WHERE single
UNION ALL
SELECT %(zoom)s::int, region_id, ST_Multi(ST_Collect(geom ORDER BY path))
FROM parts WHERE nth = 1 OR ST_Area(geom) >= %(island)s
GROUP BY region_id;

-- name: visible_types
-- The types drawn at a zoom: with a region from that zoom on, and not capped below it.
SELECT DISTINCT r.type FROM regions r JOIN region_types t USING (type)
WHERE r.min_zoom <= %(zoom)s::int AND (t.max_zoom IS NULL OR t.max_zoom >= %(zoom)s::int)
ORDER BY r.type;

-- name: blocks_at_zoom
-- The blocks (tiles of zoom z - k) that a shape of zoom z touches: of the blocks its box
-- spans (with the tiles' margin), those whose envelope with the margin it intersects, the
-- test cut_block makes to take a shape into a block, so the list is exactly the blocks the
-- cut finds a shape in. The boxes of its ST_Subdivide parts (64 vertices) gave a superset
-- (a part's box can reach a block the shape misses; none such in the sample) for 3x the
-- CPU: 0.60 against 0.18 s for the sample's 15 zooms, the same 70 blocks.
SELECT DISTINCT bx AS block_x, by AS block_y
FROM region_shapes s,
     LATERAL (SELECT Box2D(s.geom) AS box OFFSET 0) b,  -- once, not once a use
     generate_series(
         greatest(0, floor((ST_XMin(b.box) - %(pad)s + 20037508.342789244) / %(size)s)::int),
         least(%(n)s::int - 1, floor((ST_XMax(b.box) + %(pad)s + 20037508.342789244) / %(size)s)::int)
     ) AS bx,
     generate_series(
         greatest(0, floor((20037508.342789244 - ST_YMax(b.box) - %(pad)s) / %(size)s)::int),
         least(%(n)s::int - 1, floor((20037508.342789244 - ST_YMin(b.box) + %(pad)s) / %(size)s)::int)
     ) AS by
WHERE s.zoom = %(zoom)s::int
  AND ST_Intersects(s.geom, ST_TileEnvelope(%(zoom)s::int - %(k)s::int, bx, by,
                                            margin => %(margin)s / 2 ^ %(k)s::int))
ORDER BY block_y, block_x;

-- name: delete_block
-- A block's earlier output (a rerun replaces it).
WITH regions AS (
    DELETE FROM tile_regions
    WHERE z = %(z)s::int AND x BETWEEN %(x0)s::int AND %(x1)s::int AND y BETWEEN %(y0)s::int AND %(y1)s::int
)
DELETE FROM tiles WHERE z = %(z)s::int AND x BETWEEN %(x0)s::int AND %(x1)s::int AND y BETWEEN %(y0)s::int AND %(y1)s::int;

-- name: cut_block
-- One block in one statement: the shapes of zoom z cut into the tiles x0..x1, y0..y1 (each
-- tile with a margin of %(margin)s of its size), the pieces and their feature text written
-- (a row a tile, tile_regions), and the pieces returned in tile pixels for the UTFGrids
-- (x right, y down, 0..256; NULL wkb for a piece covering its tile), per tile larger
-- regions first (smaller ones paint over them). One pass where there were three statements (cut, feature text from the
-- pieces read back, the pieces read back again in pixels): the regions are joined once,
-- for the block's shapes only, and nothing is read back.
-- A shape is cut to the block once, by ST_ClipByBox2D (ST_Intersection took 70-80 ms of a
-- block's 140 ms of cutting, ClipByBox2D 2 ms; the pieces are the same up to slivers of
-- 1e-7 m2 at the block's edge, a 10^-10 of a pixel at zoom 12); a shape covering the whole
-- block covers all its tiles without any cut. Otherwise the boxes of its parts of at most
-- 256 vertices (ST_Subdivide: a huge polygon is not clipped to every tile of its box) give
-- the tiles to clip it to, and a piece that is the whole tile (its area is the tile's) is
-- recorded as covering it, once, without geometry. No ST_Intersects or ST_Covers per part
-- and tile: a tile the shape misses clips to nothing and is dropped, one it covers clips
-- to the whole tile (the two tests took 130 of a zoom-14 block's 225 ms; the pieces are the
-- same).
WITH block AS (
    SELECT ST_TileEnvelope(%(z)s::int - %(k)s::int, %(bx)s::int, %(by)s::int,
                           margin => %(margin)s / 2 ^ %(k)s::int) AS env
), shapes AS MATERIALIZED (
    SELECT s.region_id, c.whole, CASE WHEN NOT c.whole THEN ST_ClipByBox2D(s.geom, b.env) END AS geom
    FROM region_shapes s CROSS JOIN block b,
         LATERAL (SELECT ST_Covers(s.geom, b.env) AS whole OFFSET 0) c  -- once, see below
    WHERE s.zoom = %(z)s::int AND s.geom && b.env AND ST_Intersects(s.geom, b.env)
), touched AS (
    SELECT DISTINCT s.region_id, tx, ty
    FROM shapes s, ST_Subdivide(s.geom, 256) AS part,
         generate_series(
             greatest(%(x0)s::int, floor((ST_XMin(part) - %(pad)s + 20037508.342789244) / %(size)s)::int),
             least(%(x1)s::int, floor((ST_XMax(part) + %(pad)s + 20037508.342789244) / %(size)s)::int)
         ) AS tx,
         generate_series(
             greatest(%(y0)s::int, floor((20037508.342789244 - ST_YMax(part) - %(pad)s) / %(size)s)::int),
             least(%(y1)s::int, floor((20037508.342789244 - ST_YMin(part) + %(pad)s) / %(size)s)::int)
         ) AS ty
    WHERE NOT s.whole AND NOT ST_IsEmpty(s.geom)
), clipped AS (
    SELECT t.region_id, t.tx, t.ty, c.geom, ST_Area(c.geom) >= %(tile_area)s * (1 - 1e-9) AS covers
    FROM touched t JOIN shapes s USING (region_id),
         -- OFFSET 0: evaluated once a (region, tile), not pulled up into the query, where
         -- each use of c.geom (the filter, the area test, the piece) clipped again
         LATERAL (SELECT ST_CollectionExtract(ST_ClipByBox2D(
             s.geom, ST_TileEnvelope(%(z)s::int, t.tx, t.ty, margin => %(margin)s)), 3) AS geom
                  OFFSET 0) c
    WHERE NOT ST_IsEmpty(c.geom)
), pieces AS MATERIALIZED (
    SELECT tx AS x, ty AS y, region_id, covers, CASE WHEN NOT covers THEN geom END AS geom
    FROM clipped
    UNION ALL
    SELECT tx, ty, s.region_id, true, NULL
    FROM shapes s, generate_series(%(x0)s::int, %(x1)s::int) tx, generate_series(%(y0)s::int, %(y1)s::int) ty
    WHERE s.whole
), regs AS MATERIALIZED (
    -- a region's text around its geometry, once per block rather than once per piece
    SELECT r.id, r.key, r.type, r.area_m2,
           '{"type":"Feature","id":' || to_json(r.key)::text || ',"geometry":' AS head,
           ',"properties":{"uid":' || to_json(r.uid)::text
           || ',"type":' || to_json(r.type)::text
           || ',"name":' || coalesce(to_json(r.name)::text, 'null')
           || ',"parents":' || to_json(r.parents)::text AS tail
    FROM regions r WHERE r.id IN (SELECT region_id FROM shapes)
), covered AS (
    -- the geometry of a covering piece is its tile with the margin: written once per tile
    SELECT x, y, ST_AsGeoJSON(ST_ForcePolygonCCW(ST_Transform(
               ST_TileEnvelope(%(z)s::int, x, y, margin => %(margin)s), 4326)), %(digits)s) AS json
    FROM (SELECT DISTINCT x, y FROM pieces WHERE covers) t
), new_regions AS (
    -- A tile's regions in one row (tile_regions), larger regions first: each piece's
    -- geometry (NULL when it covers the tile) and its GeoJSON text (RFC 7946: WGS84,
    -- exterior rings counterclockwise, coordinates to %(digits)s decimals, a quarter
    -- pixel), left open after "parents" for the statistics merged when served.
    INSERT INTO tile_regions (z, x, y, region_ids, geoms, features)
    SELECT %(z)s::int, f.x, f.y, array_agg(f.region_id ORDER BY f.area_m2 DESC, f.region_id),
           array_agg(f.geom ORDER BY f.area_m2 DESC, f.region_id),
           array_agg(f.feature ORDER BY f.area_m2 DESC, f.region_id)
    FROM (SELECT p.x, p.y, p.region_id, p.geom, r.area_m2,
                 r.head || CASE WHEN p.covers THEN c.json ELSE ST_AsGeoJSON(ST_ForcePolygonCCW(
                     ST_Transform(p.geom, 4326)), %(digits)s) END || r.tail AS feature
          FROM pieces p JOIN regs r ON r.id = p.region_id
               LEFT JOIN covered c ON p.covers AND c.x = p.x AND c.y = p.y) f
    GROUP BY f.x, f.y
)
SELECT p.x, p.y, r.key, r.type,
       CASE WHEN NOT p.covers THEN ST_AsBinary(ST_Affine(
           p.geom, 256 / %(size)s, 0, 0, -256 / %(size)s,
           (2 ^ (%(z)s::int - 1) - p.x) * 256, (2 ^ (%(z)s::int - 1) - p.y) * 256)) END AS wkb
FROM pieces p JOIN regs r ON r.id = p.region_id
ORDER BY p.y, p.x, r.area_m2 DESC, r.id;

-- name: copy_tiles
COPY tiles (z, x, y, utfgrids) FROM STDIN

-- name: tile
SELECT body FROM renderer.maptiles_tile_body(%(z)s::int, %(x)s::int, %(y)s::int);

-- name: tile_bytes
-- The same body as UTF-8 bytes, fetched in binary: the web route passes them on as they
-- come, with no decoding to text and encoding back.
SELECT convert_to(body, 'UTF8') AS body
FROM renderer.maptiles_tile_body(%(z)s::int, %(x)s::int, %(y)s::int);

-- name: tile_list
SELECT z, x, y FROM tiles WHERE z BETWEEN %(min_zoom)s::int AND %(max_zoom)s::int ORDER BY z, x, y;

-- name: delete_zooms
-- Everything rendered at these zooms (a render replaces it).
WITH regions AS (
    DELETE FROM tile_regions WHERE z BETWEEN %(min_zoom)s::int AND %(max_zoom)s::int
), shapes AS (
    DELETE FROM region_shapes WHERE zoom BETWEEN %(min_zoom)s::int AND %(max_zoom)s::int
)
DELETE FROM tiles WHERE z BETWEEN %(min_zoom)s::int AND %(max_zoom)s::int;

-- name: arc_count
SELECT count(*) AS n FROM region_arcs;

-- name: tiles_per_zoom
SELECT z, count(*) AS tiles FROM tiles GROUP BY z ORDER BY z;

-- name: upsert_stats
-- One region's statistics (a later import replaces them); no tile is touched.
INSERT INTO region_stats (type, uid, members) VALUES (%(type)s, %(uid)s, %(members)s)
ON CONFLICT (type, uid) DO UPDATE SET members = EXCLUDED.members, imported_at = now();

-- name: region_areas
SELECT id, type, uid, area_m2 FROM regions ORDER BY id;

-- name: export_batch
-- Tiles in the order given (n, their place in the arrays): their regions' ids and feature
-- text as stored (none for a tile without regions) and their UTFGrids. The client merges
-- the statistics (renderer/maptiles/export.py, body: maptiles_tile_body's bytes) and
-- encodes the Mapbox Vector Tiles from export_pieces (renderer/maptiles/mvt.py).
SELECT k.n, r.region_ids, r.features, t.utfgrids
FROM unnest(%(zs)s::int[], %(xs)s::int[], %(ys)s::int[]) WITH ORDINALITY AS k(z, x, y, n)
JOIN tiles t ON t.z = k.z AND t.x = k.x AND t.y = k.y
LEFT JOIN tile_regions r ON r.z = k.z AND r.x = k.x AND r.y = k.y
ORDER BY k.n;

-- name: export_pieces
-- The pieces of the tiles given, for the client's MVT encoder: one row a tile (n, its
-- place in the arrays; none for a tile without regions), its regions larger first and
-- their pieces' WKB in Web Mercator metres (a covering piece as its tile with the margin).
SELECT k.n, t.region_ids,
       ARRAY(SELECT ST_AsBinary(coalesce(p.geom, ST_TileEnvelope(k.z, k.x, k.y,
                                                                 margin => %(margin)s)))
             FROM unnest(t.geoms) WITH ORDINALITY AS p(geom, i) ORDER BY p.i) AS wkbs
FROM unnest(%(zs)s::int[], %(xs)s::int[], %(ys)s::int[]) WITH ORDINALITY AS k(z, x, y, n)
JOIN tile_regions t ON t.z = k.z AND t.x = k.x AND t.y = k.y
ORDER BY k.n;

-- name: export_regions
-- The MVT properties of these regions (read once per export): the statistics members as
-- stored, turned into tags as ST_AsMVT turns a jsonb column (renderer/maptiles/mvt.py).
SELECT r.id, r.key, r.uid, r.type, r.name, array_to_string(r.parents, ',') AS parents,
       s.members
FROM regions r LEFT JOIN region_stats s ON s.type = r.type AND s.uid = r.uid
WHERE r.id = ANY(%(ids)s::int[]);

-- name: export_mvt_sql
-- The same tiles' MVT made by PostGIS (ST_AsMVT): what the export wrote before its own
-- encoder, kept as the reference the tests compare that encoder with (layer "regions",
-- extent 4096, a 64-unit buffer; statistics as attributes), larger regions first.
SELECT k.z, k.x, k.y,
       (SELECT ST_AsMVT(m, 'regions', 4096, 'geom') FROM (
            SELECT ST_AsMVTGeom(coalesce(p.geom, ST_TileEnvelope(p.z, p.x, p.y,
                                margin => %(margin)s)),
                                ST_TileEnvelope(p.z, p.x, p.y), 4096, 64, true) AS geom,
                   r.key, r.uid, r.type, r.name, array_to_string(r.parents, ',') AS parents,
                   CASE WHEN s.members <> '' THEN ('{' || s.members || '}')::jsonb END AS stats
            FROM (SELECT t.z, t.x, t.y, u.region_id, u.geom, u.i FROM tile_regions t,
                      unnest(t.region_ids, t.geoms) WITH ORDINALITY AS u(region_id, geom, i)
                  WHERE t.z = k.z AND t.x = k.x AND t.y = k.y) p
            JOIN regions r ON r.id = p.region_id
            LEFT JOIN region_stats s ON s.type = r.type AND s.uid = r.uid
            ORDER BY p.i) m) AS mvt
FROM unnest(%(zs)s::int[], %(xs)s::int[], %(ys)s::int[]) WITH ORDINALITY AS k(z, x, y, n)
ORDER BY k.n;

-- name: export_bounds
SELECT ST_XMin(e) AS west, ST_YMin(e) AS south, ST_XMax(e) AS east, ST_YMax(e) AS north
FROM (SELECT ST_Extent(geom) AS e FROM regions) b;
