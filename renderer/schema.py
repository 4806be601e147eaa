"""Alembic migrations: apply them, check them, print their DDL for a DBA.

Every table comes through a migration in ``migrations/versions``; nothing is created at run
time except partitions made on demand. Migrations run under an advisory lock, so two
processes starting on a new database at once apply them once.
"""

from __future__ import annotations

import io
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from renderer.db import ROOT, connection_error
from renderer.errors import DatabaseError, MissingDependency

MIGRATIONS = ROOT / "migrations"
MIGRATION_LOCK = 7_301_734_221  # pg_advisory_lock key held while migrating


def sqlalchemy_url(url: str) -> str:
    """psycopg URL -> SQLAlchemy URL using the psycopg 3 dialect."""
    for scheme in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url[len(scheme):]
    raise DatabaseError(f"not a PostgreSQL URL: {url.split(':')[0]}://...",
                        "use postgresql://user:password@host/database")


def alembic_config(url: str | None = None, output: io.StringIO | None = None) -> Config:
    cfg = Config(output_buffer=output) if output is not None else Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if url is not None:
        cfg.attributes["url"] = sqlalchemy_url(url)
    return cfg


def head() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current(url: str) -> str | None:
    """The revision the database is at, None when it was never migrated."""
    engine = create_engine(sqlalchemy_url(url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except OperationalError as exc:
        raise connection_error(url, exc.orig or exc) from exc
    finally:
        engine.dispose()


def check_postgis(url: str, extension: str = "postgis") -> None:
    """Fail with the install command when the server lacks the PostGIS extension."""
    engine = create_engine(sqlalchemy_url(url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            ok = conn.execute(
                text("SELECT 1 FROM pg_available_extensions WHERE name = :name"),
                {"name": extension},
            ).scalar()
            version = conn.execute(text("SHOW server_version_num")).scalar()
    finally:
        engine.dispose()
    if not ok:
        major = int(version or 150000) // 10000
        raise MissingDependency(
            f"PostGIS is not installed for PostgreSQL {major}",
            f"run scripts/install-system-deps (apt-get install postgresql-{major}-postgis-3)",
        )


def upgrade(url: str, revision: str = "head") -> None:
    check_postgis(url)
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


def ensure_current(url: str) -> None:
    """Migrate when the database is behind; cheap when it is current."""
    if current(url) != head():
        upgrade(url)


def sql_script(from_revision: str | None = None) -> str:
    """The DDL of all migrations (or those after ``from_revision``) for psql."""
    out = io.StringIO()
    cfg = alembic_config("postgresql://offline/renderer", output=out)
    command.upgrade(cfg, f"{from_revision}:head" if from_revision else "head", sql=True)
    return out.getvalue()


def migration_files() -> list[Path]:
    return sorted((MIGRATIONS / "versions").glob("*.py"))
