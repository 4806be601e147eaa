"""Pre-flight checks: Python dependencies, the C extension, PostgreSQL, PostGIS, the store.

Each check returns a :class:`Check`; nothing here prints. ``renderer doctor`` shows them as
a table and exits 1 when any failed, so scripts can gate a run on it.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from renderer import config, kernels, schema
from renderer.db import Connection, Database, connect, pgbouncer_config, pooled, resolve_url
from renderer.errors import RendererError
from renderer.storage import FileStore, open_store

REQUIRED = ["psycopg", "psycopg_pool", "sqlalchemy", "alembic", "numpy", "flatbuffers",
            "google.protobuf", "boto3", "mercantile", "click", "rich", "croniter", "fastapi",
            "uvicorn", "jinja2", "pyarrow", "prometheus_client",
            "pyogrio", "pmtiles", "shapely", "pyais", "isal"]
DISTRIBUTIONS = {"google.protobuf": "protobuf", "psycopg_pool": "psycopg-pool",
                 "prometheus_client": "prometheus-client"}


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def check_python() -> list[Check]:
    checks = []
    for module in REQUIRED:
        dist = DISTRIBUTIONS.get(module, module)
        try:
            importlib.import_module(module)
            checks.append(Check(f"python: {dist}", True, importlib.metadata.version(dist)))
        except ImportError as exc:
            checks.append(Check(f"python: {dist}", False, f"{exc} (run make install)"))
    return checks


def check_extension() -> Check:
    try:  # here, not at the top: a broken build is this check's finding, not doctor's crash
        from renderer import binning
    except ImportError as exc:
        return Check("C extension", False, f"cannot import renderer.binning: {exc}")
    if binning.IMPLEMENTATION == "c":
        return Check("C extension", True, "renderer._binning loaded")
    if kernels.disabled():
        return Check("C extension", True, "disabled by RENDERER_NO_EXT=1 (pure-Python twin)")
    return Check("C extension", False,
                 "not built: using the pure-Python twin (run: python setup.py build_ext --inplace)")


def check_database(settings: config.Settings) -> list[Check]:
    try:
        db = Database.from_settings(settings)
    except RendererError as exc:
        return [Check("PostgreSQL", False, str(exc))]
    checks = []
    with db.connect() as conn:
        shown = conn.execute("SHOW server_version").fetchone()
        version = shown["server_version"] if shown else "unknown version"
        checks.append(Check("PostgreSQL", True, f"{version} at {config.mask_url(db.url)}"))
        row = conn.execute(
            "SELECT extversion FROM pg_extension WHERE extname = 'postgis'").fetchone()
        checks.append(Check("PostGIS", row is not None,
                            row["extversion"] if row else "extension not created"))
        if row:
            # A round trip through PostGIS: a tile polygon in, its GeoJSON out.
            found = conn.execute(
                "SELECT ST_AsGeoJSON(ST_Centroid(ST_MakeEnvelope(%s, %s, %s, %s, 4326))) AS g",
                (0, 0, 4, 4)).fetchone()
            point = found["g"] if found else "no row"
            checks.append(Check("database round trip", '"coordinates":[2,2]' in point, point))
    revision, head = schema.current(db.url), schema.head()
    checks.append(Check("migrations", revision == head, f"at {revision}, head {head}"))
    return checks


def check_pooler(settings: config.Settings) -> Check:
    """Whether a pooler stands between us and PostgreSQL, and whether the settings say so:
    the URL's port against the server's own (``port``) and the port of the server session
    (``inet_server_port()``, NULL over a Unix socket, which is how a pooler on the database
    machine often connects), then PgBouncer's admin console for its ``pool_mode``."""
    try:
        url = resolve_url(settings)
        with connect(url, pooler=True) as conn:
            row = one_row(conn)
    except RendererError as exc:
        return Check("pooler", False, str(exc))
    parts = urlsplit(url)
    host = parts.hostname or ""
    checked = [f"RENDERER_POOLER={settings.pooler or '(unset)'}"]
    if not host or host.startswith("/") or "host=/" in parts.query:
        checked.append("the URL is a Unix socket of the server: no pooler")
        behind = False
    else:
        port = parts.port or 5432
        via = row["via_port"]
        checked.append(f"URL port {port}, server port {row['port']}, server session "
                       + (f"port {via}" if via is not None else "over a Unix socket"))
        behind = port != row["port"] or via is None or via != port
    console = pgbouncer_config(url) if behind else None
    if console is not None:
        checked.append(f"PgBouncer admin console: pool_mode={console.get('pool_mode', '?')}")
    elif behind:
        checked.append("no PgBouncer admin console for this user (stats_users)")
    verdict = "a pooler or proxy is in between" if behind else "direct connection"
    configured = pooled(settings)
    mode = console.get("pool_mode") if console is not None else None
    ok = not behind or configured or mode == "session"
    if not ok:
        verdict += ", set RENDERER_POOLER=pgbouncer"
    elif configured and not behind:
        verdict += " (RENDERER_POOLER is set: harmless, workers poll instead of LISTEN)"
    return Check("pooler", ok, f"{verdict} ({'; '.join(checked)})")


def one_row(conn: Connection) -> dict[str, Any]:
    row = conn.execute("SELECT current_setting('port')::int AS port,"
                       " inet_server_port() AS via_port").fetchone()
    assert row is not None
    return dict(row)


def check_store(settings: config.Settings) -> Check:
    url = config.mask_url(settings.store_url)
    try:
        store = open_store(settings.store_url)
        key = f"_doctor/probe-{os.getpid()}-{time.time_ns()}"
        body = b"renderer doctor probe"
        store.put(key, body, metadata={"probe": "1"})
        ok = store.get(key) == body
        store.delete(key)
        return Check("store round trip", ok, url)
    except RendererError as exc:
        return Check("store round trip", False, str(exc))


def check_store_temps(settings: config.Settings) -> Check:
    """Temporary files that writers killed mid-write left in a folder store (``store ls``
    hides them; the next write to their folder removes them)."""
    try:
        store = open_store(settings.store_url)
    except RendererError as exc:
        return Check("store temporary files", False, str(exc))
    if not isinstance(store, FileStore):
        return Check("store temporary files", True, "none (S3 writes are atomic)")
    stale = store.stale_temps()
    if not stale:
        return Check("store temporary files", True, "none left by interrupted writes")
    shown = ", ".join(str(p) for p in stale[:5]) + (", ..." if len(stale) > 5 else "")
    return Check("store temporary files", False,
                 f"{len(stale)} temporary file(s) of interrupted writes: {shown} "
                 "(removed by the next write to their folder, or delete them)")


def run(settings: config.Settings | None = None) -> list[Check]:
    settings = settings or config.load()
    return [*check_python(), check_extension(), *check_database(settings),
            check_pooler(settings), check_store(settings),
            check_store_temps(settings)]
