-- Statements the connector runs about the migrations themselves.

-- name: revision
-- The revision alembic stored, every row joined (a database on two heads never reads as
-- one); a database never migrated has no such table, which the caller reads as "not at head".
SELECT string_agg(version_num, ' ' ORDER BY version_num) AS revision FROM alembic_version;
