"""The map tiles' block work, main's before this pass and this branch's, in turn in one database.

On the generated sample (``--cols x --rows``), after the zoom levels and every band's shapes,
every block of zooms 0..``--max-zoom`` is cut and painted again ``--rounds`` times per
variant, the variants in turn (before, after, before, ...), the tables emptied, vacuumed
and checkpointed before each pass, each pass timed as this process's CPU (client) and its
connection's backend's (server, ``/proc``):

- ``before``: the cut as main had it at 3ae8255 (its ``delete_block`` and ``cut_block``
  statements, read from git, writing a row a piece to ``tile_pieces`` and a row a feature
  text to ``tile_features``, made here from their retired definitions ``@0035``);
- ``after``: this branch's (a row a tile in ``tile_regions``).

Both paint the grids the same way (``paint_block``).

Run: ``python benchmarks/maptiles_cut.py [--rounds 3]`` from a checkout with git.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from scratch import drop_database, scratch_database

from renderer import db, schema
from renderer.db import connect
from renderer.localdb import Cluster
from renderer.maptiles import sample, utfgrid
from renderer.maptiles.regions import type_graph
from renderer.maptiles.slice import Block, RenderOptions, blocks, cut_block, paint_block, prepare
from renderer.maptiles.zooms import build_band, zoom_bands
from renderer.resources import named_sections

BENCH_DB = "renderer_bench_maptiles_cut"
BEFORE = "3ae8255"


def _old_sql() -> dict[str, str]:
    text = subprocess.run(["git", "show", f"{BEFORE}:sql/maptiles.sql"], capture_output=True,
                          text=True, check=True, cwd=Path(__file__).parent).stdout
    with tempfile.NamedTemporaryFile("w", suffix=".sql") as f:
        f.write(text)
        f.flush()
        return named_sections(Path(f.name))


def _server_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def before(conn: db.Connection, block: Block, options: RenderOptions, sql: dict[str, str],
           hierarchies: list[list[str]]) -> None:
    params = block.params(options)
    conn.execute(sql["delete_block"], params)
    with conn.cursor(row_factory=db.tuple_row) as cur:
        pieces = cur.execute(sql["cut_block"], params, binary=True).fetchall()
    paint_block(conn, block, pieces, hierarchies, options.resolution)


def after(conn: db.Connection, block: Block, options: RenderOptions,
          hierarchies: list[list[str]]) -> None:
    pieces = cut_block(conn, block, options)
    paint_block(conn, block, pieces, hierarchies, options.resolution)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cols", type=int, default=64)
    parser.add_argument("--rows", type=int, default=48)
    parser.add_argument("--max-zoom", type=int, default=14)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    sql = _old_sql()
    home = Path(tempfile.mkdtemp(prefix="renderer-bench-maptiles-cut-"))
    cluster = Cluster(home)
    server = cluster.ensure_started()
    url = scratch_database(server, BENCH_DB)
    try:
        with connect(url) as conn:
            pid = conn.execute("SELECT pg_backend_pid() AS pid").fetchone()["pid"]
            files = sample.write_sample(home / "regions", cols=args.cols, rows=args.rows,
                                        natural_earth=False)
            options = RenderOptions()
            with conn.transaction():
                sample.import_sample(conn, files)
                prepare(conn, 0, args.max_zoom, options.rules)
            found = []
            for first, top in zoom_bands(0, args.max_zoom, options.rules.band):
                with conn.transaction():
                    build_band(conn, first, top, options.rules)
                    found.extend(Block(z, bx, by) for z in range(first, top + 1)
                                 for bx, by in blocks(conn, z, options))
            hierarchies = utfgrid.chains(type_graph(conn))
            conn.execute(schema.definition("tile_pieces", "0035"))
            conn.execute(schema.definition("tile_features", "0035"))
            conn.commit()
            totals: dict[str, list[float]] = {"before": [], "after": []}
            for _ in range(args.rounds):
                for name in ("before", "after"):
                    # every pass from empty tables, vacuumed and checkpointed outside the clock
                    conn.commit()
                    conn.autocommit = True
                    conn.execute("TRUNCATE tile_pieces, tile_features, tile_regions, tiles")
                    conn.execute("VACUUM tile_pieces, tile_features, tile_regions, tiles")
                    conn.execute("CHECKPOINT")
                    conn.autocommit = False
                    c0, s0 = time.process_time(), _server_cpu(pid)
                    for block in found:
                        with conn.transaction():
                            if name == "before":
                                before(conn, block, options, sql, hierarchies)
                            else:
                                after(conn, block, options, hierarchies)
                    totals[name].append(time.process_time() - c0)
                    totals[name].append(_server_cpu(pid) - s0)
            tiles = conn.execute("SELECT count(*) AS n FROM tiles").fetchone()["n"]
        for name, values in totals.items():
            pairs = [(values[i], values[i + 1]) for i in range(0, len(values), 2)]
            print(f"{name}: " + ", ".join(f"{c / tiles * 1000:.3f} + {s / tiles * 1000:.3f}"
                                          for c, s in pairs)
                  + f" ms a tile (client + server), {len(found)} blocks, {tiles} tiles",
                  flush=True)
    finally:
        drop_database(server, BENCH_DB)
        cluster.stop()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
