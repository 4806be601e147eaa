"""The embedded cluster: starts as root in any folder, once, under a lock."""

from __future__ import annotations

import os
import pwd
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest

from renderer.errors import DatabaseError
from renderer.localdb import SERVICE_USER, Cluster, find_bindir


@pytest.fixture
def mktemp_home() -> Path:
    # Exactly what a user gets from `mktemp -d`: a root-owned 0700 folder.
    return Path(tempfile.mkdtemp(prefix="renderer-home-"))


@pytest.mark.db
def test_starts_in_a_mktemp_folder_and_reuses(mktemp_home: Path) -> None:
    cluster = Cluster(mktemp_home)
    try:
        url = cluster.ensure_started()
        with psycopg.connect(url) as conn:
            user = conn.execute("SELECT current_user").fetchone()[0]
            settings = dict(conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN"
                " ('listen_addresses', 'work_mem', 'max_wal_size')").fetchall())
        assert user == "renderer"
        assert settings["listen_addresses"] == ""  # no TCP port unless asked
        assert int(settings["work_mem"]) >= 64 * 1024
        assert cluster.start() is False  # already running: reused, not restarted
        if os.geteuid() == 0:
            owner = cluster.data.stat().st_uid
            assert pwd.getpwuid(owner).pw_name == SERVICE_USER
            assert stat.S_IMODE(cluster.data.stat().st_mode) == 0o700
    finally:
        cluster.stop()
    assert not cluster.is_running()


@pytest.mark.db
def test_concurrent_starts_make_one_cluster(mktemp_home: Path) -> None:
    cluster = Cluster(mktemp_home)
    code = (
        "import sys; from pathlib import Path; from renderer.localdb import Cluster;"
        "print(Cluster(Path(sys.argv[1])).ensure_started())"
    )
    try:
        with ThreadPoolExecutor(4) as pool:
            runs = list(pool.map(
                lambda _: subprocess.run([sys.executable, "-c", code, str(mktemp_home)],
                                         capture_output=True, text=True, timeout=120),
                range(4)))
        assert all(r.returncode == 0 for r in runs), [r.stderr for r in runs]
        assert len({r.stdout.strip() for r in runs}) == 1
        with psycopg.connect(cluster.url()) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        cluster.stop()


def test_unwritable_home_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(DatabaseError, match=r"not writable.*RENDERER_HOME"):
        Cluster(blocker / "home").start()


# --- TCP needs the password; the socket is for the cluster's OS user and root only --------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def no_stored_password(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """libpq must not find a password elsewhere (environment, ~/.pgpass)."""
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "no-pgpass"))


@pytest.fixture
def tcp_cluster(mktemp_home: Path, no_stored_password: None) -> Iterator[Cluster]:
    cluster = Cluster(mktemp_home, _free_port())
    try:
        cluster.ensure_started()
        yield cluster
    finally:
        cluster.stop()


def _tcp(cluster: Cluster, password: str | None = None) -> str:
    secret = "" if password is None else f":{password}"
    return f"postgresql://renderer{secret}@127.0.0.1:{cluster.port}/renderer?connect_timeout=10"


def _refused(url: str) -> str:
    with pytest.raises(psycopg.OperationalError) as caught:
        psycopg.connect(url).close()
    return str(caught.value)


def test_tcp_needs_the_generated_password(tcp_cluster: Cluster) -> None:
    assert "password" in _refused(_tcp(tcp_cluster))
    assert "password authentication failed" in _refused(_tcp(tcp_cluster, "guess"))
    password = tcp_cluster.password_file.read_text().strip()
    assert len(password) >= 40
    with psycopg.connect(_tcp(tcp_cluster, password)) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("renderer",)
    assert tcp_cluster.tcp_url().startswith(f"postgresql://renderer:{password}@127.0.0.1:")
    with psycopg.connect(tcp_cluster.tcp_url()) as conn:
        rules = conn.execute("SELECT type, address, auth_method FROM pg_hba_file_rules"
                             " ORDER BY line_number").fetchall()
        assert rules == [("local", None, "trust"), ("host", "127.0.0.1", "scram-sha-256"),
                         ("host", "::1", "scram-sha-256")]
    with psycopg.connect(tcp_cluster.url()) as conn:  # the socket needs none
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_the_password_file_is_for_its_owner_only(tcp_cluster: Cluster) -> None:
    info = tcp_cluster.password_file.stat()
    assert stat.S_IMODE(info.st_mode) == 0o600
    assert info.st_uid == os.geteuid()
    assert tcp_cluster.password_file.parent == tcp_cluster.home


def test_the_socket_folder_is_for_the_cluster_user_and_root_only(tcp_cluster: Cluster) -> None:
    info = tcp_cluster.socket_dir.stat()
    assert stat.S_IMODE(info.st_mode) == 0o700
    expected = pwd.getpwnam(SERVICE_USER).pw_uid if os.geteuid() == 0 else os.geteuid()
    assert info.st_uid == expected


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another local user")
def test_another_local_user_is_refused(tcp_cluster: Cluster) -> None:
    psql = str(find_bindir() / "psql")
    env = {"PATH": "/usr/bin:/bin", "PGPASSFILE": "/nonexistent", "PGCONNECT_TIMEOUT": "10"}
    for target in (["-h", "127.0.0.1", "-p", str(tcp_cluster.port)],
                   ["-h", str(tcp_cluster.socket_dir), "-p", str(tcp_cluster.port)]):
        result = subprocess.run([psql, *target, "-U", "renderer", "-d", "renderer", "-w",
                                 "-XAtc", "SELECT 1"], user="nobody", group="nogroup",
                                extra_groups=[], capture_output=True, text=True, env=env,
                                cwd="/", timeout=60)
        assert result.returncode != 0, (target, result.stdout)
        assert "1" not in result.stdout.split()


def _downgrade(cluster: Cluster) -> None:
    """Leave the cluster as an older version did: initdb --auth=trust's pg_hba.conf (trust
    over TCP too), no password on the role, no password file."""
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        conn.execute("ALTER ROLE renderer PASSWORD NULL")
    hba = cluster.data / "pg_hba.conf"
    hba.write_text(
        "local   all             all                                     trust\n"
        "host    all             all             127.0.0.1/32            trust\n"
        "host    all             all             ::1/128                 trust\n"
        "local   replication     all                                     trust\n"
        "host    replication     all             127.0.0.1/32            trust\n")
    cluster.password_file.unlink()
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        conn.execute("SELECT pg_reload_conf()")


@pytest.mark.parametrize("running", [False, True], ids=["stopped", "running"])
def test_an_existing_trust_cluster_is_upgraded(tcp_cluster: Cluster, running: bool) -> None:
    _downgrade(tcp_cluster)
    with psycopg.connect(_tcp(tcp_cluster)) as conn:  # the hole, as it was
        assert conn.execute("SELECT current_user").fetchone() == ("renderer",)
    if not running:
        tcp_cluster.stop()
    tcp_cluster.ensure_started()
    assert "password" in _refused(_tcp(tcp_cluster))
    assert stat.S_IMODE(tcp_cluster.password_file.stat().st_mode) == 0o600
    with psycopg.connect(tcp_cluster.tcp_url()) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert "trust" not in [line.split()[-1] for line in
                           (tcp_cluster.data / "pg_hba.conf").read_text().splitlines()
                           if line.startswith("host")]


def test_db_url_prints_the_tcp_url_with_the_password(
    mktemp_home: Path, no_stored_password: None
) -> None:
    port = _free_port()
    env = {**os.environ, "RENDERER_HOME": str(mktemp_home), "RENDERER_DB_PORT": str(port)}
    env.pop("RENDERER_DATABASE_URL", None)
    cluster = Cluster(mktemp_home, port)
    try:
        result = subprocess.run([sys.executable, "-m", "renderer", "db", "url"], env=env,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        password = cluster.password_file.read_text().strip()
        url = result.stdout.strip()
        assert url == f"postgresql://renderer:{password}@127.0.0.1:{port}/renderer"
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        del env["RENDERER_DB_PORT"]  # no port: the socket URL, no password in it
        cluster.stop()
        result = subprocess.run([sys.executable, "-m", "renderer", "db", "url"], env=env,
                                capture_output=True, text=True, timeout=120)
        assert result.stdout.strip() == Cluster(mktemp_home).url()
    finally:
        Cluster(mktemp_home).stop()
        cluster.stop()
