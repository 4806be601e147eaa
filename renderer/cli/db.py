"""``renderer db``: the embedded cluster and migrations."""

from __future__ import annotations

import os
import shlex
import shutil

import click

from renderer import schema
from renderer.cli._common import print_json, settings
from renderer.config import Settings
from renderer.db import resolve_url
from renderer.errors import ConfigError
from renderer.localdb import Cluster, find_bindir


def _cluster() -> Cluster:
    s = settings()
    if s.database_url:
        raise ConfigError(
            "RENDERER_DATABASE_URL is set, so the embedded database is not used",
            "unset it to manage the embedded cluster",
        )
    return Cluster.from_settings(s)


@click.group("db")
def db() -> None:
    """The database: embedded cluster and migrations.

    \b
    Example:
        renderer db start && renderer db status
    """


@db.command()
def start() -> None:
    """Start the embedded PostgreSQL cluster (created on first use).

    \b
    Example:
        RENDERER_HOME=$(mktemp -d) renderer db start
    """
    cluster = _cluster()
    started = cluster.start()
    click.echo(f"{'started' if started else 'already running'}: {cluster.url()}")


@db.command()
def stop() -> None:
    """Stop the embedded PostgreSQL cluster.

    \b
    Example:
        renderer db stop
    """
    cluster = _cluster()
    click.echo("stopped" if cluster.stop() else "not running")


@db.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(as_json: bool) -> None:
    """Show whether the database runs and whether its schema is current.

    \b
    Example:
        renderer db status --json
    """
    s = settings()
    info: dict[str, object] = {"embedded": not s.database_url}
    if not s.database_url:
        cluster = Cluster.from_settings(s)
        info.update(data=str(cluster.data), running=cluster.is_running())
        if not info["running"]:
            info["url"] = cluster.url()
            _show(info, as_json)
            raise SystemExit(1)
    url = resolve_url(s)
    info.update(url=url, revision=schema.current(url), head=schema.head())
    info["current"] = info["revision"] == info["head"]
    _show(info, as_json)


def _show(info: dict[str, object], as_json: bool) -> None:
    if as_json:
        print_json(info)
    else:
        for key, value in info.items():
            click.echo(f"{key}: {value}")


@db.command()
@click.option("--for-host", "host", default=None, metavar="ADDRESS",
              help="Print what a worker on another machine needs to reach this database at "
                   "ADDRESS (a name or address of this machine the worker can reach).")
@click.option("--ca-path", default=None, metavar="PATH",
              help="With --for-host: where the worker keeps the CA certificate "
                   "[default: the path it has here].")
@click.option("--json", "as_json", is_flag=True, help="With --for-host: print JSON.")
def url(host: str | None, ca_path: str | None, as_json: bool) -> None:
    """Print the database URL (starting the embedded cluster if needed).

    With RENDERER_DB_PORT set, the embedded cluster's TCP URL, with its password (kept in
    $RENDERER_HOME/db-password); otherwise its Unix-socket URL, or RENDERER_DATABASE_URL.
    With --for-host, shell lines to run on a remote worker: the CA certificate (when
    RENDERER_DB_TLS is on) and RENDERER_DATABASE_URL with sslmode=verify-full. The output
    holds the password: it goes to stdout only, never to a log.

    \b
    Example:
        psql "$(renderer db url)"
        renderer db url --for-host 10.0.0.5 | ssh worker1 'cat > renderer-env.sh'
    """
    s = settings()
    if host is not None:
        _for_host(s, host, ca_path, as_json)
        return
    if s.database_url or not s.db_port:
        click.echo(resolve_url(s))
        return
    cluster = Cluster.from_settings(s)
    cluster.ensure_started()
    click.echo(cluster.tcp_url())


def _for_host(s: Settings, host: str, ca_path: str | None, as_json: bool) -> None:
    cluster = _cluster()
    cluster.ensure_started()
    target = cluster.url_for_host(host, ca_path)
    ca_pem = cluster.ca_file.read_text() if cluster.tls else None
    root = ca_path or str(cluster.ca_file)
    if as_json:
        print_json({"url": target, "tls": cluster.tls, "sslrootcert": root if ca_pem else None,
                    "ca_pem": ca_pem, "env": {"RENDERER_DATABASE_URL": target}})
        return
    click.echo(f"# a renderer worker reaching this database at {host}: run on the worker "
               "(these lines hold the database password)")
    if ca_pem is None:
        click.echo("# TLS is off: the password and the data cross the network in clear "
                   "(set RENDERER_DB_TLS=1 on the database machine and restart it)")
    else:
        click.echo(f"mkdir -p {shlex.quote(os.path.dirname(root) or '.')}")
        click.echo(f"cat > {shlex.quote(root)} <<'EOF'\n{ca_pem.rstrip()}\nEOF")
    click.echo(f"export RENDERER_DATABASE_URL={shlex.quote(target)}")


@db.command(context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def psql(args: tuple[str, ...]) -> None:
    """Open psql on the database; extra arguments go to psql.

    \b
    Example:
        renderer db psql -c "SELECT * FROM renderer.queue_status_v3(300, '{}')"
    """
    target = resolve_url(settings())
    binary = shutil.which("psql")
    if binary is None:
        try:
            binary = str(find_bindir() / "psql")
        except Exception as exc:
            raise ConfigError("psql is not installed", "apt-get install postgresql-client") from exc
    os.execv(binary, [binary, target, *args])


@db.command()
@click.option("--sql", "as_sql", is_flag=True,
              help="Print the DDL for a DBA to run with psql instead of applying it.")
def migrate(as_sql: bool) -> None:
    """Apply pending migrations (or print them as SQL).

    \b
    Example:
        renderer db migrate --sql > schema.sql
    """
    if as_sql:
        click.echo(schema.sql_script())
        return
    target = resolve_url(settings())
    before = schema.current(target)
    schema.upgrade(target)
    after = schema.current(target)
    click.echo(f"schema at {after}" + (f" (was {before})" if before != after else " (current)"))


COMMANDS = [db]
