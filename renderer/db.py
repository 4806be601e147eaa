"""The connector: the only module that opens PostgreSQL connections and loads SQL.

SQL lives in ``sql/<area>.sql`` as named statements::

    -- name: claim_batch
    -- Claim up to %(limit)s claimable items of the given kinds.
    SELECT ...;

:func:`query` returns a statement by ``"area.name"``; files are parsed once per process.
This is the one library module that imports the driver. Its connections and cursors
translate every driver error into the ``DatabaseError`` branch of :mod:`renderer.errors` by
SQLSTATE (:func:`translate`), so the rest of the package catches ``AlreadyExists``,
``DatabaseUnavailable``, ``ConstraintViolation`` (with ``constraint``) and the like, never
psycopg's classes. What other modules need of the driver is re-exported here: the
:class:`Connection` type, :class:`Jsonb`, the row factories and :mod:`psycopg.sql`.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.adapt import Dumper
from psycopg.postgres import types as pg_types
from psycopg.rows import dict_row, tuple_row
from psycopg.types.json import Jsonb, set_json_loads
from psycopg_pool import ConnectionPool, PoolTimeout

from renderer import config
from renderer.errors import (
    AlreadyExists,
    ConstraintViolation,
    DatabaseError,
    DatabaseUnavailable,
    InvalidValue,
    LockNotAvailable,
    SchemaMismatch,
    StatementCanceled,
    TransactionConflict,
)
from renderer.resources import SQL_DIR, migrations_head, named_sections

__all__ = ["CONNECT_TIMEOUT", "Connection", "Database", "IdArray", "Jsonb", "Pool", "PoolTimeout",
           "connect", "connection_error", "dict_row", "one", "pgbouncer_config", "pool",
           "pooled", "query", "resolve_url", "scalar", "session_options", "sql", "transaction",
           "translate",
           "tuple_row"]

log = logging.getLogger(__name__)


@functools.cache
def _queries(area: str) -> dict[str, str]:
    return named_sections(SQL_DIR / f"{area}.sql")


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

    return Cluster.from_settings(settings).ensure_started()


def pooled(settings: config.Settings | None = None) -> bool:
    """True when connections go through PgBouncer in transaction pooling
    (``RENDERER_POOLER=pgbouncer``): each transaction may run on another server session, so
    nothing may rely on session state: no server-side prepared statements (PgBouncer 1.18
    cannot keep them), no LISTEN (workers poll), no session advisory locks or temporary
    tables kept across transactions, server-side cursors only inside a transaction."""
    return (settings or config.load()).pooler == "pgbouncer"


def session_options(is_pooled: bool) -> dict[str, Any]:
    """Driver options for a connection: behind a pooler, never prepare statements on the
    server (psycopg prepares one run five times, on whichever server session that was)."""
    return {"prepare_threshold": None} if is_pooled else {}


CONNECT_TIMEOUT = 10  # seconds: an unreachable server fails a command, not hangs it

# -- driver errors -> the RendererError tree -------------------------------------------------

_BY_STATE: dict[str, type[DatabaseError]] = {
    "23505": AlreadyExists,
    "42P07": AlreadyExists,        # duplicate table (e.g. a partition made concurrently)
    "42710": AlreadyExists,        # duplicate object
    "55P03": LockNotAvailable,
    "57014": StatementCanceled,
    "57P01": DatabaseUnavailable,  # admin shutdown
    "57P02": DatabaseUnavailable,  # crash shutdown
    "57P03": DatabaseUnavailable,  # cannot connect now (starting up)
    "25P03": DatabaseUnavailable,  # idle-in-transaction session timeout
    "57P05": DatabaseUnavailable,  # idle session timeout
    "42P01": SchemaMismatch,       # undefined table
    "42703": SchemaMismatch,       # undefined column
    "42883": SchemaMismatch,       # undefined function
    "3F000": SchemaMismatch,       # undefined schema
}
_BY_CLASS: dict[str, type[DatabaseError]] = {
    "08": DatabaseUnavailable,
    "22": InvalidValue,
    "23": ConstraintViolation,
    "40": TransactionConflict,
}
_FIXES: dict[type[DatabaseError], str] = {
    DatabaseUnavailable: "check that PostgreSQL is running and reachable, then retry",
    SchemaMismatch: "run `renderer db migrate`",
    TransactionConflict: "retry the operation",
}


def translate(exc: psycopg.Error) -> DatabaseError:
    """The ``DatabaseError`` subclass for a driver error, by SQLSTATE (or, without one,
    ``DatabaseUnavailable`` for a lost or refused connection)."""
    state = exc.sqlstate
    if state is None:
        cls: type[DatabaseError] = (DatabaseUnavailable if isinstance(exc, psycopg.OperationalError)
                                    else DatabaseError)
    else:
        cls = _BY_STATE.get(state) or _BY_CLASS.get(state[:2]) or DatabaseError
    text = str(exc).strip()
    message = text.splitlines()[0] if text else type(exc).__name__
    return cls(message, _FIXES.get(cls), sqlstate=state,
               constraint=exc.diag.constraint_name if state else None)


class Cursor(psycopg.Cursor[Any]):
    """A client cursor whose driver errors come out translated (:func:`translate`)."""

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Cursor:
        try:
            return super().execute(query, params, **kwargs)
        except psycopg.Error as exc:
            raise translate(exc) from exc

    def executemany(self, query: Any, params_seq: Any, **kwargs: Any) -> None:
        try:
            super().executemany(query, params_seq, **kwargs)
        except psycopg.Error as exc:
            raise translate(exc) from exc

    def stream(self, query: Any, params: Any = None, **kwargs: Any) -> Iterator[Any]:
        try:
            yield from super().stream(query, params, **kwargs)
        except psycopg.Error as exc:
            raise translate(exc) from exc

    @contextmanager
    def copy(self, statement: Any, params: Any = None, **kwargs: Any) -> Iterator[Any]:
        try:
            with super().copy(statement, params, **kwargs) as copy:
                yield copy
        except psycopg.Error as exc:
            raise translate(exc) from exc


class ServerCursor(psycopg.ServerCursor[Any]):
    """A named (server-side) cursor whose driver errors come out translated."""

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> ServerCursor:
        try:
            return super().execute(query, params, **kwargs)
        except psycopg.Error as exc:
            raise translate(exc) from exc

    def fetchone(self) -> Any:
        try:
            return super().fetchone()
        except psycopg.Error as exc:
            raise translate(exc) from exc

    def fetchmany(self, size: int = 0) -> list[Any]:
        try:
            return super().fetchmany(size)
        except psycopg.Error as exc:
            raise translate(exc) from exc

    def fetchall(self) -> list[Any]:
        try:
            return super().fetchall()
        except psycopg.Error as exc:
            raise translate(exc) from exc

    def __next__(self) -> Any:
        try:
            return super().__next__()
        except psycopg.Error as exc:
            raise translate(exc) from exc


class Connection(psycopg.Connection[Any]):
    """The connection every library module is given: psycopg's, with its errors translated
    at commit, rollback and transaction exit as well as in its cursors."""

    def commit(self) -> None:
        try:
            super().commit()
        except psycopg.Error as exc:
            raise translate(exc) from exc

    def rollback(self) -> None:
        try:
            super().rollback()
        except psycopg.Error as exc:
            raise translate(exc) from exc

    def notifies(self, **kwargs: Any) -> Iterator[Any]:  # type: ignore[override]
        try:
            yield from super().notifies(**kwargs)
        except psycopg.Error as exc:
            raise translate(exc) from exc

    @contextmanager
    def transaction(self, savepoint_name: str | None = None,
                    force_rollback: bool = False) -> Iterator[Any]:
        try:
            with super().transaction(savepoint_name, force_rollback) as tx:
                yield tx
        except psycopg.Error as exc:
            raise translate(exc) from exc


_FACTORIES = {"cursor_factory": Cursor, "server_cursor_factory": ServerCursor}


def connect(url: str, *, autocommit: bool = False, pooler: bool | None = None,
            **kwargs: Any) -> Connection:
    """A connection returning rows as dicts; a failure to connect is DatabaseUnavailable.
    ``pooler`` (default: the setting, :func:`pooled`) says whether ``url`` is PgBouncer."""
    options = session_options(pooled() if pooler is None else pooler)
    try:
        conn = Connection.connect(
            url, autocommit=autocommit, row_factory=dict_row, connect_timeout=CONNECT_TIMEOUT,
            application_name="renderer", **options, **kwargs
        )
    except psycopg.OperationalError as exc:
        raise connection_error(url, exc) from exc
    except psycopg.ProgrammingError as exc:
        raise DatabaseError(
            f"invalid database URL: {exc}", "fix RENDERER_DATABASE_URL"
        ) from exc
    _configure(conn)
    return conn


def connection_error(url: str, exc: BaseException) -> DatabaseUnavailable:
    """One line naming the server (password masked) and the driver's first line."""
    text = str(exc).strip()
    reason = text.splitlines()[0] if text else type(exc).__name__
    return DatabaseUnavailable(
        f"cannot connect to {config.mask_url(url)}: {reason}",
        "check RENDERER_DATABASE_URL, or unset it to use the embedded database",
    )


class IdArray(list[int]):
    """A list of ids sent as one ``bigint[]`` literal: the queue's verbs pass a batch's 500
    ids several times a batch, and the driver's general list dumper (which handles nesting
    and NULLs) cost a no-op worker about 2 us an item."""


class _IdArrayDumper(Dumper):
    oid = pg_types["int8"].array_oid

    def dump(self, obj: IdArray) -> bytes:
        return ("{" + ",".join(map(str, obj)) + "}").encode()


def _loads_json(data: str | bytes) -> Any:
    """json and jsonb values as the driver hands them over: ``{}`` (most items' payload)
    without the parser, the rest decoded first (``json.loads`` of bytes sniffs the encoding
    of every value; the server sends UTF-8)."""
    if data == b"{}":
        return {}
    return json.loads(data.decode() if isinstance(data, bytes) else data)


def _configure(conn: Connection) -> None:
    conn.cursor_factory = Cursor
    conn.server_cursor_factory = ServerCursor
    set_json_loads(_loads_json, conn)
    conn.adapters.register_dumper(IdArray, _IdArrayDumper)


Pool = ConnectionPool[Connection]
"""What :func:`pool` returns, for annotations elsewhere (they do not import the driver)."""


def pool(url: str, *, name: str, max_size: int = 8, pooler: bool | None = None) -> Pool:
    """A connection pool (closed until opened) whose connections are made as :func:`connect`
    makes them, for long-running services that serve many short requests."""
    options = session_options(pooled() if pooler is None else pooler)
    return ConnectionPool(url, min_size=1, max_size=max_size, open=False, name=name,
                          connection_class=Connection, configure=_configure,
                          kwargs={"row_factory": dict_row, "application_name": name,
                                  "connect_timeout": CONNECT_TIMEOUT, **options})


def pgbouncer_config(url: str) -> dict[str, str] | None:
    """PgBouncer's settings (``SHOW CONFIG`` on its admin console, the database ``pgbouncer``
    at the same address), or None when there is no console there or it refuses us (a plain
    PostgreSQL has no database of that name; PgBouncer admits only its admin and stats users).
    The console speaks the simple query protocol only, hence the client-side cursor."""
    parts = urlsplit(url)
    console = urlunsplit(parts._replace(path="/pgbouncer"))
    try:
        with psycopg.connect(console, autocommit=True, connect_timeout=CONNECT_TIMEOUT,
                             cursor_factory=psycopg.ClientCursor) as conn:
            rows = conn.execute("SHOW CONFIG").fetchall()
    except psycopg.Error:
        return None
    return {str(r[0]): str(r[1]) for r in rows}


def one(conn: Connection, ref: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """The single row of a named statement that always returns one (an aggregate, an
    upsert ... RETURNING); a missing row is a DatabaseError, not a TypeError later."""
    row = conn.execute(query(ref), params or {}).fetchone()
    if row is None:
        raise DatabaseError(f"statement {ref} returned no row")
    return dict(row)


def scalar(conn: Connection, ref: str, params: dict[str, Any] | None = None) -> Any:
    """The first column of the single row of a named statement (see :func:`one`)."""
    return next(iter(one(conn, ref, params).values()))


@contextmanager
def transaction(url: str) -> Iterator[Connection]:
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
        if not self._at_head():
            # Alembic and SQLAlchemy are heavy: loaded only when the revision differs.
            from renderer import schema

            schema.ensure_current(self.url)
        self._checked = True

    def _at_head(self) -> bool:
        """Whether the stored revision is the migration files' head, read without alembic."""
        head = migrations_head()
        try:
            with self.connect(autocommit=True) as conn:
                stored = scalar(conn, "migrations.revision")
        except SchemaMismatch:  # never migrated: no alembic_version table yet
            return False
        return head is not None and stored == head

    def connect(self, **kwargs: Any) -> Connection:
        return connect(self.url, **kwargs)

    def execute(self, ref: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run one named statement in its own transaction and return its rows."""
        with self.connect() as conn:
            cur = conn.execute(query(ref), params or {})
            rows = cur.fetchall() if cur.description else []
            conn.commit()
            return rows
