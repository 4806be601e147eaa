"""Start a PgBouncer in transaction pooling in front of a PostgreSQL (tests and the hosts test).

PgBouncer refuses to run as root: when we are root it runs as the embedded cluster's service
user (``renderer-pg``, the owner of the cluster's socket folder it connects through). It runs
in the foreground as our child, so its pid is ours to stop.

    bouncer = start(folder, backend_host="/tmp/sock", backend_port=5432, port=6432)
    ...
    bouncer.stop()
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SERVICE_USER = "renderer-pg"  # renderer.localdb.SERVICE_USER


@dataclass
class Bouncer:
    folder: Path
    port: int
    listen: str
    process: subprocess.Popen[bytes] | None = None

    def url(self, database: str, user: str = "renderer", password: str | None = None,
            query: str = "") -> str:
        auth = f"{user}:{password}" if password else user
        return f"postgresql://{auth}@{self.listen}:{self.port}/{database}{query}"

    @property
    def logfile(self) -> Path:
        return self.folder / "pgbouncer.log"

    def start(self) -> Bouncer:
        binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
        user = _run_as()
        self.process = subprocess.Popen(
            [binary, str(self.folder / "pgbouncer.ini")], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, user=user.pw_uid if user else None,
            group=user.pw_gid if user else None, extra_groups=[] if user else None)
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection((self.listen, self.port), timeout=1):
                    return self
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    log = self.logfile.read_text() if self.logfile.exists() else ""
                    raise RuntimeError(f"pgbouncer did not start: {log[-500:]}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


def _run_as() -> pwd.struct_passwd | None:
    return pwd.getpwnam(SERVICE_USER) if os.geteuid() == 0 else None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def configure(folder: Path, *, backend_host: str, backend_port: int, port: int,
              listen: str = "127.0.0.1", passwords: dict[str, str] | None = None,
              tls: tuple[Path, Path] | None = None, pool_size: int = 20) -> Bouncer:
    """Write ``pgbouncer.ini`` and its users file in ``folder``: every database of the
    backend (``*``), transaction pooling, ``renderer`` as a stats user (``renderer doctor``
    reads ``pool_mode`` from the admin console). ``passwords``: SCRAM logins for these users
    (else trust); ``tls``: (certificate, key) for client TLS."""
    folder.mkdir(parents=True, exist_ok=True)
    users = passwords or {"renderer": ""}
    (folder / "users.txt").write_text(
        "".join(f'"{u}" "{p}"\n' for u, p in users.items()))
    lines = [
        "[databases]",
        f"* = host={backend_host} port={backend_port} user=renderer",
        "[pgbouncer]",
        f"listen_addr = {listen}",
        f"listen_port = {port}",
        "unix_socket_dir =",
        f"auth_type = {'scram-sha-256' if passwords else 'trust'}",
        f"auth_file = {folder / 'users.txt'}",
        "pool_mode = transaction",
        "max_client_conn = 500",
        f"default_pool_size = {pool_size}",
        "stats_users = renderer",
        f"logfile = {folder / 'pgbouncer.log'}",
        f"pidfile = {folder / 'pgbouncer.pid'}",
        "server_login_retry = 1",
        "query_wait_timeout = 60",
    ]
    if tls is not None:
        served = []
        for source in tls:
            target = folder / source.name
            shutil.copyfile(source, target)
            served.append(target)
        lines += ["client_tls_sslmode = require", f"client_tls_cert_file = {served[0]}",
                  f"client_tls_key_file = {served[1]}"]
    (folder / "pgbouncer.ini").write_text("\n".join(lines) + "\n")
    user = _run_as()
    for path in [folder, *folder.iterdir()]:
        if user is not None:
            os.chown(path, user.pw_uid, user.pw_gid)
        path.chmod(0o700 if path.is_dir() else 0o600)
    return Bouncer(folder, port, listen)
