"""`renderer traffic` commands of one stage group (see traffic.py): tables for analysts.

export-speeds (a week's speeds from the database), decode (an OpenTraffic tile file).
"""

from __future__ import annotations

from pathlib import Path

import click

from renderer import tiles
from renderer.cli._common import Progress, database, print_json
from renderer.errors import InputError

# Library modules (pyarrow, numpy) are imported when a command runs, so that other commands
# and `renderer --help` start without them.


def _tiles(values: tuple[str, ...]) -> list[tiles.Tile]:
    chosen = []
    for text in values:
        try:
            chosen.append(tiles.parse_tile(text))
        except ValueError as exc:
            raise InputError(f"--tile {text!r}: {exc}", "write LEVEL/INDEX, e.g. 0/2140") from exc
    return chosen


@click.command("export-speeds")
@click.option("--week", required=True, metavar="YYYY-Www", help="The ISO week.")
@click.option("--tile", "tile_texts", multiple=True, metavar="LEVEL/INDEX",
              help="Only this tile and the tiles inside it; repeatable.")
@click.option("--mode", "modes", multiple=True, metavar="MODE",
              help="Only this mode (AUTO, BUS, ...); repeatable.")
@click.option("--format", "fmt", type=click.Choice(["parquet", "csv"]), default="parquet",
              show_default=True, help="Format of the file written.")
@click.option("--out", required=True, metavar="PATH", help="File to write ('-': stdout, csv).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def export_speeds(week: str, tile_texts: tuple[str, ...], modes: tuple[str, ...], fmt: str,
                  out: str, as_json: bool) -> None:
    """Write a week's speeds as one table: a row per segment, hour of week and mode.

    Rows are the hours the week's speed tiles publish. Columns: mode, week, level, index
    (the tile), segment_id, segment_index, hour_of_week (0 = Monday 00:00 UTC), then the
    .spd fields under OpenTraffic's names (speeds, speedVariances, prevalences,
    nextSegmentCounts) and what the files leave out: observations, mean_speed, length.
    Streamed tile by tile; the file appears when complete.

    \b
    Example:
        renderer traffic export-speeds --week 2016-W44 --out week.parquet
        renderer traffic export-speeds --week 2016-W44 --tile 0/2140 --format csv --out -
    """
    from renderer.traffic import export_speeds as ex
    from renderer.traffic.tables import EXPORT_COLUMNS, open_table

    only = _tiles(tile_texts)
    with database().connect() as conn:
        chosen = ex.week_tiles(conn, week, modes=modes, only=only)
        with Progress("exporting segments", sum(t.segments for t in chosen)) as step, \
                open_table(out, EXPORT_COLUMNS, fmt) as table:
            result = ex.export(conn, week, table, modes=modes, only=only,
                               progress=step)
    if as_json:
        print_json({**result.__dict__, "path": out, "format": fmt})
    elif out != "-":
        click.echo(f"{out}: {result.rows:,} rows ({result.segments:,} segments, "
                   f"{result.tiles} tiles) of {result.week}")


@click.command("decode")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv",
              show_default=True, help="Output on stdout.")
@click.option("--spd", "spd_file", type=click.Path(path_type=Path, dir_okay=False),
              help="For a .nex file: the .spd file of the same subtile (default: the one "
                   "beside it), which says the segment and hour of each entry.")
def decode(file: Path, fmt: str, spd_file: Path | None) -> None:
    """Print an OpenTraffic speed tile file (.spd, .nex, .ref; gzipped or not) as a table.

    .spd: a row per segment and hour of week with data (speeds, speedVariances,
    prevalences, nextSegmentIndices, nextSegmentCounts). .nex: a row per next-segment
    entry (nextSegmentIds, nextSegmentDelays, ...; 4398046511103 = no next segment), with
    its segment and hour when the .spd file is found. .ref: a row per segment and hour
    with a mean speed (speeds), and the segment's referenceSpeeds20/40/60/80.

    \b
    Example:
        renderer traffic decode 2016/44/0/002/140.spd.0.gz > speeds.csv
        renderer traffic decode 0/002/140.ref.gz --format json
    """
    from renderer.traffic.decode import decode_file
    from renderer.traffic.tables import batched, open_table

    columns, rows = decode_file(file, spd_file)
    with open_table("-", columns, fmt) as table:
        for batch in batched(rows):
            table.write(batch)


COMMANDS: list[click.Command] = [export_speeds, decode]
