"""Operations: ``renderer serve``, ``scheduler``, ``schedule`` and ``tokens``."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import threading
from typing import Any

import click

from renderer.cli._common import console, database, output_options, print_json, settings, show
from renderer.errors import ConfigError, InputError

# Commands import their library modules when they run, so that every other command (and
# `renderer --help`) starts without loading uvicorn, the pipelines or their dependencies.

log = logging.getLogger(__name__)


@click.command()
@click.option("--host", default=None, help="Address to listen on [default: web_host, 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port [default: web_port, 8080].")
@click.option("--no-scheduler", is_flag=True, help="Do not fire schedules in this process.")
@click.option("--web-workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="HTTP server processes sharing the port (each with its own pool).")
@click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True,
              help="Also run a pool of this many queue workers beside the service.")
@click.option("--access-log/--no-access-log", default=True, show_default=True,
              help="Log every request.")
def serve(host: str | None, port: int | None, no_scheduler: bool, web_workers: int,
          workers: int, access_log: bool) -> None:
    """Run the HTTP service: hooks, run API, status pages, metrics, schedules.

    Write endpoints (POST /hooks/s3, POST /api/runs) need an HMAC secret
    (RENDERER_WEB_SECRETS) or a token from `renderer tokens create`. With --web-workers N
    the requests are spread over N processes (schedules still fire from this one); with
    --workers N a `renderer work --processes N` pool runs beside the service and stops
    with it.

    \b
    Example:
        RENDERER_WEB_SECRETS=$(openssl rand -hex 32) renderer serve --port 8080
        renderer serve --web-workers 2 --workers 4
    """
    import uvicorn

    from renderer.web.app import create_app

    s = settings()
    target = database()
    host = host or s.web_host
    port = s.web_port if port is None else port
    if host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("listening on %s: pages and metrics are readable by anyone who can "
                    "reach it (write endpoints still need a signature or token)", host)
    options: dict[str, Any] = {"host": host, "port": port, "log_level": "info",
                               "access_log": access_log, "proxy_headers": False,
                               "server_header": False,
                               "log_config": None}  # uvicorn's lines in our format (_logs.py)
    pool = _start_workers(workers) if workers else None
    try:
        if web_workers == 1:
            uvicorn.run(create_app(s, url=target.url, run_scheduler=not no_scheduler),
                        **options)
        else:
            # Each process builds its own app (and pool) from the same settings; the
            # scheduler runs once, here, rather than in every process.
            if not no_scheduler:
                _start_scheduler(target.url)
            # A child imports the whole service before it answers the supervisor's ping: on a
            # busy machine that takes longer than uvicorn's 5 s, which restarts it in a loop.
            uvicorn.run("renderer.web.app:create_app", factory=True, workers=web_workers,
                        timeout_worker_healthcheck=60, **options)
    except OSError as exc:  # port in use, address not available
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                          "pick another --port or stop what uses it") from exc
    finally:
        if pool is not None:
            _stop_workers(pool)


def _start_workers(count: int) -> subprocess.Popen[bytes]:
    """A ``renderer work`` pool as a child process: the pool supervises its own children and
    handles its own signals, which it can only do in a main thread of its own."""
    log.info("starting a pool of %d worker(s) beside the service", count)
    return subprocess.Popen([sys.executable, "-m", "renderer", "work",
                             "--processes", str(count)])


def _stop_workers(pool: subprocess.Popen[bytes]) -> None:
    """SIGTERM (the workers finish their batch), then wait; killed only if it hangs."""
    if pool.poll() is None:
        pool.terminate()
        try:
            pool.wait(timeout=120)
        except subprocess.TimeoutExpired:
            pool.kill()
            pool.wait()


def _start_scheduler(url: str) -> None:
    from renderer import schedules

    threading.Thread(target=schedules.run_scheduler, args=(url,),
                     kwargs={"stop": threading.Event()}, name="renderer-scheduler",
                     daemon=True).start()


@click.command()
@click.option("--once", is_flag=True, help="Fire what is due now and exit.")
def scheduler(once: bool) -> None:
    """Fire due schedules into the work queue (each tick once, however many run).

    \b
    Example:
        renderer scheduler --once && renderer queue status
    """
    from renderer import schedules

    url = database().url
    stop = threading.Event()
    if not once:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        log.info("scheduler running; Ctrl-C to stop")

    def report(fired: list[schedules.Fired]) -> None:
        for f in fired:
            click.echo(f"fired {f.schedule} tick {f.tick:%Y-%m-%dT%H:%MZ}")

    total = schedules.run_scheduler(url, stop=stop, once=once, on_fire=report)
    if once and not total:
        click.echo("nothing due")


@click.group("schedule")
def schedule() -> None:
    """Cron schedules stored in the database (UTC), fired by `renderer scheduler`.

    \b
    Example:
        renderer schedule add coverage-nightly --cron "0 4 * * *" --kind coverage --key coverage
    """


@schedule.command("add")
@click.argument("name", required=False)
@click.option("--cron", help="5-field cron expression in UTC, e.g. '*/5 * * * *'.")
@click.option("--kind", help="Queue kind to enqueue at each tick.")
@click.option("--key", help="Queue key of the item.")
@click.option("--payload", default=None, help="JSON object given to the item.")
@click.option("--priority", type=int, default=None, help="Queue priority [default: batch].")
@click.option("--disabled", is_flag=True, help="Store it without firing it.")
@click.option("--replace", is_flag=True, help="Replace a schedule of the same name.")
@click.option("--defaults", is_flag=True, help="Restore the default schedules that are missing.")
def schedule_add(name: str | None, cron: str | None, kind: str | None, key: str | None,
                 payload: str | None, priority: int | None, disabled: bool, replace: bool,
                 defaults: bool) -> None:
    """Add a schedule (or restore the defaults with --defaults).

    \b
    Example:
        renderer schedule add submit-fast --cron "* * * * *" --kind traffic-submit \\
            --key traffic-submit --payload '{"source": "s3://bucket/reports"}'
    """
    from renderer import schedules

    with database().connect() as conn:
        if defaults:
            added = schedules.restore_defaults(conn)
            conn.commit()
            click.echo("added " + ", ".join(s.name for s in added) if added
                       else "all default schedules exist")
            return
        missing = [f"--{n}" for n, v in (("cron", cron), ("kind", kind), ("key", key)) if not v]
        if name is None:
            missing.insert(0, "NAME")
        if missing:
            raise InputError(f"schedule add needs NAME, --cron, --kind and --key "
                             f"(missing: {', '.join(missing)})",
                             "see `renderer schedule add --help`")
        assert name and cron and kind and key
        _check_kind(kind)
        body = _payload(payload)
        s = schedules.add(conn, name, cron, kind, key, body, priority=priority,
                          enabled=not disabled, replace=replace)
        conn.commit()
    click.echo(f"schedule {s.name}: {s.cron} -> {s.kind} {s.key}; next tick "
               f"{s.next_tick():%Y-%m-%d %H:%M} UTC" if s.enabled else f"schedule {s.name} "
               "stored, disabled")


def _payload(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"--payload is not JSON: {exc}", "pass a JSON object") from exc
    if not isinstance(value, dict):
        raise InputError("--payload must be a JSON object", "wrap it in {...}")
    return value


def _check_kind(kind: str) -> None:
    """Refuse kinds no module registers: a schedule that can never run helps nobody."""
    from renderer import pipelines, queue

    pipelines.load_all()
    known = set(queue.KINDS)
    if kind not in known:
        raise InputError(f"unknown queue kind {kind!r}", "known: " + ", ".join(sorted(known)))


@schedule.command("list")
@output_options
def schedule_list(fmt: str) -> None:
    """List schedules with their last and next ticks.

    \b
    Example:
        renderer schedule list --json
    """
    from renderer import schedules

    with database().connect() as conn:
        schedules.ensure_defaults(conn)  # as a starting scheduler would: none missing
        conn.commit()
        rows = [s.as_dict() for s in schedules.list_schedules(conn)]
    # The payload is in --json; the table keeps to what fits a terminal.
    show([{**r, "enabled": "yes" if r["enabled"] else "no",
                  "last_tick": _t(r["last_tick"]), "next_tick": _t(r["next_tick"])}
          for r in rows], fmt, title="schedules (UTC)",
         columns=["name", "cron", "kind", "key", "enabled", "last_tick", "next_tick"], value=rows)


def _t(value: Any) -> str:
    return "" if value is None else f"{value:%Y-%m-%d %H:%M}"


@schedule.command("remove")
@click.argument("name")
def schedule_remove(name: str) -> None:
    """Remove a schedule (restore defaults with `renderer schedule add --defaults`).

    \b
    Example:
        renderer schedule remove traffic-submit
    """
    from renderer import schedules

    with database().connect() as conn:
        s = schedules.remove(conn, name)
        conn.commit()
    click.echo(f"removed schedule {s.name}")


@click.group("tokens")
def tokens_group() -> None:
    """API tokens for the write endpoints (Authorization: Bearer <token>), stored hashed.

    \b
    Example:
        renderer tokens create minio-events
    """


@tokens_group.command("create")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def tokens_create(name: str, as_json: bool) -> None:
    """Create a token; it is printed once and cannot be shown again.

    \b
    Example:
        renderer tokens create minio-events
    """
    from renderer import tokens

    with database().connect() as conn:
        plaintext, token = tokens.create(conn, name)
        conn.commit()
    if as_json:
        print_json({**token.as_dict(), "token": plaintext})
        return
    click.echo(plaintext)
    console.print(f"[dim]token {token.name} ({token.prefix}...): store it now, "
                  "it is not kept in readable form[/dim]", highlight=False)


@tokens_group.command("list")
@click.option("--all", "include_revoked", is_flag=True, help="Include revoked tokens.")
@output_options
def tokens_list(include_revoked: bool, fmt: str) -> None:
    """List tokens (names and prefixes only; tokens are stored hashed).

    \b
    Example:
        renderer tokens list --all
    """
    from renderer import tokens

    with database().connect() as conn:
        rows = [t.as_dict() for t in tokens.list_tokens(conn, include_revoked=include_revoked)]
    show([{**r, "prefix": r["prefix"] + "...", "created_at": _t(r["created_at"]),
                  "last_used_at": _t(r["last_used_at"]), "revoked_at": _t(r["revoked_at"])}
          for r in rows],
         fmt, title="API tokens",
         columns=["id", "name", "prefix", "created_at", "last_used_at", "revoked_at"],
         value=rows)


@tokens_group.command("revoke")
@click.argument("ref")
def tokens_revoke(ref: str) -> None:
    """Revoke a token by name, id or prefix.

    \b
    Example:
        renderer tokens revoke minio-events
    """
    from renderer import tokens

    with database().connect() as conn:
        revoked = tokens.revoke(conn, ref)
        conn.commit()
    for t in revoked:
        click.echo(f"revoked token {t.name} ({t.prefix}...)")


COMMANDS: list[click.Command] = [serve, scheduler, schedule, tokens_group]
