"""`renderer traffic` commands of one stage group (see traffic.py): ingest of reporter files.

submit, rejects, histogram, export-histograms, sample.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import click

from renderer import tiles
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
from renderer.traffic.layout import AFTER_CHOICES

# Commands import their library modules when they run, so that every other command (and
# `renderer --help`) starts without loading the pipelines or their dependencies.

def _tile(text: str) -> tiles.Tile:
    try:
        return tiles.parse_tile(text)
    except ValueError as exc:
        raise InputError(f"--tile {text!r}: {exc}", "write LEVEL/INDEX, e.g. 0/3105") from exc


@click.command("submit")
@click.option("--source", required=True, metavar="ROOT",
              help="Folder, file:///path or s3://bucket/prefix holding reporter files.")
@click.option("--after", type=click.Choice(AFTER_CHOICES), default=None,
              help="What to do with consumed files after commit (default: archive, "
                   "setting traffic_after).")
@click.option("--set", "set_name", metavar="NAME", help="Name a queue set for this batch.")
@click.option("--now", is_flag=True, help="On-demand priority instead of batch priority.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def submit(source: str, after: str | None, set_name: str | None, now: bool,
           as_json: bool) -> None:
    """Enqueue a histogram item per (tile, hour) of SOURCE that has new files.

    A file is new while its (key, size, checksum) is not in the consumed-files ledger;
    submitting again changes nothing. Files are read from
    {start}_{end}/{level}/{tile_index}/{name}; gzip files are fine. Run `renderer work`
    to process the items (they are committed every 64 prefixes as the source is listed).

    \b
    Example:
        renderer traffic submit --source ./sample --after keep
        renderer traffic submit --source s3://reporters/traffic
    """
    from renderer.queue import PRIORITY_BATCH, PRIORITY_ON_DEMAND, create_set
    from renderer.traffic.ingest import COMMIT_EVERY
    from renderer.traffic.ingest import submit as do_submit

    db = database()
    with db.connect() as conn:
        set_id = create_set(conn, set_name) if set_name else None
        result = do_submit(conn, source, after=after or settings().traffic_after,
                           priority=PRIORITY_ON_DEMAND if now else PRIORITY_BATCH,
                           set_id=set_id, follow_symlinks=settings().follow_symlinks,
                           commit_every=COMMIT_EVERY)  # workers start as it lists
        conn.commit()
    if as_json:
        print_json({**result.__dict__, "set_id": set_id})
        return
    click.echo(f"{result.source}: {result.files_listed} files, {result.files_new} new "
               f"({result.bytes_new:,} bytes) in {result.prefixes} (tile, hour) prefixes; "
               f"{result.enqueued} histogram items enqueued"
               + (f"; weeks {', '.join(result.weeks)}" if result.weeks else ""))
    if result.files_ignored:
        click.echo(f"ignored {result.files_ignored} objects outside the layout "
                   "{start}_{end}/{level}/{tile_index}/{name}")


@click.command("rejects")
@click.option("--file", "file_key", metavar="KEY", help="Only this file (key under the source).")
@click.option("--limit", default=1000, show_default=True, help="At most this many rows.")
@output_options
def rejects(file_key: str | None, limit: int, fmt: str) -> None:
    """List rejected rows (file, line, reason, text) and files rejected whole.

    \b
    Example:
        renderer traffic rejects --file 1477872000_1477875599/0/3105/reporter-1.csv
    """
    from renderer.traffic.ingest import rejects as list_rejects

    with database().connect() as conn:
        rows = list_rejects(conn, file=file_key, limit=limit)
    show(rows, fmt, title="rejected rows", columns=["file_key", "line", "reason", "raw"])


@click.command("histogram")
@click.option("--tile", "tile_text", required=True, metavar="LEVEL/INDEX", help="e.g. 0/3105")
@click.option("--hour", "hour_text", required=True, metavar="HOUR",
              help="UTC hour, e.g. 2016-11-01T18 (or an epoch hour).")
@click.option("--mode", help="One mode (AUTO, BUS, ...); default every mode.")
@click.option("--json", "as_json", is_flag=True, help="Print the whole histogram as JSON.")
def histogram(tile_text: str, hour_text: str, mode: str | None, as_json: bool) -> None:
    """Show the histogram of one tile and hour: segments, next segments, bins.

    \b
    Example:
        renderer traffic histogram --tile 0/3105 --hour 2016-11-01T18 --mode AUTO --json
    """
    from renderer.traffic.histogram_export import hour_histogram
    from renderer.traffic.weeks import parse_hour

    tile = _tile(tile_text)
    try:
        hour = parse_hour(hour_text)
    except ValueError as exc:
        raise InputError(f"--hour: {exc}", "write it like 2016-11-01T18 (UTC)") from exc
    with database().connect() as conn:
        found = hour_histogram(conn, tile, hour, mode)
    if as_json:
        print_json(found)
        return
    click.echo(f"tile {found['tile']} hour {found['hour']} mode {found['mode'] or 'all'}: "
               f"{found['observations']} observations in {found['bins']} bins, "
               f"{len(found['segments'])} segments")
    print_table([{"mode": s["mode"], "segment_id": s["segment_id"],
                  "observations": s["observations"], "nexts": len(s["nexts"])}
                 for s in found["segments"]], title="segments")


@click.command("export-histograms")
@click.option("--out", required=True, metavar="ROOT",
              help="Folder, file:///path or s3://bucket/prefix to write to.")
@click.option("--tile", "tile_text", metavar="LEVEL/INDEX", help="Only this tile.")
@click.option("--week", help="Only this ISO week, e.g. 2016-W44.")
def export_histograms(out: str, tile_text: str | None, week: str | None) -> None:
    """Write one FlatBuffers file per (tile, hour) at {Y}/{M}/{D}/{H}/{level}/{index}.fb.

    The format is renderer/formats/histogram.fbs; read a file back with
    renderer.formats.histograms.decode_histogram.

    \b
    Example:
        renderer traffic export-histograms --out ./histograms --week 2016-W44
    """
    from renderer.storage import open_store
    from renderer.traffic.histogram_export import export_histograms as do_export
    from renderer.traffic.weeks import hour_range_of_week

    tile = _tile(tile_text) if tile_text else None
    first = end = None
    if week:
        try:
            first, end = hour_range_of_week(week)
        except ValueError as exc:
            raise InputError(f"--week: {exc}", "write it like 2016-W44") from exc
    store = open_store(out)
    with database().connect() as conn, _progress("exporting histograms") as advance:
        result = do_export(conn, store, tile=tile, first_hour=first, end_hour=end,
                           progress=advance)
    click.echo(f"wrote {result.files} histograms ({result.rows} rows, {result.observations} "
               f"observations, {result.bytes:,} bytes) to {store.url}")


@contextmanager
def _progress(label: str) -> Iterator[Callable[[str], None]]:
    """A rich counter on a terminal; nothing otherwise (the library logs a summary)."""
    if not is_terminal():
        yield lambda key: None
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}: {task.completed} files"),
                  TextColumn("[dim]{task.fields[key]}"), console=console) as bar:
        task = bar.add_task(label, total=None, key="")
        yield lambda key: bar.update(task, advance=1, key=key)


@click.command("sample")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder to write the reporter files into.")
@click.option("--tiles", "tile_count", default=2, show_default=True, help="Number of tiles.")
@click.option("--days", default=7, show_default=True, help="Number of days.")
@click.option("--seed", default=1, show_default=True, help="Same seed, same files.")
@click.option("--start", type=click.DateTime(formats=["%Y-%m-%d"]), default="2016-10-31",
              show_default=True, help="First day (UTC).")
@click.option("--scale", default=1.0, show_default=True, help="Multiply the traffic volume.")
def sample(out: Path, tile_count: int, days: int, seed: int, start: date, scale: float) -> None:
    """Write realistic reporter files: real tiles, daily congestion waves, gzip files,
    traversals spanning hours, all "no next segment" spellings, a few malformed lines.

    \b
    Example:
        renderer traffic sample --out ./sample --tiles 2 --days 7 --seed 1
    """
    from renderer.traffic.sample import generate

    try:
        with Progress("writing tile hours", tile_count * days * 24) as step:
            stats = generate(out, tiles=tile_count, days=days, seed=seed,
                             start=start.date() if hasattr(start, "date") else start,
                             scale=scale, progress=step)
    except ValueError as exc:
        raise InputError(str(exc), "see renderer traffic sample --help") from exc
    tiles_text = ", ".join(f"{t.level}/{t.index}" for t in stats.tiles)
    click.echo(f"wrote {stats.files} files ({stats.gzip_files} gzip), {stats.rows} rows "
               f"({stats.bad_rows} malformed), {stats.observations} observations for tiles "
               f"{tiles_text} to {out}")


COMMANDS: list[click.Command] = [submit, rejects, histogram, export_histograms, sample]
