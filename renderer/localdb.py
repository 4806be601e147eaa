"""The embedded PostgreSQL cluster used when ``RENDERER_DATABASE_URL`` is unset.

It lives under ``$RENDERER_HOME/postgres`` and listens on a Unix socket in that folder only
(TCP on 127.0.0.1 when a port is configured). PostgreSQL refuses to run as root, so when we
are root the server runs as the unprivileged system user ``renderer-pg``, which gets the data
folder and search (not read) permission on its ancestors. A file lock serialises initdb and
start between concurrent ``renderer`` processes.
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import os
import pwd
import shutil
import stat
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from renderer.errors import DatabaseError, MissingDependency

SERVICE_USER = "renderer-pg"
SUPERUSER = "renderer"
DATABASE = "renderer"
INSTALL_HINT = (
    "run scripts/install-system-deps (apt-get install postgresql-15 postgresql-15-postgis-3)"
)

# Batch-friendly settings: big sorts and index builds, few checkpoints. synchronous_commit
# stays on for the server; the queue turns it off per transaction where losing the last
# few milliseconds of claims or heartbeats on a crash is harmless.
BATCH_SETTINGS = {
    "shared_buffers": "256MB",
    "work_mem": "64MB",
    "maintenance_work_mem": "512MB",
    "max_wal_size": "4GB",
    "checkpoint_timeout": "15min",
    "max_connections": "200",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "jit": "off",
    "log_min_messages": "warning",
    "log_min_error_statement": "panic",
}


def find_bindir() -> Path:
    """The newest PostgreSQL server bin folder (``$RENDERER_PG_BINDIR`` overrides)."""
    override = os.environ.get("RENDERER_PG_BINDIR")
    candidates = [override] if override else sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name)
    )
    for folder in reversed(candidates):
        if (Path(folder) / "initdb").exists() and (Path(folder) / "pg_ctl").exists():
            return Path(folder)
    raise MissingDependency("PostgreSQL server is not installed", INSTALL_HINT)


@dataclass
class Cluster:
    """A local cluster under ``home/postgres``; ``port`` 0 means socket only."""

    home: Path
    port: int = 0
    extra_settings: dict[str, str] | None = None

    @property
    def root(self) -> Path:
        return self.home / "postgres"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def logfile(self) -> Path:
        return self.root / "server.log"

    @property
    def socket_dir(self) -> Path:
        run = self.root / "run"
        # A Unix socket path must fit in 107 bytes; deep homes get a short folder in /tmp.
        if len(str(run / ".s.PGSQL.65535")) < 100:
            return run
        digest = hashlib.sha1(str(self.root).encode()).hexdigest()[:12]
        return Path("/tmp") / f"renderer-pg-{digest}"

    @property
    def socket_port(self) -> int:
        return self.port or 5432

    def url(self, database: str = DATABASE) -> str:
        return f"postgresql://{SUPERUSER}@/{database}?host={self.socket_dir}&port={self.socket_port}"

    # -- running as another user ------------------------------------------------------------

    def _service_user(self) -> pwd.struct_passwd | None:
        """The account the server runs as when we are root; None when we are not."""
        if os.geteuid() != 0:
            return None
        try:
            return pwd.getpwnam(SERVICE_USER)
        except KeyError:
            pass
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        subprocess.run(
            [useradd, "--system", "--no-create-home", "--home-dir", "/nonexistent",
             "--shell", "/usr/sbin/nologin", SERVICE_USER],
            check=False, capture_output=True,
        )
        try:
            return pwd.getpwnam(SERVICE_USER)
        except KeyError as exc:
            raise DatabaseError(
                f"cannot create the system user {SERVICE_USER} to run PostgreSQL as",
                "create it with useradd --system, or set RENDERER_DATABASE_URL",
            ) from exc

    def _prepare_folders(self, user: pwd.struct_passwd | None) -> None:
        for folder in (self.root, self.socket_dir):
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DatabaseError(
                    f"cannot create {folder}: {exc.strerror}",
                    "set RENDERER_HOME to a writable folder",
                ) from exc
        if user is None:
            return
        for folder in (self.root, self.socket_dir):
            for path in [folder, *folder.rglob("*")] if folder == self.root else [folder]:
                if path.stat().st_uid != user.pw_uid:
                    os.chown(path, user.pw_uid, user.pw_gid, follow_symlinks=False)
            folder.chmod(0o700)
        # The service user must be able to walk down to its folders (search, not read).
        for ancestor in [*self.root.parents, *self.socket_dir.parents]:
            mode = ancestor.stat().st_mode
            if not mode & stat.S_IXOTH:
                ancestor.chmod(mode | stat.S_IXOTH)

    def _run(self, args: list[str], user: pwd.struct_passwd | None, check: bool = True,
             timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"}
        result = subprocess.run(  # as the service user when we are root (None: as ourselves)
            args, capture_output=True, text=True, cwd=self.root, env=env, timeout=timeout,
            user=None if user is None else user.pw_uid,
            group=None if user is None else user.pw_gid,
            extra_groups=None if user is None else [],
        )
        if check and result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()
            raise DatabaseError(
                f"{Path(args[0]).name} failed: {detail[-1] if detail else result.returncode}",
                f"see {self.logfile}",
            )
        return result

    @contextmanager
    def _lock(self) -> Iterator[None]:
        try:
            self.home.mkdir(parents=True, exist_ok=True)
            handle = open(self.home / ".postgres.lock", "a")  # noqa: SIM115
        except OSError as exc:
            raise DatabaseError(
                f"RENDERER_HOME {self.home} is not writable: {exc.strerror}",
                "set RENDERER_HOME to a writable folder",
            ) from exc
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # -- lifecycle ---------------------------------------------------------------------------

    def is_running(self) -> bool:
        if not (self.data / "PG_VERSION").exists():
            return False
        bindir = find_bindir()
        result = self._run([str(bindir / "pg_ctl"), "status", "-D", str(self.data)],
                           self._service_user(), check=False)
        return result.returncode == 0

    def _write_settings(self, user: pwd.struct_passwd | None) -> None:
        settings = {
            **BATCH_SETTINGS,
            "listen_addresses": "'127.0.0.1'" if self.port else "''",
            "port": str(self.socket_port),
            "unix_socket_directories": f"'{self.socket_dir}'",
            **(self.extra_settings or {}),
        }
        conf = self.data / "renderer.conf"
        conf.write_text(
            "# written by renderer at every start; edit renderer.toml instead\n"
            + "".join(f"{k} = {v}\n" for k, v in settings.items())
        )
        main = self.data / "postgresql.conf"
        text = main.read_text()
        if "include_if_exists = 'renderer.conf'" not in text:
            main.write_text(text + "\ninclude_if_exists = 'renderer.conf'\n")
        if user is not None:
            os.chown(conf, user.pw_uid, user.pw_gid)

    def start(self) -> bool:
        """Start the cluster (initdb on first use). Returns False if it was running already."""
        bindir = find_bindir()
        with self._lock():
            user = self._service_user()
            if self.is_running():
                return False
            self._prepare_folders(user)
            if not (self.data / "PG_VERSION").exists():
                if self.data.exists():
                    shutil.rmtree(self.data)  # a half-made cluster from an interrupted initdb
                self._run([str(bindir / "initdb"), "-D", str(self.data), "-U", SUPERUSER,
                           "--auth=trust", "-E", "UTF8", "--no-locale", "--no-instructions"],
                          user)
            self._write_settings(user)
            self._run([str(bindir / "pg_ctl"), "start", "-D", str(self.data), "-w", "-t", "60",
                       "-l", str(self.logfile)], user)
            self._create_database(bindir, user)
            return True

    def _create_database(self, bindir: Path, user: pwd.struct_passwd | None) -> None:
        psql = [str(bindir / "psql"), "-h", str(self.socket_dir), "-p", str(self.socket_port),
                "-U", SUPERUSER, "-d", "postgres", "-XAtq"]
        exists = self._run([*psql, "-c", f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"],
                           user).stdout.strip()
        if not exists:
            self._run([*psql, "-c", f'CREATE DATABASE "{DATABASE}"'], user)

    def stop(self) -> bool:
        """Stop the cluster. Returns False if it was not running."""
        bindir = find_bindir()
        with self._lock():
            if not self.is_running():
                return False
            self._run([str(bindir / "pg_ctl"), "stop", "-D", str(self.data), "-m", "fast",
                       "-w", "-t", "60"], self._service_user())
            return True

    def ensure_started(self) -> str:
        """Start the cluster unless it runs; return the URL of its database."""
        if not self.is_running():
            self.start()
            for _ in range(50):  # pg_ctl -w returned; the socket is normally there already
                if (self.socket_dir / f".s.PGSQL.{self.socket_port}").exists():
                    break
                time.sleep(0.1)
        return self.url()
