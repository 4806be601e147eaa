"""Benchmark of the map-tiles pipeline, side by side in one run.

On the generated sample regions (``--cols x --rows`` blocks, 3,325 regions at 64 x 48; no
Natural Earth: its countries cover the whole world's tiles), in a scratch database of a
private cluster:

1. ``pipeline``: import + zoom levels + shapes + slicing + feature text + UTFGrids for zooms
   0..``--max-zoom``, through the work queue (one worker in this process), + export to
   PMTiles; CPU seconds of this process and of the whole PostgreSQL cluster, per tile, and
   the extrapolation to 45M tiles on 4 cores (goal <= 1 ms per tile).
2. ``utfgrid``: the tiles' grids painted by the C loop, by its Python twin, and by mapnik's
   grid renderer (``render_layer`` + ``encode``, the map and its datasource built outside
   the clock), ms per tile (goals: no slower than mapnik, >= 6x the original's 3 ms).
3. ``queue``: the cost of a work item with a no-op handler (claim, run, complete, in this
   process), per item and per tile (a block item carries up to 256 tiles), against the
   original's 1 ms per tile.
4. ``serving``: ``GET /tiles/z/x/y.json`` (statistics merged per request, gzip) against the
   same tiles from the PMTiles file behind the same server stack, tiles/s and p99 with
   ``--clients`` concurrent clients.

Run: ``python benchmarks/maptiles.py [--cols 64 --rows 48 --max-zoom 14]``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mapnik
import shapely
from maptiles_serving import serve
from scratch import TICK, cluster_seconds, drop_database, postmaster_of, scratch_database

from renderer import pipelines, queue
from renderer.db import connect, query
from renderer.localdb import Cluster
from renderer.maptiles import export, features, mvt, sample, utfgrid
from renderer.maptiles.profile import BLOCK_KIND, KINDS, plan_render
from renderer.maptiles.regions import type_graph
from renderer.maptiles.slice import Block, RenderOptions, blocks, cut_block, paint_block, prepare
from renderer.maptiles.zooms import build_band, zoom_bands
from renderer.worker import run_worker

BENCH_DB = "renderer_bench_maptiles"
STYLE = ('<Map srs="+proj=longlat +ellps=WGS84 +no_defs"><Style name="s"><Rule>'
         '<PolygonSymbolizer fill="black"/></Rule></Style></Map>')
NOOP = "maptiles-bench-noop"
PER_TILE = ("cut", "utfgrid", "export")     # grow with the tiles
PER_REGION = ("import", "zooms", "shapes")  # grow with the regions (times the zooms)
CENSUS_REGIONS = 500_000  # the census map's regions, of the order the issue gives


@queue.register(NOOP, time_limit=60)
def _noop(job: queue.Job) -> None:
    """Nothing: what is left is the queue's own cost per item."""


class CpuClock:
    """CPU seconds of this process, its waited-for children and a PostgreSQL cluster."""

    def __init__(self, url: str) -> None:
        self.tick = TICK
        self.postmaster = postmaster_of(url)

    def cluster(self) -> float:
        return cluster_seconds(self.postmaster)

    def own(self) -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system


class RoleSampler:
    """The cluster's CPU by process role while it runs: every ``period`` s each process of
    the cluster is read from ``/proc`` (its title says its role: a client backend, the
    autovacuum workers, the WAL writer, the checkpointer, ...), and each role is given the
    CPU its processes gained between their first and last sample (its own thread's CPU,
    ``cpu``, is taken off the pipeline's python figure). A process that ends
    between two samples loses at most one period of its CPU; ``unattributed`` is what
    :meth:`CpuClock.cluster` counted beyond the roles (mostly that)."""

    def __init__(self, clock: CpuClock, period: float = 0.2) -> None:
        self.clock, self.period = clock, period
        self.first: dict[int, tuple[str, float]] = {}
        self.last: dict[int, float] = {}
        self._stop = threading.Event()
        self.cpu = 0.0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[1]) != self.clock.postmaster:
                    continue
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    title = f.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            cpu = (int(fields[11]) + int(fields[12])) / self.clock.tick
            self.first.setdefault(int(pid), (_role(title), cpu))
            self.last[int(pid)] = cpu

    def _run(self) -> None:
        t0 = time.thread_time()
        while not self._stop.wait(self.period):
            self._sample()
        self.cpu = time.thread_time() - t0  # its own: taken off the pipeline's python CPU

    def __enter__(self) -> RoleSampler:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def roles(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for pid, (role, cpu0) in self.first.items():
            out[role] = out.get(role, 0.0) + self.last[pid] - cpu0
        return out


def _role(title: str) -> str:
    """A PostgreSQL process title (``postgres: autovacuum worker exp``) as its role."""
    for role in ("autovacuum worker", "autovacuum launcher", "walwriter", "checkpointer",
                 "background writer", "logical replication", "logger", "archiver"):
        if role in title:
            return role
    return "client backends" if title.startswith("postgres: ") else "other"


def pipeline(url: str, folder: Path, cols: int, rows: int, max_zoom: int,
             clock: CpuClock) -> dict[str, Any]:
    # Outside the clock: the input file (made here, a user has it), and the worker's start,
    # which imports every pipeline's profile once per process (timed apart).
    files = sample.write_sample(folder / "regions", cols=cols, rows=rows, natural_earth=False)
    start0 = clock.own()
    pipelines.load_all()
    start = clock.own() - start0
    own0, db0, t0 = clock.own(), clock.cluster(), time.perf_counter()
    sampler = RoleSampler(clock).__enter__()
    with connect(url) as conn, conn.transaction():
        sample.import_sample(conn, files)
    t_import = time.perf_counter() - t0
    with connect(url) as conn, conn.transaction():
        plan_render(conn, 0, max_zoom)
    stats = run_worker(url, kinds=KINDS, until_empty=True, poll_seconds=0.1)
    if stats.failed:
        raise SystemExit(f"{stats.failed} items failed")
    t_render = time.perf_counter() - t0 - t_import
    with connect(url) as conn:
        report = export.export(conn, folder / "bench.pmtiles")
    wall = time.perf_counter() - t0
    sampler.__exit__()
    own, db = clock.own() - own0 - sampler.cpu, clock.cluster() - db0
    roles = sampler.roles()
    roles["unattributed"] = db - sum(roles.values())
    # The per-tile part alone: every block item again (cut, feature text, UTFGrids, the
    # queue), the shapes of each zoom kept.
    with connect(url) as conn, conn.transaction():
        blocks = [r["key"] for r in conn.execute(
            "SELECT key FROM work_queue WHERE kind = %s", [BLOCK_KIND])]
        queue.enqueue_many(conn, [queue.NewItem(BLOCK_KIND, k, force=True) for k in blocks])
    own1, db1 = clock.own(), clock.cluster()
    again = run_worker(url, kinds=[BLOCK_KIND], until_empty=True, poll_seconds=0.1)
    block_cpu = clock.own() - own1 + clock.cluster() - db1
    return {"tiles": report.tiles, "items": stats.done, "wall": wall, "import_s": t_import,
            "render_s": t_render, "own_cpu": own, "db_cpu": db, "blocks": again.done,
            "block_cpu": block_cpu, "roles": roles, "start_cpu": start}


class PhaseClock:
    """CPU seconds per phase, of this process (client) and of the connection's backend
    (server: ``/proc/<backend pid>``), summed over every call of a phase."""

    def __init__(self, conn: Any) -> None:
        self.tick = os.sysconf("SC_CLK_TCK")
        self.pid = conn.execute("SELECT pg_backend_pid() AS pid").fetchone()["pid"]
        self.totals: dict[str, list[float]] = {}

    def _server(self) -> float:
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / self.tick

    def __call__(self, phase: str, fn: Callable[[], Any]) -> Any:
        c0, s0 = time.process_time(), self._server()
        result = fn()
        total = self.totals.setdefault(phase, [0.0, 0.0])
        total[0] += time.process_time() - c0
        total[1] += self._server() - s0
        return result


def phases(url: str, folder: Path, cols: int, rows: int, max_zoom: int) -> dict[str, Any]:
    """The pipeline's phases called directly (no queue), in one connection, each timed:
    import, zooms (zoom levels + shared arcs), shapes (per band of zooms, with their block
    lists),
    cut (one statement per block: pieces, feature text, pieces in pixels), utfgrid (paint
    + copy), export (PMTiles)."""
    with connect(url) as conn:
        clock = PhaseClock(conn)
        files = sample.write_sample(folder / "phase-regions", cols=cols, rows=rows,
                                    natural_earth=False)
        with conn.transaction():
            clock("import", lambda: sample.import_sample(conn, files))
        options = RenderOptions()
        with conn.transaction():
            clock("zooms", lambda: prepare(conn, 0, max_zoom, options.rules))
        found = []
        for first, top in zoom_bands(0, max_zoom, options.rules.band):
            with conn.transaction():
                clock("shapes", lambda f=first, t=top: (
                    build_band(conn, f, t, options.rules),
                    found.extend(Block(z, bx, by) for z in range(f, t + 1)
                                 for bx, by in blocks(conn, z, options))))
        hierarchies = utfgrid.chains(type_graph(conn))
        for block in found:
            with conn.transaction():
                pieces = clock("cut", lambda b=block: cut_block(conn, b, options))
                clock("utfgrid", lambda b=block, p=pieces: paint_block(
                    conn, b, p, hierarchies, options.resolution))
        report = clock("export", lambda: export.export(conn, folder / "phases.pmtiles"))
        encoders = mvt_encoders(conn)
    return {"tiles": report.tiles, "blocks": len(found), "phases": clock.totals,
            "mvt": encoders}


def mvt_encoders(conn: Any) -> dict[str, list[float]]:
    """Every tile's MVT made three ways, each timed (client and server CPU s): PostGIS's
    ST_AsMVT (the export's statement before), and the pieces read as WKB and encoded by
    the C encoder and by its Python twin (the export's path now)."""
    clock = PhaseClock(conn)
    keys = [(r["z"], r["x"], r["y"]) for r in conn.execute("SELECT z, x, y FROM tiles")]
    chunks = [keys[i:i + export.BATCH] for i in range(0, len(keys), export.BATCH)]

    def params(chunk: list[tuple[int, int, int]]) -> dict[str, Any]:
        return {"zs": [k[0] for k in chunk], "xs": [k[1] for k in chunk],
                "ys": [k[2] for k in chunk], "margin": 4 / 256}

    def sql() -> None:
        for chunk in chunks:
            conn.execute(query("maptiles.export_mvt_sql"), params(chunk)).fetchall()

    def ours(encode: mvt.Encode) -> Callable[[], None]:
        def run() -> None:
            regions = mvt.Regions(conn)
            for chunk in chunks:
                mvt.tiles(conn, chunk, regions, encoder=encode)
        return run

    with conn.transaction():
        clock("ST_AsMVT", sql)
        for name, encode in sorted(mvt.implementations().items()):
            clock(name, ours(encode))
    return clock.totals


def tiles_for_grids(url: str, count: int) -> list[tuple[list[str], list[bytes | None]]]:
    """(keys, WKB in tile pixels) of the first hierarchy, for ``count`` tiles of the deepest
    zooms with several regions."""
    with connect(url) as conn:
        chain = utfgrid.chains(type_graph(conn))[0]
        picked = conn.execute(
            "SELECT z, x, y FROM tile_regions t, unnest(t.region_ids) AS p(region_id)"
            " JOIN regions r ON r.id = p.region_id"
            " WHERE r.type = ANY(%s) GROUP BY z, x, y HAVING count(*) >= 4"
            " ORDER BY z DESC, x, y LIMIT %s", [chain, count]).fetchall()
        out = []
        for t in picked:
            size = 40075016.68557849 / 2 ** t["z"]
            pieces = conn.execute(
                "SELECT r.key, CASE WHEN NOT p.covers THEN ST_AsBinary(ST_Affine(p.geom,"
                " 256 / %(s)s, 0, 0, -256 / %(s)s, (2 ^ (%(z)s - 1) - p.x) * 256,"
                " (2 ^ (%(z)s - 1) - p.y) * 256)) END AS wkb"
                " FROM (SELECT t.z, t.x, t.y, u.region_id, u.geom, u.geom IS NULL AS covers, u.n"
                "       FROM tile_regions t, unnest(t.region_ids, t.geoms) WITH ORDINALITY"
                "       AS u(region_id, geom, n)"
                "       WHERE t.z = %(z)s AND t.x = %(x)s AND t.y = %(y)s) p"
                " JOIN regions r ON r.id = p.region_id WHERE r.type = ANY(%(c)s)"
                " ORDER BY p.n", {**t, "s": size, "c": chain}).fetchall()
            out.append(([p["key"] for p in pieces], [p["wkb"] for p in pieces]))
    return out


def _mapnik_map(keys: list[str], shapes: list[bytes | None]) -> Any:
    m = mapnik.Map(256, 256)
    mapnik.load_map_from_string(m, STYLE)
    ctx = mapnik.Context()
    ctx.push("key")
    ds = mapnik.MemoryDatasource()
    for i, (key, wkb) in enumerate(zip(keys, shapes, strict=True)):
        geom = shapely.box(-8, -8, 264, 264) if wkb is None else shapely.from_wkb(wkb)
        f = mapnik.Feature(ctx, i + 1)
        f["key"] = key
        f.geometry = mapnik.Geometry.from_wkt(
            shapely.transform(geom, lambda xy: xy * [1, -1] + [0, 256]).wkt)
        ds.add_feature(f)
    layer = mapnik.Layer("l")
    layer.datasource = ds
    layer.styles.append("s")
    m.layers.append(layer)
    m.zoom_to_box(mapnik.Box2d(0, 0, 256, 256))
    return m


def per_tile_ms(fn: Callable[[], Any], n: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best / n * 1000


def grids(url: str, count: int) -> dict[str, float]:
    tiles = tiles_for_grids(url, count)
    painters = utfgrid.implementations()
    maps = [_mapnik_map(k, s) for k, s in tiles]

    def ours(paint: utfgrid.Paint) -> Callable[[], None]:
        return lambda: [utfgrid.grid(s, k, painter=paint) for k, s in tiles] and None

    def with_mapnik() -> None:
        for m in maps:
            g = mapnik.Grid(256, 256)
            mapnik.render_layer(m, g, layer=0, fields=["key"])
            g.encode("utf", resolution=4)

    shapes = sum(len(k) for k, _ in tiles)
    return {"tiles": len(tiles), "shapes_per_tile": shapes / max(1, len(tiles)),
            "c_ms": per_tile_ms(ours(painters["c"]), len(tiles), 5),
            "python_ms": per_tile_ms(ours(painters["python"]), len(tiles), 1),
            "mapnik_ms": per_tile_ms(with_mapnik, len(tiles), 3)}


def queue_cost(url: str, items: int, clock: CpuClock) -> dict[str, float]:
    with connect(url) as conn, conn.transaction():
        queue.enqueue_many(conn, [queue.NewItem(NOOP, str(i)) for i in range(items)])
    own0, db0, t0 = clock.own(), clock.cluster(), time.perf_counter()
    stats = run_worker(url, kinds=[NOOP], until_empty=True, poll_seconds=0.1)
    wall = time.perf_counter() - t0
    cpu = clock.own() - own0 + clock.cluster() - db0
    return {"items": stats.done, "wall_ms": wall / stats.done * 1000,
            "cpu_ms": cpu / stats.done * 1000}


DIGESTS = {
    "arcs": "SELECT md5(string_agg(ST_AsEWKB(geom)::text || types::text, ',' ORDER BY id))"
            " FROM region_arcs",
    "shapes": "SELECT md5(string_agg(zoom || '/' || region_id || ST_AsEWKB(geom)::text, ','"
              " ORDER BY zoom, region_id)) FROM region_shapes",
    "tiles": "SELECT md5(string_agg(concat_ws('/', t.z, t.x, t.y, t.utfgrids, r.region_ids,"
             " r.geoms::text[], r.features), ',' ORDER BY t.z, t.x, t.y))"
             " FROM tiles t LEFT JOIN tile_regions r USING (z, x, y)",
}


def digests(url: str, archive: Path) -> dict[str, str]:
    """An MD5 of each product: the arcs, the shapes, the tiles' rows, the PMTiles file."""
    with connect(url) as conn:
        found = {name: str(next(iter(conn.execute(sql).fetchone().values())))  # type: ignore[union-attr]
                 for name, sql in DIGESTS.items()}
    found["pmtiles"] = hashlib.md5(archive.read_bytes()).hexdigest()
    return found


def cols_rows(args: argparse.Namespace) -> int:
    """Regions of the generated sample: blocks, districts, wards, provinces, the land."""
    c, r = args.cols, args.rows
    return c * r + -(-c // 4) * -(-r // 4) + -(-c // 8) * -(-r // 8) \
        + -(-c // 16) * -(-r // 16) + 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cols", type=int, default=64)
    parser.add_argument("--rows", type=int, default=48)
    parser.add_argument("--max-zoom", type=int, default=14)
    parser.add_argument("--grid-tiles", type=int, default=400)
    parser.add_argument("--queue-items", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--phases-only", action="store_true",
                        help="Only the CPU per phase (no queue, grids, serving).")
    parser.add_argument("--digest", action="store_true",
                        help="Print a digest of each product of the phases (shapes, tiles, "
                             "the PMTiles file): two trees' products compared.")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="renderer-bench-maptiles-"))
    cluster = Cluster(home)
    server = cluster.ensure_started()
    url = scratch_database(server, BENCH_DB)
    try:
        ph = phases(url, home, args.cols, args.rows, args.max_zoom)
        total = sum(c + s for c, s in ph["phases"].values())
        print(f"phases ({ph['tiles']} tiles, {ph['blocks']} blocks, no queue; CPU ms per "
              f"tile, client + server): " + ", ".join(
                  f"{name} {c / ph['tiles'] * 1000:.3f} + {s / ph['tiles'] * 1000:.3f}"
                  for name, (c, s) in ph["phases"].items())
              + f"; total {total / ph['tiles'] * 1000:.2f} ms/tile", flush=True)
        cpu = {name: c + s for name, (c, s) in ph["phases"].items()}
        tile_ms = sum(cpu[n] for n in PER_TILE) / ph["tiles"] * 1000
        region_ms = sum(cpu[n] for n in PER_REGION) / cols_rows(args) * 1000
        print(f"phases split: per tile ({'+'.join(PER_TILE)}) {tile_ms:.3f} ms, per region "
              f"({'+'.join(PER_REGION)}, zooms 0-{args.max_zoom}) {region_ms:.2f} ms -> 45M "
              f"tiles and {CENSUS_REGIONS:,} regions on 4 cores: "
              f"{(45e6 * tile_ms + CENSUS_REGIONS * region_ms) / 1000 / 4 / 3600:.1f} h; "
              f"per tile with the per-region part spread over the tiles: "
              f"{tile_ms + region_ms * cols_rows(args) / ph['tiles']:.3f} ms here "
              f"({ph['tiles'] / cols_rows(args):.1f} tiles a region), "
              f"{tile_ms + region_ms * CENSUS_REGIONS / 45e6:.3f} ms at the census map's "
              f"{45e6 / CENSUS_REGIONS:.0f} tiles a region", flush=True)
        print("mvt, every tile (not in the phases; CPU ms per tile, client + server): " +
              ", ".join(f"{name} {c / ph['tiles'] * 1000:.3f} + {s / ph['tiles'] * 1000:.3f}"
                        for name, (c, s) in ph["mvt"].items()), flush=True)
        if args.digest:
            print("digests: " + ", ".join(f"{name} {value}" for name, value in
                                          digests(url, home / "phases.pmtiles").items()),
                  flush=True)
        if args.phases_only:
            return
        drop_database(server, BENCH_DB)
        url = scratch_database(server, BENCH_DB)
        clock = CpuClock(url)
        p = pipeline(url, home, args.cols, args.rows, args.max_zoom, clock)
        cpu = p["own_cpu"] + p["db_cpu"]
        per_tile = cpu / p["tiles"] * 1000
        hours = 45e6 * per_tile / 1000 / 4 / 3600
        print(f"pipeline: {p['tiles']:.0f} tiles (zooms 0-{args.max_zoom}, {p['items']:.0f}"
              f" items) in {p['wall']:.1f} s wall (import {p['import_s']:.1f} s, render "
              f"{p['render_s']:.1f} s); CPU {p['own_cpu']:.1f} s python + {p['db_cpu']:.1f} s"
              f" PostgreSQL = {per_tile:.2f} ms/tile -> 45M tiles on 4 cores: {hours:.1f} h"
              f" (worker start, once per process: {p['start_cpu']:.1f} s python, not counted)",
              flush=True)
        print("pipeline's PostgreSQL CPU by role, ms per tile: " + ", ".join(
            f"{role} {cpu / p['tiles'] * 1000:.3f}" for role, cpu in
            sorted(p["roles"].items(), key=lambda kv: -kv[1])), flush=True)
        block_tile = p["block_cpu"] / p["tiles"] * 1000
        fixed = cpu - p["block_cpu"]
        print(f"pipeline per-tile part ({p['blocks']:.0f} block items again): "
              f"{block_tile:.2f} ms CPU/tile -> 45M tiles on 4 cores: "
              f"{45e6 * block_tile / 1000 / 4 / 3600:.1f} h; the rest (import, zoom levels, "
              f"arcs, per-zoom shapes, export) {fixed:.1f} s CPU for {cols_rows(args)} "
              f"regions", flush=True)
        g = grids(url, args.grid_tiles)
        print(f"utfgrid: {g['tiles']:.0f} tiles, {g['shapes_per_tile']:.1f} regions/tile: "
              f"c {g['c_ms']:.3f} ms/tile, python {g['python_ms']:.2f}, mapnik "
              f"{g['mapnik_ms']:.3f}; c vs mapnik {g['mapnik_ms'] / g['c_ms']:.1f}x, "
              f"vs the original's 3 ms {3 / g['c_ms']:.0f}x", flush=True)
        q = queue_cost(url, args.queue_items, clock)
        with connect(url) as conn:
            per_block = conn.execute(
                "SELECT count(*)::float8 / count(DISTINCT (z, x / 16, y / 16)) AS n FROM tiles"
                " WHERE z >= 4").fetchone()["n"]  # type: ignore[index]
        print(f"queue: {q['items']:.0f} no-op items, {q['wall_ms']:.2f} ms wall and "
              f"{q['cpu_ms']:.2f} ms CPU per item; {per_block:.0f} tiles per block item on "
              f"this sample -> {q['cpu_ms'] / per_block:.4f} ms CPU per tile (original: 1 ms)",
              flush=True)
        with connect(url) as conn:
            keys = [(r["z"], r["x"], r["y"]) for r in conn.execute("SELECT z, x, y FROM tiles")]
            csv = home / "stats.csv"
            sample.write_stats(csv, conn)
            with conn.transaction():
                features.import_stats(conn, csv)
            export.export(conn, home / "bench.pmtiles")
        s = serve(url, home / "bench.pmtiles", keys, args.clients, args.requests,
                  clock.cluster)
        print(f"serving ({args.clients} clients, {args.requests} requests, gzip): " + "; ".join(
            f"{label} {r['per_s']:.0f} tiles/s p50 {r['p50_ms']:.1f} ms p99 {r['p99_ms']:.1f} ms,"
            f" CPU per request {r['app_ms']:.2f} ms server + {r['db_ms']:.2f} ms PostgreSQL"
            for label, r in (("/tiles", s["tiles"]), ("PMTiles file", s["pmtiles"]))),
            flush=True)
    finally:
        drop_database(server, BENCH_DB)
        cluster.stop()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
