"""The schema: migrations build exactly the canonical definitions, downgrade to nothing,
apply nothing when current, and print DDL that builds the same for a DBA."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from renderer import db, schema
from renderer.errors import MissingDependency
from renderer.localdb import find_bindir
from renderer.resources import SQL_DIR, migrations_head, named_sections
from tests.conftest import _admin, with_database

_BLOCK = re.compile(r"^-- Name: (.+?); Type: (.+?); Schema: (.+?); Owner: .*$", re.MULTILINE)
IGNORED = {"alembic_version", "alembic_version alembic_version_pkc"}


def catalog(url: str) -> dict[str, str]:
    """The schema of a database as ``pg_dump --schema-only`` prints it, one entry per object
    ("name; type; schema" -> its DDL), every run of whitespace collapsed. Alembic's own
    table is left out: a database built without migrations has none."""
    dump = subprocess.run([str(find_bindir() / "pg_dump"), "--schema-only", "--no-owner",
                           url], capture_output=True, text=True, check=True).stdout
    parts = _BLOCK.split(dump)
    objects: dict[str, str] = {}
    for name, kind, where, body in zip(parts[1::4], parts[2::4], parts[3::4], parts[4::4],
                                       strict=True):
        if name in IGNORED:
            continue
        ddl = "\n".join(line for line in body.splitlines()
                        if line.strip() and not line.startswith(("--", "\\")))
        objects[f"{name}; {kind}; {where}"] = " ".join(ddl.split())
    return objects


def assert_same(found: dict[str, str], expected: dict[str, str]) -> None:
    """Equal catalogs, or the names of the objects that differ (readable, unlike a diff of
    two dicts of a hundred long strings)."""
    missing = sorted(expected.keys() - found.keys())
    extra = sorted(found.keys() - expected.keys())
    changed = sorted(k for k in found.keys() & expected.keys() if found[k] != expected[k])
    assert (missing, extra, changed) == ([], [], []), (
        f"missing {missing}, extra {extra}, changed "
        + "; ".join(f"{k}:\n  found    {found[k]}\n  expected {expected[k]}" for k in changed))


@pytest.fixture
def empty_database(server_url: str) -> Iterator[Callable[[], str]]:
    """Makes brand-new empty databases (as CREATE DATABASE gives them); drops them after."""
    made: list[str] = []

    def make() -> str:
        name = f"renderer_schema_{uuid.uuid4().hex[:10]}"
        with _admin(server_url) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        made.append(name)
        return with_database(server_url, name)

    yield make
    with _admin(server_url) as conn:
        for name in made:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_template_is_at_head(database_url: str) -> None:
    assert schema.current(database_url) == schema.head()
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT postgis_lib_version()").fetchone()
        assert row is not None and row[0].startswith("3")


def test_migrations_build_the_canonical_schema(empty_database: Callable[[], str]) -> None:
    """A database migrated from empty to head, one built from sql/schema/ directly and one
    built by psql from the printed DDL have the same catalog: tables, columns, types,
    defaults, constraints, indexes, function signatures and bodies, triggers, views,
    sequences, comments."""
    migrated, canonical, printed = empty_database(), empty_database(), empty_database()
    schema.upgrade(migrated)
    assert schema.current(migrated) == schema.head()
    schema.create_all(canonical)
    script = schema.sql_script()
    subprocess.run([str(find_bindir() / "psql"), "--quiet", "--no-psqlrc",
                    "--set", "ON_ERROR_STOP=1", printed], input=script, text=True,
                   capture_output=True, check=True)
    expected = catalog(canonical)
    assert len([k for k in expected if "; FUNCTION;" in k]) > 50  # the dump was parsed
    assert_same(catalog(migrated), expected)
    assert_same(catalog(printed), expected)


def test_downgrade_to_base_and_upgrade_again(empty_database: Callable[[], str]) -> None:
    url = empty_database()
    nothing = catalog(url)
    schema.upgrade(url)
    at_head = catalog(url)
    schema.downgrade(url, "base")
    assert schema.current(url) is None
    assert_same(catalog(url), nothing)
    schema.upgrade(url)
    assert schema.current(url) == schema.head()
    assert_same(catalog(url), at_head)


DDL_LOG = """
CREATE TABLE public.test_ddl_log (tag text, at timestamptz DEFAULT clock_timestamp());
CREATE FUNCTION public.test_log_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.test_ddl_log (tag) VALUES (tg_tag);
END $$;
CREATE EVENT TRIGGER test_log_ddl ON ddl_command_start EXECUTE FUNCTION public.test_log_ddl();
"""


def test_ensure_current_is_a_no_op_when_current(fresh_database_url: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """At head, ensure_current starts no Alembic upgrade, runs no DDL at all (an event
    trigger logs every DDL command) and leaves alembic_version's row untouched; behind head,
    the same checks see it work."""
    url = fresh_database_url
    upgrades: list[str] = []
    real_upgrade = schema.command.upgrade

    def upgrade(cfg: object, revision: str, **kwargs: object) -> None:
        upgrades.append(revision)
        real_upgrade(cfg, revision, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(schema.command, "upgrade", upgrade)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(DDL_LOG)

        def logged() -> list[str]:
            return [r[0] for r in conn.execute("SELECT tag FROM test_ddl_log ORDER BY at")]

        def version_row() -> tuple[str, str]:
            row = conn.execute("SELECT version_num, xmin::text FROM alembic_version").fetchone()
            assert row is not None
            return row

        before = version_row()
        schema.ensure_current(url)
        assert upgrades == []
        assert logged() == []
        assert version_row() == before

        # the same check, behind head: it sees the migration's DDL
        schema.downgrade(url, "0010")
        conn.execute("DELETE FROM test_ddl_log")
        schema.ensure_current(url)
        assert upgrades == ["head"]
        assert "CREATE FUNCTION" in logged()
        assert version_row()[0] == schema.head()


def test_sql_script_has_every_migration() -> None:
    ddl = schema.sql_script()
    assert "CREATE EXTENSION IF NOT EXISTS postgis" in ddl
    assert "%%" not in ddl  # printed for psql, not escaped for a driver
    for path in schema.migration_files():
        revision = path.name.split("_")[0]
        assert f"-> {revision}" in ddl


def test_missing_extension_names_the_install_command(database_url: str) -> None:
    with pytest.raises(MissingDependency, match=r"apt-get install postgresql-15-postgis-3"):
        schema.check_postgis(database_url, extension="postgis_missing_for_test")


# -- the files -------------------------------------------------------------------------------

def test_named_statement_files_parse() -> None:
    for path in sorted(SQL_DIR.glob("*.sql")):
        statements = db._queries(path.stem)
        assert statements, path
        assert all(statements.values()), path


def test_every_canonical_name_is_unique_across_the_files() -> None:
    seen: dict[str, str] = {}
    for path in sorted(schema.SCHEMA_DIR.glob("*.sql")):
        assert path.stem in schema.AREAS, f"{path.name} is not in schema.AREAS"
        for name in named_sections(path):
            assert name not in seen, f"{name} in {seen.get(name)} and {path.name}"
            seen[name] = path.name
    assert sorted(seen) == sorted(schema.names())


def test_every_canonical_definition_is_applied_by_a_migration() -> None:
    """A definition added to sql/schema/ needs a migration that applies it by name."""
    applied: set[str] = set()
    for path in schema.migration_files():
        spec = importlib.util.spec_from_file_location(f"migration_{path.stem}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        applied |= set(getattr(module, "NAMES", []))
    assert set(schema.names()) - applied == set()


def test_a_retired_definition_serves_the_revisions_it_was_current_at(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "queue.sql").write_text(
        "-- name: queue_claim@0010\nSELECT 10;\n\n-- name: queue_claim@0012\nSELECT 12;\n")
    monkeypatch.setattr(schema, "RETIRED_DIR", tmp_path)
    schema._retired.cache_clear()
    try:
        current = schema.definition("queue_claim")
        assert schema.definition("queue_claim", as_of="0009") == "SELECT 10;"
        assert schema.definition("queue_claim", as_of="0010") == "SELECT 10;"
        assert schema.definition("queue_claim", as_of="0011") == "SELECT 12;"
        assert schema.definition("queue_claim", as_of="0013") == current
        with pytest.raises(KeyError, match="no_such"):
            schema.definition("no_such")
    finally:
        schema._retired.cache_clear()


def test_the_files_head_is_alembics() -> None:
    """The head a command checks against without alembic is the one alembic computes."""
    assert migrations_head() == schema.head()


def test_a_command_at_head_loads_no_alembic(fresh_database_url: str,
                                            empty_database: Callable[[], str]) -> None:
    """A database at head is checked by one query (alembic and SQLAlchemy, 0.4 CPU s of
    every command's start-up, stay unloaded); a database behind is migrated to head."""
    behind = empty_database()
    probe = ("import sys; from renderer.db import Database; "
             "Database(sys.argv[1]).ensure_schema(); "
             "print('alembic' in sys.modules, 'sqlalchemy' in sys.modules)")
    at_head = subprocess.run([sys.executable, "-c", probe, fresh_database_url],
                             capture_output=True, text=True, check=True)
    assert at_head.stdout.split() == ["False", "False"]
    migrated = subprocess.run([sys.executable, "-c", probe, behind],
                              capture_output=True, text=True, check=True)
    assert migrated.stdout.split() == ["True", "True"]
    assert schema.current(behind) == schema.head()
