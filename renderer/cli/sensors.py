"""``renderer sensors``: loop-detector files -> enriched, day-partitioned tables -> exports."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from renderer.cli._common import (
    Progress,
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

if TYPE_CHECKING:  # annotations only: commands import their library modules when they run
    from renderer.sensors.day import EtlRun

# Commands import their library modules when they run, so that every other command (and
# `renderer --help`) starts without loading pyarrow, duckdb or the pipelines.

FORMATS = ("parquet", "csv")


def _date(value: str | None, flag: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise InputError(f"{flag} {value!r} is not a date", "write YYYY-MM-DD") from exc


@click.group("sensors")
def sensors() -> None:
    """The sensor pipeline: loop-detector CSV -> enriched day partitions -> Parquet/CSV.

    \b
    Example:
        renderer sensors ingest ./detectors/
        renderer sensors etl --wait
        renderer sensors query --detector 1053 --from 2026-01-05 --to 2026-01-05
    """


@sensors.command("ingest")
@click.argument("paths", nargs=-1, required=True)
@click.option("--etl", "then_etl", is_flag=True,
              help="Then enqueue the changed days (as `sensors etl` does).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def ingest(paths: tuple[str, ...], then_etl: bool, as_json: bool) -> None:
    """Load loop-detector CSV files (gzip fine) from files, folders or s3:// prefixes.

    Each file is recorded in a ledger by (key, size, checksum): ingesting it again does
    nothing. Bad rows are kept with file, line and reason (`renderer sensors rejects`).
    The days whose enrichment changes are marked for `renderer sensors etl`.

    \b
    Example:
        renderer sensors ingest ./detectors/2026-01-05.csv.gz
        renderer sensors ingest s3://loops/flanders/2026/ --etl
    """
    from renderer.sensors.files import discover
    from renderer.sensors.ingest import ingest_sources

    db = database(direct="renderer sensors ingest")
    sources = discover(paths, follow_symlinks=settings().follow_symlinks)
    if is_terminal() and not as_json:
        from rich.progress import Progress

        with Progress(console=console, transient=True) as bar:
            task = bar.add_task("ingesting", total=len(sources))
            report = ingest_sources(db, sources, lambda _: bar.advance(task))
    else:
        report = ingest_sources(db, sources)
    run = _etl(db.url, {}) if then_etl else None
    if as_json:
        print_json({"files": [f.__dict__ for f in report.files], "rows": report.rows,
                    "days": report.days, "etl": run.__dict__ if run else None})
        return
    print_table([{"file": f.key, "status": f.status, "read": f.rows_read,
                  "accepted": f.rows_accepted, "rejected": f.rows_rejected,
                  "reason": f.reason or ""} for f in report.files], title="files")
    rows = report.rows
    click.echo(f"{len(report.files)} files: {report.count('consumed')} consumed, "
               f"{report.count('skipped')} already ingested, {report.count('rejected')} "
               f"rejected; rows {rows['rows_read']} read = {rows['rows_accepted']} accepted + "
               f"{rows['rows_rejected']} rejected")
    if report.days:
        click.echo(f"days to enrich: {', '.join(str(d) for d in report.days)}")
    if run is not None:
        click.echo(f"enqueued {run.enqueued} sensors-day items (run {run.run!r})")
    elif report.days:
        click.echo("next: renderer sensors etl")


def _etl(url: str, options: dict[str, Any]) -> EtlRun:
    """Plan the run's days (the sensors profile's submit), committed; no work."""
    from renderer.runner import submit
    from renderer.sensors.profile import PROFILE

    submitted = submit(url, PROFILE, options, settings())
    run: EtlRun = submitted.detail
    return run


@sensors.command("etl")
@click.option("--from", "start", metavar="DATE", help="First UTC day (YYYY-MM-DD).")
@click.option("--to", "end", metavar="DATE", help="Last UTC day, inclusive.")
@click.option("--export", "export_out", metavar="ROOT",
              help="Folder or s3:// URL for the export (default: [sensors] export in "
                   "renderer.toml or RENDERER_SENSORS_EXPORT, else the store under sensors/).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="parquet",
              show_default=True, help="Export format.")
@click.option("--no-export", is_flag=True, help="Only enrich, no export fan-in.")
@click.option("--wait", is_flag=True,
              help="Process the items in this process until none is left.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def etl(start: str | None, end: str | None, export_out: str | None, fmt: str,
        no_export: bool, wait: bool, as_json: bool) -> None:
    """Enqueue one sensors-day item per UTC day, then an export when all are done.

    Without --from/--to: every day whose raw rows changed since it was last enriched (new or
    late files; a late file also re-runs the next day when its windows see the change).
    With --from/--to: every day with raw rows in the range, recomputed (a rerun replaces a
    day, it never duplicates rows). Items run under `renderer work`, or here with --wait.

    \b
    Example:
        renderer sensors etl --wait
        renderer sensors etl --from 2026-01-01 --to 2026-01-31 --export s3://lake/sensors
    """
    from renderer.runner import run_until_idle
    from renderer.sensors.profile import PROFILE

    db = database()
    options = {"from": _date(start, "--from"), "to": _date(end, "--to"), "export": export_out,
               "no_export": no_export, "format": fmt}
    stats = None
    if wait:  # one worker in this process, until the run's items are done
        run, stats = run_until_idle(db.url, PROFILE, options, settings=settings(),
                                    processes=None)
    else:
        run = _etl(db.url, options)
    if as_json:
        print_json({**run.__dict__, "worker": getattr(stats, "__dict__", None)})
        return
    if not run.days:
        click.echo("no days to enrich")
        return
    click.echo(f"run {run.run!r}: {len(run.days)} days ({run.days[0]} .. {run.days[-1]}), "
               f"{run.enqueued} items enqueued")
    if stats is None:
        click.echo("next: renderer work")
    else:
        click.echo(f"worked {stats.done} items ({stats.failed} failed) in {stats.elapsed:.1f} s")


@sensors.command("query")
@click.option("--detector", type=int, required=True, help="uniqueid of the detector.")
@click.option("--from", "start", required=True, metavar="T",
              help="Epoch seconds or ISO 8601 (zone-less = UTC); inclusive.")
@click.option("--to", "end", required=True, metavar="T",
              help="Epoch seconds or ISO 8601; inclusive (a date alone: the whole day).")
@output_options(default="csv")
def query(detector: int, start: str, end: str, fmt: str) -> None:
    """Print one detector's enriched rows between two instants (both inclusive).

    Columns: uniqueid, recordtimestamp (epoch seconds), currentspeed, bezettingsgraad,
    previousspeed, trafficjamindicator, trafficintensityclass1..5, speeddiffindicator,
    avgspeed2minutes, avgspeed10minutes.

    \b
    Example:
        renderer sensors query --detector 1053 --from 1767571200 --to 1767574800
        renderer sensors query --detector 1053 --from 2026-01-05 --to 2026-01-05 --format json
    """
    from renderer.sensors import query as q

    lo, hi = q.parse_time(start), q.parse_time(end, end=True)
    with database().connect() as conn:
        found = q.rows(conn, detector, lo, hi)
    if fmt in ("csv", "json"):  # the library's own writers: the formats other tools read
        sys.stdout.write(q.to_csv(found) if fmt == "csv" else q.to_json(found) + "\n")
    else:
        show(found, fmt, columns=list(q.COLUMNS))


@sensors.command("export")
@click.option("--out", required=True, metavar="ROOT", help="Folder, file:// or s3:// URL.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="parquet",
              show_default=True)
@click.option("--from", "start", metavar="DATE", help="First UTC day (YYYY-MM-DD).")
@click.option("--to", "end", metavar="DATE", help="Last UTC day, inclusive.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def export(out: str, fmt: str, start: str | None, end: str | None, as_json: bool) -> None:
    """Write enriched days as Hive partitions: ROOT/year=2026/month=1/day=5/ (no zero padding).

    One object per day, replaced when exported again. DuckDB, Athena and pyarrow read the
    tree as one table with year, month and day columns.

    \b
    Example:
        renderer sensors export --out ./lake/sensors --format parquet
        renderer sensors export --out s3://lake/sensors --format csv --from 2026-01-01
    """
    from renderer.sensors.export import check_format, export_day, exportable_days
    from renderer.storage import open_store

    check_format(fmt)
    store = open_store(out)
    with database().connect() as conn:
        days = exportable_days(conn, _date(start, "--from"), _date(end, "--to"))
        written = []
        with Progress("exporting days", len(days)) as step:
            for day in days:  # a day at a time, for the progress (as export_days does)
                written.append(export_day(conn, store, day, fmt))
                step()
    if as_json:
        print_json([d.__dict__ for d in written])
        return
    click.echo(f"{len(written)} days, {sum(d.rows for d in written)} rows, "
               f"{sum(d.size for d in written)} bytes -> {out}")


@sensors.command("rejects")
@click.option("--file", "like", metavar="TEXT", help="Only files whose key contains TEXT.")
@click.option("--limit", type=int, default=100, show_default=True)
@output_options
def rejects(like: str | None, limit: int, fmt: str) -> None:
    """Show rejected rows (file, line, reason, fields) and wholly rejected files (line 0).

    \b
    Example:
        renderer sensors rejects --file 2026-01-05 --limit 20
    """
    from renderer.sensors.ingest import rejects as find

    with database().connect() as conn:
        found = find(conn, like, limit)
    show(found, fmt, title="rejected rows")


@sensors.command("sample")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder to write the detector files into.")
@click.option("--detectors", default=3, show_default=True, type=click.IntRange(1, 10_000),
              help="Number of detectors (ids from 1053).")
@click.option("--days", default=2, show_default=True, type=click.IntRange(1, 366),
              help="Number of days from 2026-01-05.")
@click.option("--seed", default=1, show_default=True, help="Same seed, same files.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def sample(out: Path, detectors: int, days: int, seed: int, as_json: bool) -> None:
    """Write sample loop-detector files (one gzip CSV a day, a row a minute per detector,
    peaks at 08:00 and 17:30, a few rows the validation rejects) to try the pipeline.

    \b
    Example:
        renderer sensors sample --out ./detectors --detectors 3 --days 2
        renderer sensors ingest ./detectors --etl
        renderer sensors query --detector 1053 --from 2026-01-05 --to 2026-01-05
    """
    from renderer.sensors.sample import generate

    try:
        stats = generate(out, detectors=detectors, days=days, seed=seed)
    except ValueError as exc:
        raise InputError(str(exc), "see renderer sensors sample --help") from exc
    if as_json:
        print_json({"files": [str(p) for p in stats.files], "rows": stats.rows,
                    "bad_rows": stats.bad_rows, "detectors": stats.detectors})
        return
    click.echo(f"wrote {len(stats.files)} files, {stats.rows} rows ({stats.bad_rows} "
               f"malformed) for detectors {stats.detectors[0]}..{stats.detectors[-1]} to {out}")


COMMANDS: list[click.Command] = [sensors]
