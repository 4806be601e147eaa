"""The connector: the only module that opens PostgreSQL connections and loads SQL.

SQL lives in ``sql/<area>.sql`` as named statements::

    -- name: claim_batch
    -- Claim up to %(limit)s claimable items of the given kinds.
    SELECT ...;

:func:`query` returns a statement by ``"area.name"``; files are parsed once per process.
Driver errors are wrapped into :class:`~renderer.errors.DatabaseError` here, so callers
never see psycopg's exception classes for connection problems.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from renderer import config
from renderer.errors import DatabaseError

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
SQL_DIR = ROOT / "sql"
_NAME = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


@functools.cache
def _queries(area: str) -> dict[str, str]:
    path = SQL_DIR / f"{area}.sql"
    text = path.read_text()
    parts = _NAME.split(text)
    statements: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in statements:
            raise ValueError(f"{path}: statement {name!r} defined twice")
        statements[name] = body.strip()
    return statements


def query(ref: str) -> str:
    """The statement named ``"area.name"`` from ``sql/area.sql``."""
    area, _, name = ref.partition(".")
    try:
        return _queries(area)[name]
    except (KeyError, FileNotFoundError) as exc:
        raise KeyError(f"no statement {name!r} in sql/{area}.sql") from exc


def resolve_url(settings: config.Settings | None = None) -> str:
    """The database URL: the configured one, or the embedded cluster's (started if needed)."""
    settings = settings or config.load()
    if settings.database_url:
        return settings.database_url
    from renderer.localdb import Cluster

    return Cluster(settings.home, settings.db_port).ensure_started()


CONNECT_TIMEOUT = 10  # seconds: an unreachable server fails a command, not hangs it


def connect(url: str, *, autocommit: bool = False, **kwargs: Any) -> psycopg.Connection[Any]:
    """A connection returning rows as dicts; connection failures become DatabaseError."""
    try:
        return psycopg.connect(
            url, autocommit=autocommit, row_factory=dict_row, connect_timeout=CONNECT_TIMEOUT,
            application_name="renderer", **kwargs
        )
    except psycopg.OperationalError as exc:
        raise connection_error(url, exc) from exc
    except psycopg.ProgrammingError as exc:
        raise DatabaseError(
            f"invalid database URL: {exc}", "fix RENDERER_DATABASE_URL"
        ) from exc


def connection_error(url: str, exc: BaseException) -> DatabaseError:
    """One line naming the server (password masked) and the driver's first line."""
    text = str(exc).strip()
    reason = text.splitlines()[0] if text else type(exc).__name__
    return DatabaseError(
        f"cannot connect to {config.mask_url(url)}: {reason}",
        "check RENDERER_DATABASE_URL, or unset it to use the embedded database",
    )


def pool(url: str, *, name: str, max_size: int = 8) -> ConnectionPool:
    """A connection pool (closed until opened) whose connections are made as :func:`connect`
    makes them, for long-running services that serve many short requests."""
    return ConnectionPool(url, min_size=1, max_size=max_size, open=False, name=name,
                          kwargs={"row_factory": dict_row, "application_name": name,
                                  "connect_timeout": CONNECT_TIMEOUT})


@contextmanager
def transaction(url: str) -> Iterator[psycopg.Connection[Any]]:
    """A connection inside one transaction, committed on success and closed after."""
    with connect(url) as conn, conn.transaction():
        yield conn


class Database:
    """What a command needs to reach PostgreSQL: a URL, the schema made current once."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._checked = False

    @classmethod
    def from_settings(cls, settings: config.Settings | None = None,
                      migrate: bool = True) -> Database:
        db = cls(resolve_url(settings))
        if migrate:
            db.ensure_schema()
        return db

    def ensure_schema(self) -> None:
        """Apply pending migrations (first use of a new database)."""
        if self._checked:
            return
        from renderer import schema

        schema.ensure_current(self.url)
        self._checked = True

    def connect(self, **kwargs: Any) -> psycopg.Connection[Any]:
        return connect(self.url, **kwargs)

    def execute(self, ref: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run one named statement in its own transaction and return its rows."""
        with self.connect() as conn:
            cur = conn.execute(query(ref), params or {})
            rows = cur.fetchall() if cur.description else []
            conn.commit()
            return rows
