-- The base of the schema: PostGIS, and the renderer schema that holds the psql-callable
-- functions (the queue's verbs, the bulk steps). Tables are created unqualified, on the
-- search path of the migrating role.

-- name: postgis
CREATE EXTENSION IF NOT EXISTS postgis;

-- name: renderer_schema
CREATE SCHEMA IF NOT EXISTS renderer;
