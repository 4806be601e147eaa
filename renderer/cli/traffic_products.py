"""`renderer traffic` commands of one stage group (see traffic.py): products.

schedule, speeds, reference, coverage, run.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import click

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
from renderer.errors import InputError

# Commands import their library modules when they run, so that every other command (and
# `renderer --help`) starts without loading the pipelines or their dependencies.

log = logging.getLogger("renderer.cli")


@click.command("schedule")
@click.option("--week", metavar="YYYY-Www", help="Build this ISO week (default: the next one "
              "the weekly schedule would pick).")
@click.option("--bbox", metavar="MINLON,MINLAT,MAXLON,MAXLAT", help="Only tiles overlapping it.")
@click.option("--level", type=click.IntRange(0, 2), help="Build tiles of this level (default 0, "
              "each with its descendants).")
@click.option("--mode", "modes", multiple=True, metavar="MODE",
              help="Only this mode (AUTO, BUS, ...); repeatable.")
@click.option("--min-count", type=click.IntRange(1), help="Hours with fewer observations are "
              "published as no data (default: setting traffic_min_count, 1).")
@click.option("--now", is_flag=True, help="On-demand priority instead of batch priority.")
@click.option("--dry-run", is_flag=True, help="Show what would be built, enqueue nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def schedule(week: str | None, bbox: str | None, level: int | None, modes: tuple[str, ...],
             min_count: int | None, now: bool, dry_run: bool, as_json: bool) -> None:
    """Enqueue weekly speed tiles: the next week, or an explicit rebuild.

    Without --week it picks what OpenTraffic's weekly service picked: the first ended week
    with histograms after the latest built week, or the first week with histograms when
    none is built. Items are forced, so built weeks are rebuilt; their reference tiles and
    the coverage follow. Run `renderer work` (or `renderer traffic run`) to build them.

    \b
    Example:
        renderer traffic schedule
        renderer traffic schedule --week 2016-W44 --bbox 100,0,108,8 --level 1
    """
    from renderer.bbox import parse_bbox
    from renderer.queue import PRIORITY_BATCH, PRIORITY_ON_DEMAND
    from renderer.traffic import schedule as sched

    parsed = parse_bbox(bbox) if bbox else None
    with database().connect() as conn:
        plan = sched.plan(conn, week=week, bbox=parsed, level=level, modes=list(modes) or None)
        set_id = None
        if not dry_run and plan.items:
            set_id = sched.enqueue_weeks(
                conn, week=plan.week, bbox=parsed, level=level, modes=list(modes) or None,
                priority=PRIORITY_ON_DEMAND if now else PRIORITY_BATCH, min_count=min_count)
            conn.commit()
    keys = [spec.key for spec in plan.items]
    if as_json:
        print_json({"week": plan.week, "reason": plan.reason, "set_id": set_id,
                    "dry_run": dry_run, "items": keys})
        return
    if plan.week is None or not plan.items:
        why = plan.reason if plan.week is None else f"no tiles with histograms in {plan.week} match"
        click.echo(f"nothing to schedule: {why}")
        return
    verb = "would enqueue" if dry_run else "enqueued"
    click.echo(f"{plan.week} ({plan.reason}): {verb} {len(keys)} speed tiles"
               + (f" in set {set_id!r}" if set_id else ""))
    for key in keys[:20]:
        click.echo(f"  speedtile {key}")
    if len(keys) > 20:
        click.echo(f"  ... and {len(keys) - 20} more")


def _segment(value: str) -> int:
    from renderer.traffic.access import parse_segment_id

    return parse_segment_id(value)


@click.command("speeds")
@click.argument("segment_id")
@click.option("--week", required=True, metavar="YYYY-Www", help="The ISO week.")
@click.option("--mode", default="AUTO", show_default=True, help="Vehicle mode.")
@output_options
def speeds(segment_id: str, week: str, mode: str, fmt: str) -> None:
    """Print a segment's speeds for a week, per hour of week (0 = Monday 00:00 UTC).

    speed is OpenTraffic's (length over the shortest mean duration among next segments),
    mean_speed the count-weighted mean over next segments (km/h; 0 = no data). json holds
    every hour and the next segments; csv and tsv one line per hour of week.

    \b
    Example:
        renderer traffic speeds 291755811080 --week 2016-W44
        renderer traffic speeds 291755811080 --week 2016-W44 --csv > speeds.csv
    """
    from renderer.traffic.access import HOUR_FIELDS, segment_speeds

    with database().connect() as conn:
        result = segment_speeds(conn, _segment(segment_id), week=week, mode=mode)
    if fmt != "table":
        show(result["hours"], fmt, columns=list(HOUR_FIELDS), value=result)
    else:
        click.echo(f"segment {result['segment_id']} ({result['mode']}, tile {result['tile']}, "
                   f"length {result['length']} m), {result['week']}: "
                   f"{result['observations']} observations")
        show([h for h in result["hours"] if h["observations"]], "table",
             columns=list(HOUR_FIELDS), title="hours with observations")


@click.command("reference")
@click.argument("segment_id")
@click.option("--mode", default=None, help="Only this vehicle mode (default: every mode).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def reference(segment_id: str, mode: str | None, as_json: bool) -> None:
    """Print a segment's reference speeds: percentiles and the mean per hour of week.

    \b
    Example:
        renderer traffic reference 291755811080
        renderer traffic reference 291755811080 --mode AUTO --json
    """
    from renderer.traffic.access import segment_reference

    with database().connect() as conn:
        result = segment_reference(conn, _segment(segment_id), mode=mode)
    if as_json:
        print_json(result if mode is None else result[0])
        return
    for entry in result:
        refs = entry["reference_speeds"]
        click.echo(f"segment {entry['segment_id']} {entry['mode']}: reference speeds "
                   f"20% {refs['20']}, 40% {refs['40']}, 60% {refs['60']}, 80% {refs['80']} km/h "
                   f"from {entry['samples']} hourly speeds over {entry['weeks']} weeks "
                   f"({entry['first_week']} to {entry['last_week']})")
        days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
        print_table([{"day": d, **{f"{h:02d}": entry["hourly"][i * 24 + h] or ""
                                   for h in range(24)}} for i, d in enumerate(days)],
                    title="mean speed per hour of week (km/h, UTC)")


@click.command("coverage")
@click.option("--out", "out", metavar="FILE",
              help="Write the GeoJSON here ('-' for stdout) instead of refreshing the store's "
                   "coverage.geojson.")
@click.option("--force", is_flag=True, help="Rewrite the store's copy even if unchanged.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the outcome as JSON (the GeoJSON itself: --out -).")
@click.option("--levels", metavar="LIST",
              help="Only tiles of these levels, e.g. 1 (OpenTraffic's map) or 0,1 (needs --out).")
@click.option("--opentraffic-style", is_flag=True,
              help="Add OpenTraffic's styling properties (fill, fillOpacity, color, ...) to "
                   "every feature (needs --out).")
def coverage(out: str | None, force: bool, as_json: bool, levels: str | None,
             opentraffic_style: bool) -> None:
    """Write the coverage GeoJSON: one polygon per tile with reference data, every level.

    \b
    Example:
        renderer traffic coverage --out coverage.geojson
        renderer traffic coverage          # refresh coverage.geojson in the store
        renderer traffic coverage --levels 1 --opentraffic-style --out ot.geojson
    """
    from renderer.storage import open_store
    from renderer.traffic import coverage as cov

    if out is None and (levels is not None or opentraffic_style):
        raise click.UsageError("--levels and --opentraffic-style need --out: the store's "
                               "coverage.geojson always lists every level, unstyled")
    chosen = cov.parse_levels(levels) if levels is not None else None
    with database().connect() as conn:
        if out is not None:
            text, features = cov.geojson(conn, chosen, opentraffic_style)
        else:
            store = open_store(settings().store_url)
            result = cov.refresh(conn, store, force=force)
            conn.commit()
    if out is None:
        state = "written" if result.written else "unchanged"
        where = f"{store.url.rstrip('/')}/{result.key}"
        if as_json:
            print_json({"url": where, "tiles": result.features, "state": state})
        else:
            click.echo(f"{where}: {result.features} tiles, {state}")
    elif out == "-":
        click.echo(text)
    else:
        try:
            Path(out).write_text(text + "\n")
        except OSError as exc:
            raise InputError(f"cannot write {out}: {exc.strerror}",
                             "give a writable path") from exc
        if as_json:
            print_json({"path": out, "tiles": features, "state": "written"})
        else:
            click.echo(f"{out}: {features} tiles")


class _Bars:
    """A progress bar per stage on a terminal; a log line every few seconds otherwise."""

    def __init__(self) -> None:
        self.last = 0.0
        self.progress = None
        if is_terminal():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

            self.progress = Progress(TextColumn("{task.description:<10}"), BarColumn(),
                                     MofNCompleteColumn(), console=console)
            self.tasks: dict[str, TaskID] = {}

    def __enter__(self) -> _Bars:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def __call__(self, stages: dict[str, tuple[int, int]]) -> None:
        if self.progress is not None:
            for stage, (done, remaining) in stages.items():
                if stage not in self.tasks:
                    self.tasks[stage] = self.progress.add_task(stage, total=None)
                total = done + remaining
                self.progress.update(self.tasks[stage], completed=done, total=total or None)
        elif time.monotonic() - self.last > 5:
            self.last = time.monotonic()
            log.info("progress: " + ", ".join(f"{s} {d}/{d + r}" for s, (d, r) in stages.items()))


@click.command("run")
@click.option("--source", required=True, metavar="ROOT",
              help="Folder, file:///path or s3://bucket/prefix holding reporter files.")
@click.option("--processes", type=click.IntRange(1), default=None,
              help="Worker processes (default: setting processes, twice the cores).")
@click.option("--after", type=click.Choice(["archive", "delete", "keep"]), default=None,
              help="What to do with consumed files (default: setting traffic_after, archive).")
@click.option("--min-count", type=click.IntRange(1), default=None,
              help="Hours with fewer observations are published as no data (default 1).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def run(source: str, processes: int | None, after: str | None, min_count: int | None,
        as_json: bool) -> None:
    """Submit SOURCE and work every traffic stage until idle, then summarize.

    Histograms, weekly speed tiles, reference tiles and the coverage GeoJSON are built and
    exported to the store; a progress bar per stage shows the work. Exits with status 1
    when any item failed.

    \b
    Example:
        renderer traffic run --source ./sample --processes 4
        renderer traffic run --source s3://reporters/traffic --after keep
    """
    from renderer.runner import run_until_idle
    from renderer.traffic.profile import PROFILE

    conf = settings()
    db = database()
    options = {"source": source, "after": after, "min_count": min_count}
    with _Bars() as bars:
        summary = run_until_idle(db.url, PROFILE, options, settings=conf, progress=bars,
                                 processes=processes or conf.worker_processes)
    if as_json:
        print_json(summary.as_dict())
        sys.exit(1 if summary.items_failed else 0)
    s = summary
    click.echo(f"traffic run of {s.source} in {s.seconds:.1f} s with {s.processes} workers:")
    click.echo(f"  files        {s.files_consumed} consumed, {s.files_rejected} rejected whole, "
               f"{s.rows_rejected} rows rejected")
    click.echo(f"  observations {s.observations:,} ({s.observations_per_second:,.0f}/s)")
    click.echo(f"  speed tiles  {s.speed_tiles} (tiles x modes x weeks: {s.tiles} tiles, weeks "
               f"{', '.join(s.weeks) or '-'}), {s.segments:,} segments")
    click.echo(f"  reference    {s.reference_tiles} tiles; coverage "
               f"{s.coverage_features if s.coverage_features is not None else 'unchanged'}")
    click.echo(f"  files        {s.files_written} written to {s.store_url}")
    if s.items_failed:
        click.echo(f"  FAILED       {s.items_failed} items: see `renderer queue failed`")
    if s.example_segment is not None:
        click.echo("look at the outputs:")
        click.echo("  renderer store ls | head")
        click.echo(f"  renderer traffic speeds {s.example_segment} --week {s.example_week}"
                   + (f" --mode {s.example_mode}" if s.example_mode != "AUTO" else ""))
        click.echo(f"  renderer traffic reference {s.example_segment}")
        click.echo("  renderer traffic coverage --out coverage.geojson")
    if s.items_failed:
        sys.exit(1)


COMMANDS: list[click.Command] = [schedule, speeds, reference, coverage, run]
