"""The schema: its canonical definitions, the migrations that apply them, their DDL for a DBA.

The current definition of every table, index, view, trigger and function lives once, in
``sql/schema/<area>.sql``, under a ``-- name: x`` header (the same parser as the named
statements of ``sql/``). Migrations in ``migrations/versions`` build and change the schema by
loading those definitions by name (:func:`apply`), never by copying them; a test holds a
database migrated to head equal, catalog for catalog, to one built from the files
(:func:`create_all`). ``sql/schema/README.md`` has the rules for changing a definition.

Migrations run in one transaction under a transaction-scoped advisory lock, so two
processes starting on a new database at once apply them once, and so that they run through
PgBouncer in transaction pooling as well (a session lock would be taken on one server session
and released on another). Nothing is created at run time except partitions made on demand.
"""

from __future__ import annotations

import functools
import io
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from renderer.config import load, mask_url
from renderer.errors import DatabaseError, DatabaseUnavailable, MissingDependency
from renderer.resources import MIGRATIONS_DIR as MIGRATIONS
from renderer.resources import SCHEMA_DIR, named_sections

MIGRATION_LOCK = 7_301_734_221  # pg_advisory_xact_lock key held by the migrating transaction

# The areas in build order: a definition may use what an earlier area or an earlier
# definition of its own area defines.
# A SQL-language function is checked against what exists when it is created, so a file comes
# after the files it calls into: queue_finish's one-item wrapper calls the previous
# queue_complete, and the previous status calls queue_counts' queue_oldest_pending.
AREAS = ("base", "queue", "queue_enqueue", "queue_claim", "queue_previous_enqueue",
         "queue_previous_claim", "queue_finish", "queue_counts", "queue_admin",
         "queue_previous_admin", "schedules", "traffic", "sensors", "web", "maptiles", "tracks",
         "ops")
RETIRED_DIR = SCHEMA_DIR / "retired"

# -- the canonical definitions ---------------------------------------------------------------


@functools.cache
def canonical(area: str) -> dict[str, str]:
    """The definitions of ``sql/schema/<area>.sql`` by name, in file order."""
    return named_sections(SCHEMA_DIR / f"{area}.sql")


@functools.cache
def _retired() -> dict[str, dict[str, str]]:
    """Retired definitions by name, then by the last revision they were current at."""
    found: dict[str, dict[str, str]] = {}
    for path in sorted(RETIRED_DIR.glob("*.sql")):
        for label, sql in named_sections(path).items():
            name, _, upto = label.partition("@")
            if not upto:
                raise ValueError(f"{path}: retired {name!r} needs @<revision>")
            found.setdefault(name, {})[upto] = sql
    return found


def names(areas: Iterable[str] = AREAS) -> list[str]:
    """Every canonical name of the given areas, in build order."""
    return [name for area in areas for name in canonical(area)]


def definition(name: str, as_of: str | None = None) -> str:
    """The text of ``name`` as it was at revision ``as_of`` (None: as it is now).

    A definition replaced or dropped by a migration moves to ``sql/schema/retired/`` as
    ``name@R``, R the last revision it was current at; the text for ``as_of`` is the retired
    one with the smallest R >= ``as_of``, else the canonical one. Revisions are 4-digit
    numbers, so they compare as strings.
    """
    if as_of is not None:
        older = sorted(r for r in _retired().get(name, {}) if r >= as_of)
        if older:
            return _retired()[name][older[0]]
    for area in AREAS:
        if name in canonical(area):
            return canonical(area)[name]
    raise KeyError(f"no schema definition {name!r} in sql/schema/")


_COLON_WORD = re.compile(r"(?<![:\w\\]):(?=\w)")


def apply(op: Any, names: Iterable[str], as_of: str) -> None:
    """Run the definitions ``names`` as they were at revision ``as_of`` (a migration passes
    its own ``revision``), in the order given, through Alembic's ``op``.

    Alembic hands SQL to SQLAlchemy's ``text()``, which reads ``:word`` as a parameter;
    those colons are escaped here so that definitions are plain PostgreSQL.
    """
    for name in names:
        op.execute(text(_COLON_WORD.sub(r"\\:", definition(name, as_of))))


_RELATION = re.compile(r"^CREATE (TABLE|VIEW) (\w+)", re.MULTILINE)


def relations(names: Iterable[str], as_of: str) -> list[tuple[str, str]]:
    """(``TABLE`` or ``VIEW``, name) of the relations among ``names``, for a downgrade."""
    found = (_RELATION.search(definition(name, as_of)) for name in names)
    return [(m.group(1), m.group(2)) for m in found if m]


# -- migrations ------------------------------------------------------------------------------


def sqlalchemy_url(url: str) -> str:
    """psycopg URL -> SQLAlchemy URL using the psycopg 3 dialect."""
    for scheme in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url[len(scheme):]
    raise DatabaseError(f"not a PostgreSQL URL: {url.split(':')[0]}://...",
                        "use postgresql://user:password@host/database")


def _unavailable(url: str, exc: BaseException) -> DatabaseUnavailable:
    """One line naming the server (password masked) and the driver's first line."""
    detail = str(exc).strip()
    reason = detail.splitlines()[0] if detail else type(exc).__name__
    return DatabaseUnavailable(
        f"cannot connect to {mask_url(url)}: {reason}",
        "check RENDERER_DATABASE_URL, or unset it to use the embedded database",
    )


def alembic_config(url: str | None = None, output: io.StringIO | None = None) -> Config:
    cfg = Config(output_buffer=output) if output is not None else Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if url is not None:
        cfg.attributes["url"] = sqlalchemy_url(url)
        cfg.attributes["connect_args"] = _connect_args()
    return cfg


def _connect_args() -> dict[str, Any]:
    """Behind PgBouncer (RENDERER_POOLER), no server-side prepared statements: what
    renderer.db.session_options says (not imported: the connector imports this module)."""
    return {"prepare_threshold": None} if load().pooler == "pgbouncer" else {}


def _engine(url: str) -> Any:
    """A one-connection engine (no pool of its own: PgBouncer or the server pools)."""
    return create_engine(sqlalchemy_url(url), poolclass=NullPool, connect_args=_connect_args())


def head() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current(url: str) -> str | None:
    """The revision the database is at, None when it was never migrated."""
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except OperationalError as exc:
        raise _unavailable(url, exc.orig or exc) from exc
    finally:
        engine.dispose()


def check_postgis(url: str, extension: str = "postgis") -> None:
    """Fail with the install command when the server lacks the PostGIS extension."""
    engine = _engine(url)
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


def create_all(url: str) -> None:
    """Build the whole current schema from the canonical files, without migrations (what a
    test compares a migrated database with; such a database has no ``alembic_version``)."""
    check_postgis(url)
    engine = _engine(url)
    try:
        with engine.begin() as conn:
            raw = conn.execution_options(no_parameters=True)  # percent signs are SQL's
            for name in names():
                raw.exec_driver_sql(definition(name))
    finally:
        engine.dispose()


def sql_script(from_revision: str | None = None) -> str:
    """The DDL of all migrations (or those after ``from_revision``) for psql."""
    out = io.StringIO()
    cfg = alembic_config("postgresql://offline/renderer", output=out)
    command.upgrade(cfg, f"{from_revision}:head" if from_revision else "head", sql=True)
    return out.getvalue()


def migration_files() -> list[Path]:
    return sorted((MIGRATIONS / "versions").glob("*.py"))
