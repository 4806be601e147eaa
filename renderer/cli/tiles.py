"""``renderer tiles``: regions -> GeoJSON + UTFGrid map tiles, statistics merged last."""

from __future__ import annotations

from pathlib import Path

import click

from renderer.cli._common import database, print_json, print_table, settings
from renderer.errors import InputError

# Commands import their library modules when they run, so that every other command (and
# `renderer --help`) starts without loading pyogrio (GDAL), shapely, pmtiles or the pipelines.


@click.group("tiles")
def tiles() -> None:
    """Map tiles of nested regions: import, render, statistics, export.

    \b
    Example:
        renderer tiles sample ./regions && renderer tiles import ./regions/countries.geojson \\
            --type Country --uid-field uid
        renderer tiles render --max-zoom 6 --wait
        renderer tiles stats ./stats.csv
        renderer tiles export ./out.pmtiles
    """


def _parents(values: tuple[str, ...]) -> dict[str, str]:
    parents: dict[str, str] = {}
    for value in values:
        kind, sep, field = value.partition("=")
        if not sep or not kind or not field:
            raise InputError(f"--parent-field {value!r} is not TYPE=FIELD",
                             "write e.g. --parent-field Province=PRUID")
        parents[kind] = field
    return parents


@tiles.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--type", "region_type", required=True, help="Region type, e.g. Province.")
@click.option("--uid-field", help="Field holding the region's uid (default: the feature id).")
@click.option("--name-field", help="Field holding its name (default: `name` if present).")
@click.option("--parent-field", "parent_fields", multiple=True, metavar="TYPE=FIELD",
              help="Field holding the uid of its parent of TYPE (repeatable).")
@click.option("--max-zoom", type=click.IntRange(0, 24),
              help="Do not draw this type beyond this zoom (coarse data).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def import_(file: Path, region_type: str, uid_field: str | None, name_field: str | None,
            parent_fields: tuple[str, ...], max_zoom: int | None, as_json: bool) -> None:
    """Import the regions of one type from a GeoJSON, GeoPackage or Shapefile.

    Invalid polygons are repaired (ST_MakeValid); features without uid or polygon are
    rejected with a reason (`renderer tiles rejects`). Importing a type again replaces
    the regions with the same uids.

    \b
    Example:
        renderer tiles import provinces.gpkg --type Province --uid-field PRUID \\
            --name-field PRENAME --parent-field Country=CTRY
    """
    from renderer.maptiles.regions import import_file

    db = database()
    with db.connect() as conn, conn.transaction():
        report = import_file(conn, file, region_type, uid_field=uid_field,
                             name_field=name_field, parent_fields=_parents(parent_fields),
                             max_zoom=max_zoom)
    if as_json:
        print_json(report.__dict__)
        return
    click.echo(f"{report.file}: {report.imported} {report.type} regions imported "
               f"({report.repaired} repaired), {report.rejected} rejected")


@tiles.command("sample")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option("--cols", default=64, show_default=True, type=click.IntRange(4, 1024),
              help="Generated blocks west to east (multiple of 16 for whole provinces).")
@click.option("--rows", default=48, show_default=True, type=click.IntRange(4, 1024),
              help="Generated blocks south to north.")
@click.option("--natural-earth/--no-natural-earth", default=True, show_default=True,
              help="Also Natural Earth's continents and countries (drawn to zoom 6).")
@click.option("--import", "then_import", is_flag=True, help="Then import the files.")
def sample(folder: Path, cols: int, rows: int, natural_earth: bool, then_import: bool) -> None:
    """Write sample regions (and statistics once imported) into FOLDER.

    Real: Natural Earth's countries under their continents. Generated: Land > Province >
    District > Block and Land > Province > Ward (3,325 regions at 64 x 48).

    \b
    Example:
        renderer tiles sample ./regions --import
    """
    from renderer.maptiles.sample import import_sample, write_sample, write_stats

    files = write_sample(folder, cols=cols, rows=rows, natural_earth=natural_earth)
    if not then_import:
        for f in files:
            parents = "".join(f" --parent-field {t}={v}" for t, v in f.parent_fields.items())
            cap = f" --max-zoom {f.max_zoom}" if f.max_zoom is not None else ""
            click.echo(f"renderer tiles import {f.path} --type {f.type} --uid-field "
                       f"{f.uid_field}{parents}{cap}")
        return
    with database().connect() as conn, conn.transaction():
        reports = import_sample(conn, files)
        stats_file = write_stats(folder / "stats.csv", conn)
    for r in reports:
        click.echo(f"{r.type}: {r.imported} regions ({r.rejected} rejected)")
    click.echo(f"statistics for them in {stats_file}: renderer tiles stats {stats_file}")


@tiles.command("rejects")
def rejects() -> None:
    """List rejected features with file, position and reason.

    \b
    Example:
        renderer tiles rejects
    """
    from renderer.maptiles.regions import rejects as list_rejects

    with database().connect() as conn:
        print_table(list_rejects(conn), title="rejected features")


@tiles.command("render")
@click.option("--min-zoom", default=0, show_default=True, type=click.IntRange(0, 22))
@click.option("--max-zoom", default=14, show_default=True, type=click.IntRange(0, 22))
@click.option("--resolution", default=4, show_default=True, type=click.IntRange(1, 256),
              help="UTFGrid pixels per character.")
@click.option("--wait", is_flag=True, help="Work the items in this process until done.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def render(min_zoom: int, max_zoom: int, resolution: int, wait: bool, as_json: bool) -> None:
    """Compute zoom levels and shared arcs, then enqueue the tiles of each zoom.

    One work item per band of two zooms builds their shapes and enqueues one item per
    block of 16 x 16 tiles. Items run under `renderer work`, or here with --wait.

    \b
    Example:
        renderer tiles render --max-zoom 8 --wait
    """
    from renderer.maptiles.profile import PROFILE, RenderRun, RenderSummary
    from renderer.runner import run_until_idle, submit

    url = database().url
    options = {"min_zoom": min_zoom, "max_zoom": max_zoom, "resolution": resolution}
    done: RenderSummary | None = None
    if wait:  # one worker in this process, until the profile's items are done
        done = run_until_idle(url, PROFILE, options, settings=settings(), processes=None)
        run: RenderRun = done.run
    else:
        run = submit(url, PROFILE, options, settings()).detail
    if as_json:
        print_json({**run.__dict__, "worker": None if done is None else {
            "done": done.items_done, "failed": done.items_failed, "seconds": done.seconds,
            "tiles": done.tiles}})
        return
    click.echo(f"set {run.set_id!r}: zooms {min_zoom}-{max_zoom}, {run.arcs} shared arcs, "
               f"{run.enqueued} zoom items enqueued")
    if done is None:
        click.echo("next: renderer work")
    else:
        click.echo(f"worked {done.items_done} items ({done.items_failed} failed) in "
                   f"{done.seconds:.1f} s; {sum(done.tiles.values())} tiles")


@tiles.command("stats")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def stats(csv_file: Path, as_json: bool) -> None:
    """Import statistics (columns type,uid,<indicator>...) merged into tiles when served.

    No geometry is re-rendered: served tiles show the new values at once; run
    `renderer tiles export` again to republish archives.

    \b
    Example:
        renderer tiles stats ./census-2026.csv
    """
    from renderer.maptiles.features import import_stats

    with database().connect() as conn, conn.transaction():
        report = import_stats(conn, csv_file)
    if as_json:
        print_json(report.__dict__)
        return
    click.echo(f"{csv_file}: statistics for {report.imported} regions "
               f"({len(report.indicators)} indicators), {len(report.rejected)} rows rejected")
    for line, reason in report.rejected[:20]:
        click.echo(f"  line {line}: {reason}", err=True)


@tiles.command("export")
@click.argument("target", required=False)
@click.option("--min-zoom", default=0, show_default=True, type=click.IntRange(0, 24))
@click.option("--max-zoom", default=24, show_default=True, type=click.IntRange(0, 24))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def export(target: str | None, min_zoom: int, max_zoom: int, as_json: bool) -> None:
    """Write the rendered tiles, statistics merged now, as GeoJSON and vector tiles.

    TARGET is a folder or store URL ({z}/{x}/{y}.json and .mvt; s3://bucket/prefix works),
    an .mbtiles file (MVT in `tiles`, GeoJSON in `geojson_tiles`) or a .pmtiles file (MVT;
    the GeoJSON beside it in NAME.geojson.pmtiles), local or in S3; default: maptiles/ in
    the store (RENDERER_STORAGE). Run it again after `tiles stats` to republish.

    \b
    Example:
        renderer tiles export ./regions.pmtiles
        renderer tiles export ./tiles/ --max-zoom 8
        renderer tiles export s3://maps/census/regions.pmtiles
    """
    from renderer.maptiles.export import export as write

    target = target or settings().store_url.rstrip("/") + "/maptiles"
    with database().connect() as conn:
        report = write(conn, target, min_zoom=min_zoom, max_zoom=max_zoom)
    if as_json:
        print_json(report.__dict__)
        return
    click.echo(f"{report.tiles} tiles written to {', '.join(report.files)}")


@tiles.command("status")
def status() -> None:
    """Regions per type with their zoom range, and tiles per zoom.

    \b
    Example:
        renderer tiles status
    """
    from renderer.maptiles.profile import summary

    with database().connect() as conn:
        found = summary(conn)
    print_table(found["types"], title="regions")
    print_table(found["tiles"], title="tiles")


COMMANDS = [tiles]
