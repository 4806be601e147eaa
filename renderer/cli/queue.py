"""``renderer work`` and ``renderer queue``: the worker pool and the work queue."""

from __future__ import annotations

import json
import logging
import time
from datetime import timedelta
from typing import Any

import click

from renderer import queue as q
from renderer.cli._common import (
    console,
    database,
    is_terminal,
    output_options,
    print_json,
    print_table,
    settings,
    show,
)
from renderer.errors import InputError, QueueError

# Commands import their library modules when they run, so that every other command (and
# `renderer --help`) starts without loading the pipelines or their dependencies.

log = logging.getLogger("renderer.cli")


def _kinds(value: str | None) -> list[str] | None:
    names = [k.strip() for k in (value or "").split(",") if k.strip()]
    return names or None


@click.command("work")
@click.option("--processes", "-p", type=click.IntRange(min=1),
              help="Worker processes (default: the `processes` setting, twice the cores).")
@click.option("--kinds", help="Comma-separated kinds to work (default: all registered).")
@click.option("--until-empty", is_flag=True,
              help="Exit when nothing of these kinds is pending or running.")
@click.option("--max-items", type=click.IntRange(min=1), help="Stop after this many items.")
@click.option("--autoscale", metavar="MIN..MAX",
              help="Grow and shrink the process count between MIN and MAX by the queue's "
                   "desired-workers signal ([queue] target_drain_seconds).")
def work(processes: int | None, kinds: str | None, until_empty: bool,
         max_items: int | None, autoscale: str | None) -> None:
    """Run a pool of workers on the work queue.

    Each process claims batches, runs the registered handlers and completes the items;
    SIGTERM or Ctrl-C lets them finish their batch (twice: give the items back). With
    --until-empty a progress bar shows on a terminal.

    \b
    Example:
        renderer work --processes 4 --kinds histogram,speedtile --until-empty
        renderer work --autoscale 1..8
    """
    from renderer.pool import run_pool

    scale = _scale(autoscale, processes)
    s = settings()
    db = database()
    count = processes or s.worker_processes
    bar = _Progress(until_empty)
    with bar:
        stats = run_pool(db.url, processes=count, kinds=_kinds(kinds), until_empty=until_empty,
                         max_items=max_items, progress=bar.update, settings=s,
                         autoscale=scale)
    how = (f"{stats.processes} processes" if scale is None
           else f"{scale[0]}..{scale[1]} processes (at most {stats.peak} at once)")
    click.echo(f"done {stats.done} failed {stats.failed} in {stats.elapsed:.1f}s "
               f"({stats.done / max(stats.elapsed, 1e-9):.0f}/s) with {how}"
               + (f", {stats.restarts} restarted" if stats.restarts else ""))


def _scale(value: str | None, processes: int | None) -> tuple[int, int] | None:
    """``"1..8"`` -> (1, 8); InputError when malformed or given with --processes."""
    if value is None:
        return None
    if processes is not None:
        raise InputError("--autoscale and --processes exclude each other",
                         "give --autoscale MIN..MAX alone")
    lo, sep, hi = value.partition("..")
    if not sep or not lo.strip().isdigit() or not hi.strip().isdigit():
        raise InputError(f"invalid --autoscale {value!r}", "write MIN..MAX, e.g. 1..8")
    low, high = int(lo), int(hi)
    if not 1 <= low <= high:
        raise InputError(f"invalid --autoscale {value!r}: need 1 <= MIN <= MAX",
                         "write MIN..MAX, e.g. 1..8")
    return low, high


class _Progress:
    """A rich bar on a terminal with --until-empty; log lines every 10 s otherwise."""

    def __init__(self, until_empty: bool) -> None:
        self.rich = until_empty and is_terminal()
        self._bar: Any = None
        self._task: Any = None
        self._last_log = time.monotonic()

    def __enter__(self) -> _Progress:
        if self.rich:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(TextColumn("working"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TimeRemainingColumn(), console=console)
            self._bar.__enter__()
            self._task = self._bar.add_task("work", total=None)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def update(self, done: int, remaining: int | None) -> None:
        if self._bar is not None:
            total = done + remaining if remaining is not None else None
            self._bar.update(self._task, completed=done, total=total)
        elif time.monotonic() - self._last_log >= 10:
            self._last_log = time.monotonic()
            log.info("done %d, remaining %s", done, "?" if remaining is None else remaining)


@click.group("queue")
def queue_group() -> None:
    """The work queue: status, enqueue, retries, sets, pruning.

    \b
    Example:
        renderer queue status --watch
    """


def _status_tables(st: dict[str, Any]) -> None:
    columns = ["name", *q.STATES, "throughput_per_s", "eta_s", "oldest_pending_s"]
    total = st["total"] or {}
    console.print(f"[bold]queue[/bold] at {st['at']}: "
                  + ", ".join(f"{k} {total.get(k, 0)}" for k in q.STATES)
                  + f"; {st['workers_alive']} worker(s) alive")
    print_table([{"name": k, **v} for k, v in st["kinds"].items()], "kinds", columns)
    if st["sets"]:
        print_table([{"name": k, **v} for k, v in st["sets"].items()], "sets",
                    ["name", "state", *columns[1:]])
    if st.get("more_open_sets"):
        console.print("more sets have work left than shown: --sets N or --all-sets")
    if st["workers"]:
        print_table(st["workers"], "workers",
                    ["owner", "kinds", "done", "failed", "started_at", "silent_s"])


def _status(conn: Any, shown: int, all_sets: bool) -> dict[str, Any]:
    """The status with every set, or with the open sets and the newest (``shown`` in all):
    what it costs then follows ``shown``, not the sets kept."""
    if all_sets:
        return q.status(conn)
    sets, more = q.shown_sets(conn, shown)
    return {**q.status(conn, sets=sets), "more_open_sets": more}


@queue_group.command("status")
@click.option("--watch", is_flag=True, help="Refresh until Ctrl-C.")
@click.option("--interval", default=2.0, show_default=True, type=click.FloatRange(min=0.2),
              help="Seconds between refreshes with --watch.")
@click.option("--sets", "shown", default=20, show_default=True, type=click.IntRange(min=0),
              help="Sets to show: those with work left, then the newest.")
@click.option("--all-sets", is_flag=True,
              help="Show every set kept (slower with thousands of sets).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status_command(watch: bool, interval: float, shown: int, all_sets: bool,
                   as_json: bool) -> None:
    """Show pending, running, done and failed items per kind and set, throughput, ETA,
    oldest pending age and the workers alive. The sets shown are those with pending,
    held or running items, then the newest, --sets in all (--all-sets: every one).

    \b
    Example:
        renderer queue status --json | jq .kinds
        renderer queue status --sets 50
    """
    db = database()
    with db.connect(autocommit=True) as conn:
        q.rollup(conn)
        if not watch:
            st = _status(conn, shown, all_sets)
            print_json(st) if as_json else _status_tables(st)
            return
        from rich.live import Live

        try:
            if as_json:
                while True:
                    click.echo(json.dumps(_status(conn, shown, all_sets), default=str))
                    time.sleep(interval)
            with Live(console=console, auto_refresh=False) as live:
                while True:
                    q.rollup(conn)
                    with console.capture() as capture:
                        _status_tables(_status(conn, shown, all_sets))
                    from rich.text import Text

                    live.update(Text.from_ansi(capture.get()), refresh=True)
                    time.sleep(interval)
        except KeyboardInterrupt:
            return


@queue_group.command("enqueue")
@click.argument("kind")
@click.argument("keys", nargs=-1, required=True)
@click.option("--payload", default="{}", help="JSON object given to the handler.")
@click.option("--set", "set_id", help="Set (batch run) the items belong to.")
@click.option("--group", help="Fan-in group of the items.")
@click.option("--fingerprint", help="Input fingerprint: a done item re-runs when it changes.")
@click.option("--on-demand", is_flag=True, help="On-demand priority (ahead of batch work).")
@click.option("--priority", type=int, help="Explicit priority (higher runs first).")
@click.option("--force", is_flag=True, help="Re-run done items even if unchanged.")
@click.option("--in-flight", type=click.IntRange(min=1),
              help="Throttle the set: at most this many of its items pending or running.")
@click.option("--per-hour", type=click.IntRange(min=1),
              help="Throttle the set: at most this many of its items started per hour.")
@output_options
def enqueue_command(kind: str, keys: tuple[str, ...], payload: str, set_id: str | None,
                    group: str | None, fingerprint: str | None, on_demand: bool,
                    priority: int | None, force: bool, in_flight: int | None,
                    per_hour: int | None, fmt: str) -> None:
    """Enqueue items of KIND by key and print what happened to each.

    \b
    Example:
        renderer queue enqueue speedtile AUTO/0/2140/2026-W47 --on-demand
        renderer queue enqueue histogram k1 k2 k3 --set weekly --in-flight 2 --per-hour 100
    """
    if (in_flight or per_hour) and not set_id:
        raise InputError("--in-flight and --per-hour throttle a set", "add --set NAME")
    try:
        body = json.loads(payload)
    except json.JSONDecodeError as exc:
        raise InputError(f"--payload is not JSON: {exc.msg}", "pass a JSON object") from exc
    if not isinstance(body, dict):
        raise InputError("--payload must be a JSON object", "wrap it in {...}")
    if priority is None:
        priority = q.PRIORITY_ON_DEMAND if on_demand else q.PRIORITY_BATCH
    from renderer import pipelines

    for key in keys:
        pipelines.check_key(kind, key)  # a stage's key type refuses malformed keys
    db = database()
    rows = []
    with db.connect() as conn:
        if set_id and (in_flight or per_hour):  # first: the items go straight to held
            q.throttle(conn, set_id, in_flight=in_flight, per_hour=per_hour)
        for key in keys:
            action = q.enqueue(conn, kind, key, body, fingerprint=fingerprint, set_id=set_id,
                               priority=priority, group=group, force=force)
            rows.append({"kind": kind, "key": key, "action": action})
        conn.commit()
    show(rows, fmt, title="enqueued")


@queue_group.command("retry")
@click.option("--kind", help="Only items of this kind.")
@click.option("--set", "set_id", help="Only items of this set.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: {\"retried\": N}.")
def retry_command(kind: str | None, set_id: str | None, as_json: bool) -> None:
    """Make failed items pending again, with fresh attempts.

    \b
    Example:
        renderer queue retry --kind histogram --set "ingest 2026-W47"
    """
    db = database()
    with db.connect(autocommit=True) as conn:
        n = q.retry_failed(conn, kind=kind, set_id=set_id)
    if as_json:
        print_json({"retried": n})
    else:
        click.echo(f"{n} item(s) queued again")


@queue_group.command("failed")
@click.option("--kind", help="Only items of this kind.")
@click.option("--set", "set_id", help="Only items of this set.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(min=1))
@output_options
def failed_command(kind: str | None, set_id: str | None, limit: int, fmt: str) -> None:
    """List failed items with their last error.

    \b
    Example:
        renderer queue failed --kind histogram --json
    """
    db = database()
    with db.connect(autocommit=True) as conn:
        rows = q.list_failed(conn, kind=kind, set_id=set_id, limit=limit)
    show(rows, fmt, "failed items",
         ["kind", "key", "set_id", "attempt", "last_error", "finished_at"])


@queue_group.command("history")
@click.argument("kind")
@click.argument("key")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def history_command(kind: str, key: str, as_json: bool) -> None:
    """Show one item and its recorded attempts (errors with tracebacks).

    \b
    Example:
        renderer queue history histogram AUTO/0/2140/410562
    """
    db = database()
    with db.connect(autocommit=True) as conn:
        found = q.item_history(conn, kind, key)
    if found is None:
        raise QueueError(f"no item {kind} {key}", "check the kind and key")
    if as_json:
        print_json(found)
        return
    attempts = found.pop("attempts")
    for field, value in found.items():
        click.echo(f"{field}: {value}")
    for a in attempts:
        click.echo(f"\nattempt {a['attempt']} {a['outcome']} at {a['at']} by {a['owner']}: "
                   f"{a['error_type']}: {a['message']}")
        if a["traceback"]:
            click.echo(a["traceback"].rstrip())


@queue_group.command("prune")
@click.option("--older-than", "days", type=click.FloatRange(min=0),
              help="Age in days (default: the queue_retention_days setting).")
def prune_command(days: float | None) -> None:
    """Delete done items finished longer ago than the retention period.

    \b
    Example:
        renderer queue prune --older-than 7
    """
    s = settings()
    age = timedelta(days=s.queue_retention_days if days is None else days)
    db = database()
    with db.connect(autocommit=True) as conn:
        click.echo(f"pruned {q.prune(conn, age)} done item(s) older than {age}")


def _set_command(verb: str, doc: str) -> click.Command:
    fn = {"pause": q.pause_set, "resume": q.resume_set, "cancel": q.cancel_set}[verb]

    @click.argument("set_id", metavar="SET")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    def command(set_id: str, as_json: bool) -> None:
        db = database()
        with db.connect(autocommit=True) as conn:
            n = fn(conn, set_id)
        done = {"pause": "paused", "resume": "resumed", "cancel": "cancelled"}[verb]
        if as_json:
            print_json({"set": set_id, "action": done, "items": n})
        else:
            click.echo(f"{done} set {set_id!r}: {n} item(s)")

    command.__doc__ = doc
    return click.command(verb, help=doc)(command)


queue_group.add_command(_set_command("pause", """Hold a set's pending items until resumed.

    \b
    Example:
        renderer queue pause "speedtiles 2026-W47"
    """))
queue_group.add_command(_set_command("resume", """Release a paused set's held items.

    \b
    Example:
        renderer queue resume "speedtiles 2026-W47"
    """))
queue_group.add_command(_set_command("cancel", """Cancel a set's items that are not running
    or done; running items finish.

    \b
    Example:
        renderer queue cancel "speedtiles 2026-W47"
    """))


@queue_group.command("throttle")
@click.argument("set_id", metavar="SET")
@click.option("--in-flight", type=click.IntRange(min=1),
              help="At most this many of the set's items pending or running at once.")
@click.option("--per-hour", type=click.IntRange(min=1),
              help="At most this many of the set's items started in any hour.")
@click.option("--clear", is_flag=True, help="Remove the set's limits.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def throttle_command(set_id: str, in_flight: int | None, per_hour: int | None, clear: bool,
                     as_json: bool) -> None:
    """Dribble a set: limit its items in flight and/or per hour (the limits given replace
    the set's), or --clear them. Its other items wait held; on-demand work goes first.

    \b
    Example:
        renderer queue throttle "speedtiles 2026-W47" --in-flight 4 --per-hour 2000
    """
    if clear == bool(in_flight or per_hour):
        raise InputError("give --in-flight and/or --per-hour, or --clear",
                         "e.g. renderer queue throttle SET --in-flight 4")
    db = database()
    with db.connect(autocommit=True) as conn:
        n = q.throttle(conn, set_id, in_flight=in_flight, per_hour=per_hour)
    limits = {"in_flight": in_flight, "per_hour": per_hour}
    if as_json:
        print_json({"set": set_id, **limits, "items": n})
    elif clear:
        click.echo(f"set {set_id!r} unthrottled: {n} item(s) released")
    else:
        said = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in limits.items() if v)
        click.echo(f"set {set_id!r} throttled to {said}: {n} item(s) held")


@queue_group.command("kinds")
@output_options
def kinds_command(fmt: str) -> None:
    """List the registered kinds with their limits.

    \b
    Example:
        renderer queue kinds
    """
    from renderer import pipelines

    pipelines.load_all()
    rows = [{"kind": k.name, "time_limit": k.time_limit, "max_attempts": k.max_attempts,
             "batch_size": k.batch_size, "lease_seconds": k.lease_seconds,
             "backoff_seconds": k.backoff_seconds, "handler": q._registry._origin(k.handler)}
            for k in (q.KINDS[n] for n in sorted(q.KINDS))]
    show(rows, fmt, "kinds")


COMMANDS: list[click.Command] = [work, queue_group]
