"""``renderer db``: the embedded cluster and migrations."""

from __future__ import annotations

import os
import shutil

import click

from renderer import schema
from renderer.cli._common import print_json, settings
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
    return Cluster(s.home, s.db_port)


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
        cluster = Cluster(s.home, s.db_port)
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
def url() -> None:
    """Print the database URL (starting the embedded cluster if needed).

    With RENDERER_DB_PORT set, the embedded cluster's TCP URL, with its password (kept in
    $RENDERER_HOME/db-password); otherwise its Unix-socket URL, or RENDERER_DATABASE_URL.

    \b
    Example:
        psql "$(renderer db url)"
    """
    s = settings()
    if s.database_url or not s.db_port:
        click.echo(resolve_url(s))
        return
    cluster = Cluster(s.home, s.db_port)
    cluster.ensure_started()
    click.echo(cluster.tcp_url())


@db.command(context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def psql(args: tuple[str, ...]) -> None:
    """Open psql on the database; extra arguments go to psql.

    \b
    Example:
        renderer db psql -c "SELECT * FROM renderer.queue_status()"
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
