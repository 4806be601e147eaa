"""Test harness: a real PostgreSQL with PostGIS, never a stand-in.

One server per session (the embedded cluster in a temporary RENDERER_HOME, or the server of
``RENDERER_TEST_DATABASE_URL``), one template database migrated to head, and from it one
database for the session. ``db`` empties every table after each test, so tests are
isolated; ``fresh_database_url`` gives a test a whole new database when it runs several
processes. No database is a failure, never a skip.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from hypothesis import settings as hypothesis_settings

from renderer import schema
from renderer.db import Database
from renderer.localdb import Cluster

pytest_plugins = ["tests.s3server"]

# No timing asserts in tests: hypothesis' per-example deadline is one, and it fails on a busy
# 2-core machine (CI runs worker processes beside the suite).
hypothesis_settings.register_profile("renderer", deadline=None)
hypothesis_settings.load_profile("renderer")

KEEP_TABLES = {"spatial_ref_sys", "alembic_version"}


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _admin(url: str) -> psycopg.Connection:
    return psycopg.connect(with_database(url, "postgres"), autocommit=True)


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """A URL on the test server (its database is replaced by each fixture)."""
    external = os.environ.get("RENDERER_TEST_DATABASE_URL")
    if external:
        yield external
        return
    # Not under pytest's temporary root: every new pytest session resets that root to mode
    # 0700, which would lock this cluster's unprivileged server out of its data directory
    # when two sessions run at once (e.g. two checkouts on one machine).
    home = Path(tempfile.mkdtemp(prefix="renderer-test-pg-"))
    cluster = Cluster(home, extra_settings={"fsync": "off", "full_page_writes": "off"})
    try:
        url = cluster.ensure_started()
        yield url
    finally:
        cluster.stop()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def template_url(server_url: str) -> Iterator[str]:
    name = f"renderer_tpl_{os.getpid()}"
    with _admin(server_url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = with_database(server_url, name)
    schema.upgrade(url)
    yield url
    with _admin(server_url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _create_from_template(server_url: str, template_url: str, name: str) -> str:
    template = urlsplit(template_url).path.lstrip("/")
    with _admin(server_url) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY')
    return with_database(server_url, name)


def _drop(server_url: str, name: str) -> None:
    with _admin(server_url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def database_url(server_url: str, template_url: str) -> Iterator[str]:
    """The session's database, migrated to head."""
    name = f"renderer_test_{os.getpid()}"
    url = _create_from_template(server_url, template_url, name)
    yield url
    _drop(server_url, name)


def truncate_all(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        tables = [
            f'"{r[0]}"."{r[1]}"'
            for r in conn.execute(
                "SELECT n.nspname, c.relname FROM pg_class c"
                " JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition"
                " AND n.nspname IN ('public', 'renderer')"
            )
            if r[1] not in KEEP_TABLES
        ]
        if tables:
            conn.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    """The session database; every table emptied after the test."""
    yield Database(database_url)
    truncate_all(database_url)


@pytest.fixture
def fresh_database_url(server_url: str, template_url: str) -> Iterator[str]:
    """A new database of its own, for tests that run several processes against it."""
    name = f"renderer_fresh_{uuid.uuid4().hex[:12]}"
    url = _create_from_template(server_url, template_url, name)
    yield url
    _drop(server_url, name)


@pytest.fixture
def renderer_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                 database_url: str) -> Iterator[dict[str, str]]:
    """Environment for running ``renderer`` commands against the test database and a
    temporary store; yields the variables (also set in os.environ)."""
    env = {
        "RENDERER_DATABASE_URL": database_url,
        "RENDERER_HOME": str(tmp_path / "home"),
        "RENDERER_STORAGE": (tmp_path / "store").as_uri(),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("RENDERER_CONFIG", raising=False)
    yield env
    truncate_all(database_url)
