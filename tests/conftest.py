"""Test harness: a real PostgreSQL with PostGIS, never a stand-in, and the three test tiers.

One server per session (the embedded cluster in a temporary RENDERER_HOME, or the server of
``RENDERER_TEST_DATABASE_URL``), one template database migrated to head, and from it one
database for the session. ``db`` empties every table after each test, so tests are
isolated; ``fresh_database_url`` gives a test a whole new database when it runs several
processes. No database is a failure, never a skip.

Tiers
-----
Every test gets exactly one tier marker, and the end of every run prints passed, failed and
skipped per tier (``pytest -m unit`` runs one tier):

unit
    No database: pure functions, formats, the C loop and its twin, the store.
db
    A real PostGIS: the test uses ``db``, ``database_url``, ``fresh_database_url``,
    ``renderer_env`` or another fixture built on them (found through its fixtures), or is
    marked ``db`` because it starts a cluster of its own.
acceptance
    The system as it is run: several ``renderer work`` processes or a pool on one queue, the
    HTTP server (the ``live`` fixture), the browser (``browser``), a whole pipeline through
    the command line. Marked ``acceptance`` by hand, except the ``live`` and ``browser`` tests.

A skip in the db or acceptance tier is a failure: a test that needs the database must not
pass quietly without one. Rows in a given state come from the factories in
``tests/factories.py``, not from INSERTs written in each test file.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections import Counter
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any
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


def _cluster_folder() -> Path:
    """A folder for a PostgreSQL cluster, outside pytest's temporary root: a pytest session
    that starts later (another checkout, another CI job of the same user) resets that root to
    mode 0700, and the service user running PostgreSQL could no longer reach its data."""
    return Path(tempfile.mkdtemp(prefix="renderer-test-pg-"))


@pytest.fixture
def cluster_home() -> Iterator[Path]:
    """A folder for a test's own cluster (outside pytest's temporary root); removed after."""
    home = _cluster_folder()
    yield home
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """A URL on the test server (its database is replaced by each fixture)."""
    external = os.environ.get("RENDERER_TEST_DATABASE_URL")
    if external:
        yield external
        return
    home = _cluster_folder()
    cluster = Cluster(home, extra_settings={"fsync": "off", "full_page_writes": "off"})
    try:
        yield cluster.ensure_started()
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


# -- tiers -----------------------------------------------------------------------------------

TIERS = ("unit", "db", "acceptance")
_DATABASE_FIXTURE = "server_url"  # every database fixture is built on it
_ACCEPTANCE_FIXTURES = {"live"}  # a real HTTP server
_TIER_OF = pytest.StashKey[dict[str, str]]()


def tier_of(item: pytest.Item) -> str:
    """The tier of a collected test: its own tier marker, else what its fixtures need."""
    marked = [name for name in TIERS if item.get_closest_marker(name) is not None]
    if len(marked) > 1:
        raise pytest.UsageError(f"{item.nodeid} is marked {' and '.join(marked)}: one tier only")
    if marked:
        return marked[0]
    fixtures = set(getattr(item, "fixturenames", ()))
    if item.get_closest_marker("browser") is not None or fixtures & _ACCEPTANCE_FIXTURES:
        return "acceptance"
    if _DATABASE_FIXTURE in fixtures:
        return "db"
    return "unit"


@pytest.hookimpl(tryfirst=True)  # before -m selects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tiers = {}
    for item in items:
        tier = tier_of(item)
        item.add_marker(tier)
        tiers[item.nodeid] = tier
    # Unit tests first, acceptance last: the quick answers come first (stable within a tier).
    order = {name: n for n, name in enumerate(TIERS)}
    items.sort(key=lambda item: order[tiers[item.nodeid]])
    config.stash[_TIER_OF] = tiers


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
        item: pytest.Item,
        call: pytest.CallInfo[None]) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    tier = item.config.stash.get(_TIER_OF, {}).get(item.nodeid)
    if report.skipped and tier in ("db", "acceptance") and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = (f"a {tier} test may not skip (a test that needs the database fails "
                           f"without it): {reason}")
    return report


def _outcomes(stats: dict[str, list[Any]]) -> dict[str, tuple[str, float]]:
    """nodeid -> (outcome, seconds of setup, call and teardown), from the reporter's stats."""
    rank = {"passed": 0, "xpassed": 1, "xfailed": 1, "skipped": 2, "failed": 3, "error": 3}
    found: dict[str, tuple[str, float]] = {}
    for category, reports in stats.items():
        for report in reports:
            if not isinstance(report, pytest.TestReport):
                continue
            outcome, seconds = found.get(report.nodeid, ("passed", 0.0))
            if category in rank and rank[category] > rank[outcome]:
                outcome = category
            found[report.nodeid] = (outcome, seconds + report.duration)
    return found


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int,
                            config: pytest.Config) -> None:
    tiers = config.stash.get(_TIER_OF, {})
    results = _outcomes(terminalreporter.stats)
    if not results:
        return
    terminalreporter.write_sep("=", "tiers")
    for tier in TIERS:
        mine = [results[node] for node in results if tiers.get(node) == tier]
        counts = Counter(outcome for outcome, _ in mine)
        shown = ", ".join(f"{counts[o]} {o}" for o in
                          ("passed", "failed", "error", "skipped", "xfailed", "xpassed")
                          if counts[o]) or "none run"
        seconds = sum(s for _, s in mine)
        bad = counts["failed"] + counts["error"]
        terminalreporter.write_line(f"{tier:<11} {shown:<40} {seconds:7.1f} s",
                                    red=bool(bad), green=not bad and bool(mine))
