"""Through a real PgBouncer in transaction pooling (RENDERER_POOLER=pgbouncer) in front of the
test cluster: the queue's claim and finish by a pool of workers, a traffic sample run, the
service's pages, migrations, ``renderer doctor``'s pooler check, and the ingests that need a
direct connection refusing to run through it."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import psycopg
import pytest
from click.testing import CliRunner

from renderer import config, db, doctor, queue, schema
from renderer.cli import main
from renderer.errors import DatabaseError
from renderer.pool import run_pool
from renderer.queue import NewItem
from renderer.sensors.sample import generate as sensors_sample
from renderer.traffic.sample import generate
from renderer.web.app import create_app
from renderer.worker import listens
from tests.conftest import with_database
from tests.queue_kinds import fresh, outputs, plugin_env, states
from tests.test_web_server import _serve

__all__ = ["fresh", "plugin_env"]

_spec = importlib.util.spec_from_file_location(
    "hosts_pgbouncer", Path(__file__).parent.parent / "scripts/hosts/pgbouncer.py")
assert _spec is not None and _spec.loader is not None
bouncer_module = importlib.util.module_from_spec(_spec)
sys.modules["hosts_pgbouncer"] = bouncer_module
_spec.loader.exec_module(bouncer_module)


@pytest.fixture(scope="module")
def bouncer(server_url: str) -> Iterator[Any]:
    """A PgBouncer (transaction pooling, 4 server connections per database: clients share
    them) in front of the test cluster's socket, for the module."""
    parts = urlsplit(server_url)
    query = parse_qs(parts.query)
    host = query.get("host", [parts.hostname or "127.0.0.1"])[0]
    port = int(query.get("port", [parts.port or 5432])[0])
    folder = Path(tempfile.mkdtemp(prefix="hosts-pgbouncer-"))
    running = bouncer_module.configure(folder, backend_host=host, backend_port=port,
                                       port=bouncer_module.free_port(), pool_size=4).start()
    try:
        yield running
    finally:
        running.stop()
        shutil.rmtree(folder, ignore_errors=True)


def through(bouncer: Any, direct_url: str) -> str:
    return bouncer.url(urlsplit(direct_url).path.lstrip("/"))


@pytest.fixture
def pooled_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RENDERER_POOLER", "pgbouncer")


def test_the_pooler_setting_is_validated() -> None:
    assert config.load({"RENDERER_POOLER": "pgbouncer"}).pooler == "pgbouncer"
    with pytest.raises(config.ConfigError, match="RENDERER_POOLER"):
        config.load({"RENDERER_POOLER": "pgpool"})


def test_workers_poll_behind_a_pooler() -> None:
    assert listens(config.Settings())
    assert not listens(config.Settings(pooler="pgbouncer"))
    assert not listens(config.Settings(notify=False))


def _interleaved(url: str, pooler: bool) -> None:
    """Two clients, each running one statement seven times in transactions of its own while
    the other holds a server session: PgBouncer hands each transaction whichever server
    session is free."""
    with db.connect(url, pooler=pooler) as a, db.connect(url, pooler=pooler) as b:
        for n in range(7):
            for first, second in ((a, b), (b, a)):
                with first.transaction():
                    first.execute("SELECT 1")
                    with second.transaction():
                        second.execute("SELECT %(n)s::int + 1 AS v", {"n": n})
                    first.execute("SELECT %(n)s::int + 1 AS v", {"n": n})


def test_no_prepared_statements_behind_pgbouncer(bouncer: Any, database_url: str) -> None:
    url = through(bouncer, database_url)
    _interleaved(url, pooler=True)
    # The same with psycopg's default (prepare after five runs) fails: the statement was
    # prepared on one server session and is run on another.
    with pytest.raises(DatabaseError, match="prepared statement"):
        _interleaved(url, pooler=False)


@pytest.mark.acceptance
def test_a_pool_claims_and_finishes_each_item_once_through_pgbouncer(
        bouncer: Any, fresh: str, plugin_env: None, pooled_env: None) -> None:
    url = through(bouncer, fresh)
    total = 3000
    with db.connect(url, autocommit=True) as conn:
        queue.enqueue_many(conn, (NewItem("t_record", f"k{i}") for i in range(total)))
    stats = run_pool(url, processes=4, kinds=["t_record"], until_empty=True)
    assert stats.done == total
    with psycopg.connect(fresh, autocommit=True) as conn:
        done = outputs(conn, "t_record")
        assert len(done) == total and set(done.values()) == {1}
        assert states(conn) == {"done": total}


def test_migrations_run_through_pgbouncer_and_twice_at_once_apply_once(
        bouncer: Any, server_url: str, pooled_env: None) -> None:
    name = "renderer_pgbouncer_migrate"
    with psycopg.connect(with_database(server_url, "postgres"), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = bouncer.url(name)
        # Two processes (Alembic's context is global to a process, not to a thread).
        migrating = [subprocess.Popen(
            [sys.executable, "-c", f"from renderer import schema; schema.upgrade({url!r})"],
            stderr=subprocess.PIPE, text=True) for _ in range(2)]
        for process in migrating:
            _, err = process.communicate(timeout=300)
            assert process.returncode == 0, err
        assert schema.current(url) == schema.head()
        with psycopg.connect(with_database(server_url, name)) as conn:
            held = conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                                ).fetchone()
            assert held == (0,)  # no session lock left behind on a pooled server session
    finally:
        with psycopg.connect(with_database(server_url, "postgres"), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_doctor_detects_pgbouncer_and_says_what_it_checked(
        bouncer: Any, database_url: str) -> None:
    url = through(bouncer, database_url)
    unset = doctor.check_pooler(config.Settings(database_url=url))
    assert not unset.ok and "RENDERER_POOLER=pgbouncer" in unset.detail
    assert "pool_mode=transaction" in unset.detail and "server port" in unset.detail
    found = doctor.check_pooler(config.Settings(database_url=url, pooler="pgbouncer"))
    assert found.ok, found.detail
    direct = doctor.check_pooler(config.Settings(database_url=database_url))
    assert direct.ok and "direct connection" in direct.detail


@pytest.mark.acceptance
def test_a_traffic_sample_run_through_pgbouncer(
        bouncer: Any, fresh_database_url: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, pooled_env: None) -> None:
    url = through(bouncer, fresh_database_url)
    monkeypatch.setenv("RENDERER_DATABASE_URL", url)
    monkeypatch.setenv("RENDERER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RENDERER_STORAGE", (tmp_path / "store").as_uri())
    monkeypatch.setenv("RENDERER_POLL_SECONDS", "0.2")
    made = generate(tmp_path / "sample", tiles=1, days=2, seed=3)
    result = CliRunner().invoke(main, ["traffic", "run", "--source", str(made.root),
                                       "--processes", "2", "--after", "keep"])
    assert result.exit_code == 0, result.output
    store = tmp_path / "store"
    assert list(store.rglob("*.spd.0.gz")) and (store / "coverage.geojson").exists()
    with psycopg.connect(fresh_database_url) as conn:
        rows = conn.execute("SELECT state, count(*) FROM work_queue GROUP BY state").fetchall()
    assert {state for state, _ in rows} == {"done"}


@pytest.mark.acceptance
def test_the_service_pages_through_pgbouncer(
        bouncer: Any, database_url: str, tmp_path: Path, pooled_env: None) -> None:
    url = through(bouncer, database_url)
    settings = config.Settings(database_url=url, home=tmp_path / "home", pooler="pgbouncer",
                               storage=(tmp_path / "store").as_uri())
    server, thread, port = _serve(create_app(settings, url=url))
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            for path in ("/", "/sets", "/coverage", "/readyz", "/metrics", "/api/sets"):
                for _ in range(8):  # past psycopg's prepare threshold of five
                    response = client.get(path)
                    assert response.status_code == 200, (path, response.text[:300])
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@pytest.mark.acceptance
def test_ingests_that_keep_temp_tables_refuse_a_pooler_in_one_line_and_load_nothing(
        bouncer: Any, fresh_database_url: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, pooled_env: None) -> None:
    monkeypatch.setenv("RENDERER_DATABASE_URL", through(bouncer, fresh_database_url))
    monkeypatch.setenv("RENDERER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RENDERER_STORAGE", (tmp_path / "store").as_uri())
    sensors_sample(tmp_path / "detectors", detectors=1, days=1)
    reports = tmp_path / "reports.csv"
    reports.write_text("time,mmsi,lat,lon\n2026-12-01T00:00:05Z,503000001,-33.85,151.25\n")
    for command, source in (("sensors", tmp_path / "detectors"), ("tracks", reports)):
        result = CliRunner().invoke(main, [command, "ingest", str(source)])
        assert result.exit_code == 2, result.output
        assert result.output == (
            f"error: renderer {command} ingest keeps temporary tables across transactions and "
            "cannot run through PgBouncer (RENDERER_POOLER=pgbouncer) (run it with "
            "RENDERER_DATABASE_URL pointing at PostgreSQL itself and RENDERER_POOLER unset)\n")
    with psycopg.connect(fresh_database_url) as conn:  # nothing loaded, nothing recorded
        loaded = conn.execute("SELECT (SELECT count(*) FROM sensors_files),"
                              " (SELECT count(*) FROM tracks_files)").fetchone()
    assert loaded == (0, 0)
