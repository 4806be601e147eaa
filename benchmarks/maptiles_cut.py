"""The map tiles' block work, before and after the fifth pass, in turn in one database.

On the generated sample (``--cols x --rows``), after the zoom levels and every band's shapes,
every block of zooms 0..``--max-zoom`` is cut and painted again ``--rounds`` times per
variant, the variants in turn (before, after, before, ...), the tables vacuumed before each
pass, each pass timed as this process's CPU (client) and its connection's backend's
(server, ``/proc``):

- ``before``: the cut as main had it at 2adc722 (its ``cut_block`` statement, read from git,
  rows fetched as text dicts) and the grids painted tile by tile in Python around the C
  painter;
- ``after``: this branch's ``cut_block`` (rows as tuples, in binary) and
  ``renderer._utfgrid.tiles_copy`` (the block's grids and COPY rows in one C call).

Run: ``python benchmarks/maptiles_cut.py [--rounds 2]`` from a checkout with git.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from itertools import groupby
from pathlib import Path

from scratch import drop_database, scratch_database

from renderer import db
from renderer.db import connect
from renderer.localdb import Cluster
from renderer.maptiles import sample, utfgrid
from renderer.maptiles.regions import type_graph
from renderer.maptiles.slice import Block, RenderOptions, blocks, cut_block, paint_block, prepare
from renderer.maptiles.zooms import build_band, zoom_bands
from renderer.resources import named_sections

BENCH_DB = "renderer_bench_maptiles_cut"
BEFORE = "2adc722"


def _old_cut_sql() -> str:
    text = subprocess.run(["git", "show", f"{BEFORE}:sql/maptiles.sql"], capture_output=True,
                          text=True, check=True, cwd=Path(__file__).parent).stdout
    with tempfile.NamedTemporaryFile("w", suffix=".sql") as f:
        f.write(text)
        f.flush()
        return named_sections(Path(f.name))["cut_block"]


def _server_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def before(conn: db.Connection, block: Block, options: RenderOptions, sql: str,
           hierarchies: list[list[str]]) -> None:
    params = block.params(options)
    conn.execute(db.query("maptiles.delete_block"), params)
    pieces = conn.execute(sql, params).fetchall()
    with conn.cursor() as cur, cur.copy(db.query("maptiles.copy_tiles")) as copy:
        for (x, y), rows in groupby(pieces, key=lambda r: (r["x"], r["y"])):
            grids = utfgrid.tile_grids([(p["key"], p["type"], p["wkb"]) for p in rows],
                                       hierarchies, resolution=options.resolution)
            copy.write_row((block.z, x, y,
                            json.dumps(grids, ensure_ascii=False, separators=(",", ":"))))


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
    sql = _old_cut_sql()
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
            totals: dict[str, list[float]] = {"before": [], "after": []}
            for _ in range(args.rounds):
                for name in ("before", "after"):
                    # the dead rows of the last pass vacuumed outside the clock: without,
                    # each pass is slower than the one before whichever it is
                    conn.commit()
                    conn.autocommit = True
                    conn.execute("VACUUM tile_pieces, tile_features, tiles")
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
