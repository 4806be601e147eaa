"""Migrations: applied once, reversible, printable for a DBA."""

from __future__ import annotations

import psycopg
import pytest

from renderer import schema
from renderer.errors import MissingDependency


def _tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {r[0] for r in conn.execute(
            "SELECT schemaname || '.' || tablename FROM pg_tables"
            " WHERE schemaname IN ('public', 'renderer')")}


def test_template_is_at_head(database_url: str) -> None:
    assert schema.current(database_url) == schema.head()
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT postgis_lib_version()").fetchone()[0].startswith("3")


def test_downgrade_and_upgrade_reproduce_the_schema(fresh_database_url: str) -> None:
    before = _tables(fresh_database_url)
    schema.downgrade(fresh_database_url, "0001")
    assert schema.current(fresh_database_url) == "0001"
    schema.upgrade(fresh_database_url)
    assert schema.current(fresh_database_url) == schema.head()
    assert _tables(fresh_database_url) == before


def test_ensure_current_is_a_no_op_when_current(database_url: str) -> None:
    schema.ensure_current(database_url)
    assert schema.current(database_url) == schema.head()


def test_sql_script_has_every_migration() -> None:
    ddl = schema.sql_script()
    assert "CREATE EXTENSION IF NOT EXISTS postgis" in ddl
    for path in schema.migration_files():
        revision = path.name.split("_")[0]
        assert f"-> {revision}" in ddl


def test_missing_extension_names_the_install_command(database_url: str) -> None:
    with pytest.raises(MissingDependency, match=r"apt-get install postgresql-15-postgis-3"):
        schema.check_postgis(database_url, extension="postgis_missing_for_test")
