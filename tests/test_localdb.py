"""The embedded cluster: starts as root in any folder, once, under a lock."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest

from renderer.errors import DatabaseError
from renderer.localdb import SERVICE_USER, Cluster


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
            import pwd

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
