"""TLS for the embedded cluster (RENDERER_DB_TLS): its own CA and a server certificate for its
names, ``sslmode=verify-full`` logins, and ``renderer db url --for-host`` for remote workers."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from renderer.cli import main
from renderer.localdb import HBA, Cluster, hba


def free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def tls_cluster() -> Iterator[Cluster]:
    home = Path(tempfile.mkdtemp(prefix="renderer-test-tls-"))
    cluster = Cluster(home, free_tcp_port(), extra_settings={"fsync": "off"}, tls=True,
                      tls_names=("db.example",))
    try:
        cluster.ensure_started()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(home, ignore_errors=True)


def _verified(cluster: Cluster, name: str) -> str:
    """A verify-full login to 127.0.0.1 that checks the certificate against ``name``."""
    password = cluster.tcp_url().split(":")[2].split("@")[0]
    return (f"host={name} hostaddr=127.0.0.1 port={cluster.port} user=renderer "
            f"dbname=renderer password={password} sslmode=verify-full "
            f"sslrootcert={cluster.ca_file}")


@pytest.mark.db
def test_verify_full_accepts_the_certificates_names_and_refuses_others(
        tls_cluster: Cluster) -> None:
    for name in ("db.example", "localhost"):
        with psycopg.connect(_verified(tls_cluster, name)) as conn:
            row = conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
                               ).fetchone()
            assert row == (True,)
    with pytest.raises(psycopg.OperationalError, match=r"certificate|server name"):
        psycopg.connect(_verified(tls_cluster, "elsewhere.example"))


@pytest.mark.db
def test_the_certificate_is_signed_by_the_clusters_ca(tls_cluster: Cluster) -> None:
    cert = tls_cluster.tls_dir / "server.crt"
    checked = subprocess.run(["openssl", "verify", "-CAfile", str(tls_cluster.ca_file),
                              str(cert)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr
    assert oct((tls_cluster.tls_dir / "ca.key").stat().st_mode & 0o777) == "0o600"


def test_remote_logins_need_tls_when_it_is_on() -> None:
    assert hba(("127.0.0.1",), tls=True) == HBA  # loopback only: nothing more
    assert "hostssl all       all   0.0.0.0/0" in hba(("127.0.0.1", "10.0.0.5"), tls=True)
    assert "host    all       all   0.0.0.0/0" in hba(("*",), tls=False)


@pytest.mark.db
def test_db_url_for_host_prints_what_a_remote_worker_needs(
        tls_cluster: Cluster, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("RENDERER_DATABASE_URL", raising=False)
    monkeypatch.setenv("RENDERER_HOME", str(tls_cluster.home))
    monkeypatch.setenv("RENDERER_DB_PORT", str(tls_cluster.port))
    monkeypatch.setenv("RENDERER_DB_TLS", "1")
    monkeypatch.setenv("RENDERER_DB_TLS_NAMES", "db.example")
    ca_path = tmp_path / "worker" / "ca.crt"
    result = CliRunner().invoke(
        main, ["db", "url", "--for-host", "localhost", "--ca-path", str(ca_path)])
    assert result.exit_code == 0, result.output + result.stderr
    assert result.stderr == ""
    # The lines run as a shell script on "the worker" write the CA and export the URL.
    script = result.output + 'psql_url="$RENDERER_DATABASE_URL"; echo "$psql_url"\n'
    ran = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True)
    url = ran.stdout.strip().splitlines()[-1]
    assert "sslmode=verify-full" in url and ca_path.read_text() == tls_cluster.ca_file.read_text()
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
                            ).fetchone() == (True,)
    refused = CliRunner().invoke(main, ["db", "url", "--for-host", "10.9.9.9"])
    assert refused.exit_code == 2 and "RENDERER_DB_LISTEN" in refused.stderr
