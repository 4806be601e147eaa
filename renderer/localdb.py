"""The embedded PostgreSQL cluster used when ``RENDERER_DATABASE_URL`` is unset.

It lives under ``$RENDERER_HOME/postgres`` and listens on a Unix socket in that folder only
(TCP on 127.0.0.1 when a port is configured). PostgreSQL refuses to run as root, so when we
are root the server runs as the unprivileged system user ``renderer-pg``, which gets the data
folder and search (not read) permission on its ancestors. A file lock serialises initdb and
start between concurrent ``renderer`` processes.

Who may connect: over the socket, anyone who can reach it, without a password; its folder and
the socket itself are 0700, so that is the cluster's OS user and root. Over TCP, which any
local account can reach, only with the superuser's password (``scram-sha-256``): a random one
kept in ``$RENDERER_HOME/db-password`` (0600, the invoking user's), which
:meth:`Cluster.tcp_url` (``renderer db url``) puts in the URL. ``pg_hba.conf`` is rewritten and
the password set at every start, which also closes a cluster made by an older version with
``initdb --auth=trust`` (trust over TCP: any local account was superuser); one found running
is fixed in place (reload) by :meth:`Cluster.ensure_started`. To change the password, delete
the file and restart the cluster.

Workers on other machines (``RENDERER_DB_LISTEN`` beyond loopback, see docs/hosts.md) log in
with the same password; with ``RENDERER_DB_TLS`` the cluster also gets a certificate authority
of its own and a server certificate for its addresses (made by the ``openssl`` command, kept in
``$RENDERER_HOME/db-tls``), remote logins must use TLS (``hostssl``), and
``renderer db url --for-host`` prints the URL (``sslmode=verify-full``) and the CA a worker
needs.
"""

from __future__ import annotations

import base64
import fcntl
import glob
import hashlib
import hmac
import ipaddress
import os
import pwd
import secrets
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from renderer.errors import ConfigError, DatabaseError, MissingDependency

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

PASSWORD_FILE = "db-password"
# The whole pg_hba.conf, written at every start. Socket: the folder's and socket's 0700 are the
# guard (trust for those who can reach it). TCP: any local account can reach 127.0.0.1, so the
# superuser's password is needed. No replication lines: wal_level is minimal.
HBA = """\
# written by renderer at every start (renderer/localdb.py): edits are lost
# TYPE  DATABASE  USER  ADDRESS        METHOD
local   all       all                  trust
host    all       all   127.0.0.1/32   scram-sha-256
host    all       all   ::1/128        scram-sha-256
"""
SCRAM_ITERATIONS = 4096  # PostgreSQL's default (scram_iterations)
TLS_DIR = "db-tls"  # under RENDERER_HOME: the CA (kept by the invoking user) and its names
CERT_DAYS = 3650
_ANY = {"*", "0.0.0.0", "::"}


def hba(listen: tuple[str, ...] = ("127.0.0.1",), tls: bool = False) -> str:
    """pg_hba.conf for a cluster listening on ``listen``: :data:`HBA`, plus, when it listens
    beyond loopback, password logins from anywhere (over TLS only when ``tls``)."""
    if all(_is_loopback(a) for a in listen):
        return HBA
    kind = "hostssl" if tls else "host"
    return HBA + (f"{kind:<7} all       all   0.0.0.0/0      scram-sha-256\n"
                  f"{kind:<7} all       all   ::/0           scram-sha-256\n")


def _is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def split_names(text: str) -> tuple[str, ...]:
    """``"a, b,,c"`` -> ``("a", "b", "c")``."""
    return tuple(n.strip() for n in text.split(",") if n.strip())


def scram_verifier(password: str, salt: bytes | None = None,
                   iterations: int = SCRAM_ITERATIONS) -> str:
    """The ``SCRAM-SHA-256`` verifier PostgreSQL stores for ``password`` (RFC 5802, 7677), so
    that the password itself never reaches the server, its logs or a process list.

    Examples
    --------
    >>> scram_verifier("pencil", b"0123456789abcdef").split("$")[:2]
    ['SCRAM-SHA-256', '4096:MDEyMzQ1Njc4OWFiY2RlZg==']
    """
    salt = secrets.token_bytes(16) if salt is None else salt
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    b64 = base64.b64encode
    return (f"SCRAM-SHA-256${iterations}:{b64(salt).decode()}"
            f"${b64(hashlib.sha256(client_key).digest()).decode()}:{b64(server_key).decode()}")


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
    listen: tuple[str, ...] = ("127.0.0.1",)
    tls: bool = False
    tls_names: tuple[str, ...] = field(default=())

    @classmethod
    def from_settings(cls, settings: Any) -> Cluster:
        """The cluster that ``settings`` (a :class:`renderer.config.Settings`) describe."""
        return cls(settings.home, settings.db_port, listen=split_names(settings.db_listen),
                   tls=settings.db_tls, tls_names=split_names(settings.db_tls_names))

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

    @property
    def password_file(self) -> Path:
        return self.home / PASSWORD_FILE

    def url(self, database: str = DATABASE) -> str:
        """The socket URL (no password: the socket is for the cluster's OS user and root)."""
        return f"postgresql://{SUPERUSER}@/{database}?host={self.socket_dir}&port={self.socket_port}"

    def tcp_url(self, database: str = DATABASE) -> str:
        """The TCP URL with the superuser's password; needs a port and a started cluster."""
        if not self.port:
            raise DatabaseError("the embedded cluster listens on no TCP port",
                                "set RENDERER_DB_PORT, then restart it: renderer db stop")
        password = quote(self._password(create=False), safe="")
        return f"postgresql://{SUPERUSER}:{password}@127.0.0.1:{self.port}/{database}"

    # -- the superuser's password -----------------------------------------------------------

    def _password(self, create: bool) -> str:
        """The password in :attr:`password_file`, made (under the lock) when missing and
        ``create``. The file must be ours, a regular file, not a link; its mode is put back to
        0600 if something widened it."""
        try:
            fd = os.open(self.password_file, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            if not create:
                raise DatabaseError(f"{self.password_file} is missing",
                                    "start the cluster to make it: renderer db start") from None
            return self._new_password()
        except OSError as exc:
            raise DatabaseError(f"cannot read {self.password_file}: {exc.strerror}",
                                "remove it and restart the cluster") from exc
        with os.fdopen(fd) as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
                raise DatabaseError(f"{self.password_file} is not a file of this user",
                                    "remove it and restart the cluster")
            if stat.S_IMODE(info.st_mode) != 0o600:
                os.fchmod(handle.fileno(), 0o600)
            password = handle.read().strip()
        if not password:
            raise DatabaseError(f"{self.password_file} is empty",
                                "remove it and restart the cluster")
        return password

    def _new_password(self) -> str:
        password = secrets.token_urlsafe(32)
        partial = self.password_file.with_name(f".{PASSWORD_FILE}.{os.getpid()}")
        partial.unlink(missing_ok=True)  # left by a crash
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(password + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.link(partial, self.password_file)  # never replaces one: readers see it whole
        finally:
            partial.unlink(missing_ok=True)
        return password

    # -- TLS ------------------------------------------------------------------------------

    @property
    def tls_dir(self) -> Path:
        return self.home / TLS_DIR

    @property
    def ca_file(self) -> Path:
        """The CA certificate a client verifies the server with (``sslrootcert``)."""
        return self.tls_dir / "ca.crt"

    def cert_names(self) -> tuple[str, ...]:
        """The names and addresses the server certificate is valid for."""
        names = ["localhost", "127.0.0.1", socket.gethostname(),
                 *(a for a in self.listen if a not in _ANY), *self.tls_names]
        return tuple(dict.fromkeys(names))

    def ensure_certificates(self) -> tuple[Path, Path]:
        """The server certificate and key (made with ``openssl``, with a CA of the cluster's
        own the first time; the certificate again when :meth:`cert_names` changed)."""
        openssl = shutil.which("openssl")
        if openssl is None:
            raise MissingDependency("openssl is not installed (needed for RENDERER_DB_TLS)",
                                    "apt-get install openssl")
        self.tls_dir.mkdir(parents=True, exist_ok=True)
        self.tls_dir.chmod(0o700)
        ca_key, cert, key = (self.tls_dir / n for n in ("ca.key", "server.crt", "server.key"))
        if not (self.ca_file.exists() and ca_key.exists()):
            _openssl(openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                     "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(ca_key),
                     "-out", str(self.ca_file), "-days", str(CERT_DAYS),
                     "-subj", "/CN=renderer database CA",
                     "-addext", "basicConstraints=critical,CA:TRUE",
                     "-addext", "keyUsage=critical,keyCertSign,cRLSign")
            cert.unlink(missing_ok=True)
        names = "\n".join(self.cert_names())
        names_file = self.tls_dir / "server.names"
        if not cert.exists() or _read(names_file) != names:
            alt = ",".join(_san(n) for n in self.cert_names())
            with tempfile.TemporaryDirectory(dir=self.tls_dir) as work:
                csr, ext = Path(work) / "server.csr", Path(work) / "ext.cnf"
                ext.write_text(f"subjectAltName={alt}\nbasicConstraints=CA:FALSE\n"
                               "keyUsage=critical,digitalSignature,keyEncipherment\n"
                               "extendedKeyUsage=serverAuth\n")
                _openssl(openssl, "req", "-newkey", "ec", "-pkeyopt",
                         "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key),
                         "-out", str(csr), "-subj", "/CN=renderer database")
                _openssl(openssl, "x509", "-req", "-in", str(csr), "-CA", str(self.ca_file),
                         "-CAkey", str(ca_key), "-set_serial",
                         str(int.from_bytes(secrets.token_bytes(8), "big")),
                         "-days", str(CERT_DAYS), "-extfile", str(ext), "-out", str(cert))
            names_file.write_text(names)
        for secret in (ca_key, key):
            secret.chmod(0o600)
        self.ca_file.chmod(0o644)
        return cert, key

    def _tls_settings(self, user: pwd.struct_passwd | None) -> dict[str, str]:
        """ssl on, with a copy of the certificate and key the server may read (its own
        user's, key 0600, as PostgreSQL demands)."""
        cert, key = self.ensure_certificates()
        served = self.root / "tls"
        served.mkdir(mode=0o700, exist_ok=True)
        for source in (cert, key):
            target = served / source.name
            shutil.copyfile(source, target)
            target.chmod(0o600)
            if user is not None:
                os.chown(target, user.pw_uid, user.pw_gid)
        if user is not None:
            os.chown(served, user.pw_uid, user.pw_gid)
        return {"ssl": "on", "ssl_cert_file": f"'{served / cert.name}'",
                "ssl_key_file": f"'{served / key.name}'",
                "ssl_min_protocol_version": "'TLSv1.2'"}

    def url_for_host(self, host: str, ca_path: str | None = None,
                     database: str = DATABASE) -> str:
        """The URL a worker on another machine uses to reach this cluster at ``host`` (with
        the password; ``sslmode=verify-full`` and the CA at ``ca_path`` when TLS is on)."""
        if not self.port:
            raise ConfigError("the embedded cluster listens on no TCP port",
                              "set RENDERER_DB_PORT and RENDERER_DB_LISTEN, then restart it")
        if all(_is_loopback(a) for a in self.listen) and not _is_loopback(host):
            raise ConfigError(f"the embedded cluster listens on {','.join(self.listen)} only",
                              f"set RENDERER_DB_LISTEN to include {host}'s address (or *), "
                              "then restart it: renderer db stop && renderer db start")
        if self.tls and host not in self.cert_names():
            raise ConfigError(f"{host} is not a name of the server certificate "
                              f"({', '.join(self.cert_names())})",
                              "add it to RENDERER_DB_TLS_NAMES, then restart the cluster")
        password = quote(self._password(create=False), safe="")
        netloc = f"[{host}]" if ":" in host else host
        query = ("?" + urlencode({"sslmode": "verify-full",
                                  "sslrootcert": ca_path or str(self.ca_file)})
                 if self.tls else "")
        return f"postgresql://{SUPERUSER}:{password}@{netloc}:{self.port}/{database}{query}"

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
        # The socket folder may be in /tmp, where another account could have made it first.
        info = self.socket_dir.lstat()
        owners = {os.geteuid()} | ({user.pw_uid} if user else set())
        if not stat.S_ISDIR(info.st_mode) or info.st_uid not in owners:
            raise DatabaseError(
                f"the socket folder {self.socket_dir} is not a folder of this user",
                "remove it, or set a shorter RENDERER_HOME",
            )
        if user is None:
            for folder in (self.root, self.socket_dir):
                folder.chmod(0o700)
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
             timeout: float = 120, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"}
        result = subprocess.run(  # as the service user when we are root (None: as ourselves)
            args, capture_output=True, text=True, cwd=self.root, env=env, timeout=timeout,
            input=stdin, user=None if user is None else user.pw_uid,
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
            "listen_addresses": f"'{','.join(self.listen)}'" if self.port else "''",
            **(self._tls_settings(user) if self.tls else {}),
            "port": str(self.socket_port),
            "unix_socket_directories": f"'{self.socket_dir}'",
            "unix_socket_permissions": "0700",
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

    def _write_hba(self, user: pwd.struct_passwd | None) -> bool:
        """Write :data:`HBA` as pg_hba.conf unless it is there already; True if written."""
        hba_file = self.data / "pg_hba.conf"
        text = hba(self.listen, self.tls)
        if _read(hba_file) == text:
            return False
        partial = self.data / "pg_hba.conf.renderer"
        partial.unlink(missing_ok=True)
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        if user is not None:
            os.chown(partial, user.pw_uid, user.pw_gid)
        partial.replace(hba_file)  # whole or not at all, for a server reading it at reload
        return True

    def _set_password(self, bindir: Path, user: pwd.struct_passwd | None) -> None:
        """Give the superuser the password of :attr:`password_file` (made if missing); the
        statement goes through stdin, and holds only the SCRAM verifier."""
        verifier = scram_verifier(self._password(create=True))
        self._run([*self._psql(bindir), "-v", "ON_ERROR_STOP=1", "-f", "-"], user,
                  stdin=f"ALTER ROLE \"{SUPERUSER}\" PASSWORD '{verifier}';\n")

    def _psql(self, bindir: Path, database: str = "postgres") -> list[str]:
        return [str(bindir / "psql"), "-h", str(self.socket_dir), "-p", str(self.socket_port),
                "-U", SUPERUSER, "-d", database, "-XAtq"]

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
            self._write_hba(user)
            self._run([str(bindir / "pg_ctl"), "start", "-D", str(self.data), "-w", "-t", "60",
                       "-l", str(self.logfile)], user)
            self._create_database(bindir, user)
            self._set_password(bindir, user)
            return True

    def _secure_running(self) -> None:
        """Close a running cluster that an older version started with trust over TCP: rewrite
        pg_hba.conf, reload, set the password. Costs one file read when there is nothing to
        do."""
        if (_read(self.data / "pg_hba.conf") == hba(self.listen, self.tls)
                and self.password_file.exists()):
            return
        bindir = find_bindir()
        with self._lock():
            user = self._service_user()
            if not self.is_running():
                return  # stopped meanwhile: the next start does it
            self._set_password(bindir, user)  # before TCP needs it
            if self._write_hba(user):
                self._run([str(bindir / "pg_ctl"), "reload", "-D", str(self.data)], user)

    def _create_database(self, bindir: Path, user: pwd.struct_passwd | None) -> None:
        psql = self._psql(bindir)
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
        """Start the cluster unless it runs; return the (socket) URL of its database."""
        if not self.is_running():
            self.start()
            for _ in range(50):  # pg_ctl -w returned; the socket is normally there already
                if (self.socket_dir / f".s.PGSQL.{self.socket_port}").exists():
                    break
                time.sleep(0.1)
        else:
            self._secure_running()
        return self.url()


def _san(name: str) -> str:
    try:
        return f"IP:{ipaddress.ip_address(name)}"
    except ValueError:
        return f"DNS:{name}"


def _openssl(openssl: str, *args: str) -> None:
    result = subprocess.run([openssl, *args], capture_output=True, text=True, timeout=60,
                            check=False)
    if result.returncode != 0:
        detail = result.stderr.strip().splitlines()
        raise DatabaseError(f"openssl {args[0]} failed: {detail[-1] if detail else '?'}",
                            "check the openssl installation")


def _read(path: Path) -> str | None:
    """A file's text, or None while it does not exist (another process may be making the
    cluster at that moment: ``renderer`` commands started together)."""
    try:
        return path.read_text()
    except FileNotFoundError:
        return None
