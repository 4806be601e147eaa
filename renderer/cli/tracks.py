"""``renderer tracks``: vessel position reports -> day partitions -> queries and a static index."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path

import click

from renderer.cli._common import (
    console,
    database,
    is_terminal,
    print_json,
    print_table,
    settings,
)
from renderer.errors import InputError
from renderer.tracks import output
from renderer.tracks.query import Query, parse_time, run

# The ingest, the generator, the index export and the worker (with pyais, numpy and every
# profile: about 0.3 CPU s) are imported by the commands that use them, so that
# `tracks query`, which a user waits on for its first row, starts without them.

INPUT_FORMATS = ("csv", "ndjson", "nmea", "fixes")
OUTPUT_FORMATS = ("csv", "ndjson", "geojson")
SAMPLES = ("1s", "30s", "1m", "5m", "15m", "30m", "1h", "2h", "4h", "8h", "12h", "1d")


@click.group("tracks")
def tracks() -> None:
    """Vessel tracks: AIS/satellite position reports, queried by identifier, box, time and
    sampling in any mix; the static geohash index as an export.

    \b
    Example:
        renderer tracks sample --out ./reports --vessels 20 --days 2
        renderer tracks ingest ./reports
        renderer tracks query --id mmsi=503000001 --from 2026-12-01 --to 2026-12-01 --sample 1h
    """
@tracks.command("ingest")
@click.argument("paths", nargs=-1, required=True)
@click.option("--format", "fmt", type=click.Choice(INPUT_FORMATS),
              help="Format of every file (default: from the file name: .csv, .ndjson/.jsonl, "
                   ".nmea/.ais/.txt, .fixes/.track; .gz allowed).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def ingest(paths: tuple[str, ...], fmt: str | None, as_json: bool) -> None:
    """Load report files (CSV, NDJSON, AIS NMEA, BinaryFixes) from files, folders or s3:// prefixes.

    Each file is recorded in a ledger by (path, size, checksum): ingesting it again does
    nothing. Bad rows are kept with file, line and reason (`renderer tracks rejects`); exact
    duplicates (same vessel, time and position) are dropped and counted.

    \b
    Example:
        renderer tracks ingest ./reports/
        renderer tracks ingest feed-2026-12-01.nmea.gz --format nmea
        renderer tracks ingest s3://ais-archive/2026/12/
    """
    from rich.progress import Progress

    from renderer.tracks.ingest import discover, ingest_sources

    db = database(direct="renderer tracks ingest")
    sources = discover(paths, fmt, follow_symlinks=settings().follow_symlinks)
    if is_terminal() and not as_json:
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task("ingesting", total=len(sources))
            report = ingest_sources(db, sources, lambda _: bar.advance(task))
    else:
        report = ingest_sources(db, sources)
    if as_json:
        print_json(report.as_dict())
        return
    if is_terminal():
        print_table([{"file": f.key, "status": f.status, "read": f.rows_read,
                      "accepted": f.rows_accepted, "rejected": f.rows_rejected,
                      "duplicates": f.rows_duplicate, "reason": f.reason or ""}
                     for f in report.files], title="files")
    rows = report.rows
    click.echo(f"{len(report.files)} files: {report.count('consumed')} consumed, "
               f"{report.count('skipped')} already ingested, {report.count('rejected')} "
               f"rejected; rows {rows['rows_read']} read = {rows['rows_accepted']} accepted + "
               f"{rows['rows_rejected']} rejected ({rows['rows_duplicate']} duplicates "
               f"dropped, {rows['rows_linked']} identifier links)")


@tracks.command("rejects")
@click.option("--file", "like", metavar="TEXT", help="Only files whose path contains TEXT.")
@click.option("--limit", type=int, default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def rejects(like: str | None, limit: int, as_json: bool) -> None:
    """Show rejected rows (file, line, reason, raw text) and wholly rejected files (line 0).

    \b
    Example:
        renderer tracks rejects --file 2026-12-01 --limit 20
    """
    from renderer.tracks.ingest import rejects as find

    with database().connect() as conn:
        found = find(conn, f"%{like}%" if like else None, limit)
    if as_json:
        print_json(found)
    elif is_terminal():
        print_table(found, title="rejected rows")
    else:
        for r in found:
            click.echo("\t".join(str(r[c]) for c in ("file", "line", "reason", "raw")))


@tracks.command("query")
@click.option("--id", "ids", multiple=True, metavar="KEY=VALUE",
              help="An identifier (mmsi=..., imo=..., callsign=...); repeat for any of several.")
@click.option("--bbox", metavar="MINLAT,MINLON,MAXLAT,MAXLON", help="Bounding box, degrees.")
@click.option("--from", "start", metavar="T", help="ISO 8601 or epoch seconds; inclusive.")
@click.option("--to", "end", metavar="T",
              help="ISO 8601 or epoch seconds; inclusive (a date alone: the whole day).")
@click.option("--sample", type=click.Choice(SAMPLES),
              help="At most one report per vessel per interval: the first.")
@click.option("--format", "fmt", type=click.Choice(OUTPUT_FORMATS), default="csv",
              show_default=True)
@click.option("--limit", type=int, help="At most this many rows, then a cursor token.")
@click.option("--cursor", "token", metavar="TOKEN", help="Resume after a previous page.")
def query(ids: tuple[str, ...], bbox: str | None, start: str | None, end: str | None,
          sample: str | None, fmt: str, limit: int | None, token: str | None) -> None:
    """Print reports matching any mix of identifiers, box, time range and sampling, in time
    order, streamed as they are read. With --limit, the last line names the next page's
    cursor (csv: `# next=TOKEN`; ndjson: `{"next": ...}`; geojson: the `next` member).

    \b
    Example:
        renderer tracks query --id mmsi=503000001 --bbox -50,135,-20,150 \\
            --from 2026-12-01 --to 2026-12-31 --sample 1h
        renderer tracks query --bbox -40,140,-30,155 --from 2026-12-02 --to 2026-12-02 \\
            --format geojson > day.geojson
    """
    if limit is not None and limit < 1:
        raise InputError("--limit must be at least 1", "give a positive number")
    q = Query.parse(ids=ids, bbox=bbox, start=start, end=end, sample=sample)
    with database().connect() as conn:
        page = run(conn, q, limit=limit, token=token)
        for chunk in output.chunks(page, fmt):
            sys.stdout.write(chunk)
            sys.stdout.flush()  # the first row alone, then ~500 a chunk: out as they come


@tracks.command("export-index")
@click.option("--day", required=True, metavar="DATE", help="The UTC day (YYYY-MM-DD).")
@click.option("--out", required=True, metavar="ROOT", help="Folder, file:// or s3:// URL.")
@click.option("--max-reports", type=click.IntRange(min=1), metavar="M",
              help="Write the size-bounded variant instead: objects of at most M reports.")
@click.option("--wait", is_flag=True,
              help="Process the items in this process until none is left.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def export_index(day: str, out: str, max_reports: int | None, wait: bool,
                 as_json: bool) -> None:
    """Write a day's static geohash index (the original design's S3 layout) under ROOT.

    One work item per (geohash prefix, day): `<geohash>/block-<b>/sample-<s>/<start>` for
    geohash lengths 0-10 (0 = ALL), blocks 1s..1d and samples no larger than the block,
    plus `<key><value>/<geohash>/<block>/<start>` per identifier; BinaryFixes records.
    Items run under `renderer work`, or here with --wait. With --max-reports M, the
    size-bounded variant (objects of at most M reports, manifests per block) as one item.

    \b
    Example:
        renderer tracks export-index --day 2026-12-01 --out ./index --wait
        renderer tracks export-index --day 2026-12-01 --out s3://ais/bounded --max-reports 5000
    """
    try:
        the_day = date.fromisoformat(day)
    except ValueError as exc:
        raise InputError(f"--day {day!r} is not a date", "write YYYY-MM-DD") from exc
    from renderer.tracks.profile import INDEX_KIND, plan_index
    from renderer.worker import run_worker

    db = database()
    with db.connect() as conn:
        run = plan_index(conn, the_day, out, max_reports)
        conn.commit()
    stats = None
    if wait and run.items:
        stats = run_worker(db.url, kinds=[INDEX_KIND], until_empty=True)
    if as_json:
        print_json({**run.__dict__, "worker": getattr(stats, "__dict__", None)})
        return
    if not run.items:
        click.echo(f"no reports on {day}")
        return
    click.echo(f"set {run.set_id!r}: {run.items} items for {day} -> {out}")
    if stats is None:
        click.echo("next: renderer work")
    else:
        click.echo(f"worked {stats.done} items ({stats.failed} failed) in {stats.elapsed:.1f} s")


@tracks.command("sample")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the files.")
@click.option("--vessels", type=int, default=50, show_default=True)
@click.option("--days", type=int, default=2, show_default=True)
@click.option("--start", default="2026-12-01", show_default=True, help="First UTC day.")
@click.option("--interval", type=float, default=30.0, show_default=True,
              help="Seconds between terrestrial reports of a class A vessel under way.")
@click.option("--format", "fmts", type=click.Choice(INPUT_FORMATS), multiple=True,
              help="Formats to write (repeat; default all four, each a share of the reports).")
@click.option("--per-file", type=int, default=50_000, show_default=True,
              help="Reports a file.")
@click.option("--seed", type=int, default=1, show_default=True)
def sample_cmd(out: Path, vessels: int, days: int, start: str, interval: float,
               fmts: tuple[str, ...], per_file: int, seed: int) -> None:
    """Generate realistic tracks: great-circle legs between ports, port stays, AIS gaps,
    satellite reports hours late, a few vessels with two identifiers.

    With several formats, the reports (in arrival order) are dealt out to them in turn, a
    file at a time, so ingesting the folder loads each report once.

    \b
    Example:
        renderer tracks sample --out ./reports --vessels 200 --days 7 --format csv
    """
    from renderer.tracks import sample as generator

    reports = generator.generate(vessels=vessels, days=days, start=parse_time(start),
                              interval=interval, seed=seed)
    chosen = list(fmts) or list(INPUT_FORMATS)
    written = []
    for n, i in enumerate(range(0, len(reports), per_file)):
        fmt = chosen[n % len(chosen)]
        writer, suffix = generator.WRITERS[fmt]
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"reports-{n:05d}{suffix}"
        writer(reports[i:i + per_file], path)
        written.append(path)
    click.echo(f"{len(reports)} reports of {vessels} vessels over {days} days -> "
               f"{len(written)} files in {out}")


COMMANDS: list[click.Command] = [tracks]
