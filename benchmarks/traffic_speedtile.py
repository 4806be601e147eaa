"""Speed tiles of one level-0 tile-week: ours (PostgreSQL in and out) vs DuckDB and Polars.

Generates (not timed) the histograms of one level-0 tile and its 16 level-1 children for
one ISO week: 50,000 segments and 5,000,000 observations by default, with daily waves,
a heavy-tailed volume per segment, 1-4 next segments each, congestion at rush hours and a
few queues; binned as the histogram stage bins them, loaded into PostgreSQL and written as
Parquet. Then, in one run, each contender in turn:

- c: :func:`renderer.traffic.speedtile.build` with the C engine (binary COPY out in key
  order, ext/speedtile.c, binary COPY back into traffic_speeds), committed; first in one
  part (one backend), then split across ``--parts`` backends (default: the setting's);
- sql: the same with the SQL engine (one INSERT ... SELECT of aggregates and windows);
- duckdb: the fastest query we found for DuckDB (2 threads, as the machine has 2 cores):
  Parquet in, one GROUP BY per (segment, hour, next), one GROUP BY per (segment, hour)
  joined back, lists per segment; materialized as a table (``DUCKDB_QUERY``);
- polars: the same plan with Polars' lazy API (group_by, join, group_by into lists;
  ``polars_query``), Parquet in, a collected DataFrame out;
- export (``--export``): the built tile-week's speed files (``export.speed_objects`` of
  every tile, the gzipped bodies not stored) with the shipped C writer and zlib's level 6,
  the C writer and ISA-L's level 1 (faster, larger files; not shipped), and the Python twin
  and zlib's level 6 (the writer before wave 9); client CPU, sizes and one SHA-256 of the
  decompressed bodies, which must be equal on every line;
- python (``--python``): the plain-Python twin
  (:func:`renderer.traffic.speedtile.speeds_from_histograms`), fetch + loop + COPY back: a
  correctness twin, not the bar.

Every output is compared with the C engine's rows (mean speed and speed variance may differ
by one: float sums in another order). Times are wall seconds; ours also in CPU seconds (this
process plus the database cluster's, server and client apart). The last line is
``ratio_vs_duckdb=R``: DuckDB's time over ours (the goal: >= 1.0).

    .venv/bin/python benchmarks/traffic_speedtile.py [--segments 50000 --observations 5000000]
    .venv/bin/python benchmarks/traffic_speedtile.py --segments 2000 --observations 200000

Uses the configured database server (RENDERER_DATABASE_URL or the embedded cluster) with a
scratch database ``renderer_bench_speedtile`` that it drops afterwards. Needs the ``bench``
extra (numpy, pyarrow, duckdb, polars).
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import hashlib
import os
import tempfile
import time
from typing import Any

import duckdb
import numpy as np
import polars as pl
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
from isal import igzip
from psycopg.rows import dict_row
from scratch import cluster_seconds, drop_database, postmaster_of, scratch_database
from traffic_speedtile_one import DUCKDB_QUERY

from renderer import config, tiles
from renderer.db import resolve_url
from renderer.formats.speedtiles import gzip_compress
from renderer.tiles import Tile
from renderer.traffic import export, speedtile, weeks
from renderer.traffic.speedtile_pack import pack_week, unpack_row

BENCH_DB = "renderer_bench_speedtile"
TILE = Tile(0, 3105)  # around Shanghai, as the sample's first city
WEEK = "2016-W44"
COLUMNS = ("mode", "first_hour", "segment_id", "length", "hours", "observations", "speeds",
           "hour_values", "nexts", "total_observations")
"""traffic_speeds' columns as written (the packed ones unpacked to compare: speedtile_pack)."""


def duration_codes(seconds: np.ndarray) -> np.ndarray:
    """renderer.binning.duration_code, vectorized."""
    d = np.minimum(np.floor(seconds), 1142).astype(np.int64)
    offsets = np.array([0, 64, 192, 512])
    steps = np.array([1, 2, 5, 10])
    klass = (d >= 64).astype(np.int64) + (d >= 192) + (d >= 512)
    return klass << 6 | (d - offsets[klass]) // steps[klass]


def generate(segments: int, observations: int, seed: int) -> tuple[np.ndarray, dict[int, int]]:
    """Histogram bins ``(segment, next or -1, hour, duration code, queue code, count)`` of
    one tile-week, and the segments' lengths."""
    rng = np.random.default_rng(seed)
    first_hour, _ = weeks.hour_range_of_week(WEEK)
    family = speedtile.family(TILE, 1)
    # 40 % of the segments in the level-0 tile, the rest spread over its children
    owners = np.where(rng.random(segments) < 0.4, 0, rng.integers(1, len(family), segments))
    index = np.zeros(segments, dtype=np.int64)
    for k in range(len(family)):
        mine = np.flatnonzero(owners == k)
        index[mine] = np.sort(rng.choice(60_000, size=len(mine), replace=False))
    tile_ids = np.array([tiles.tile_id(t) for t in family], dtype=np.int64)
    ids = index << 25 | tile_ids[owners]
    lengths = np.exp(rng.uniform(np.log(40), np.log(1500), segments)).round().astype(np.int64)
    free = rng.uniform(30, 110, segments) / 3.6
    nexts = [rng.choice(ids, size=rng.integers(1, 5), replace=False) for _ in range(segments)]
    # volume: heavy-tailed per segment, a daily wave over the 168 hours
    volume = rng.lognormal(0, 1.2, segments)
    how = np.arange(168)
    local = (how + 8) % 24  # UTC+8
    wave = 0.15 + np.exp(-((local - 8.5) ** 2) / 3) + np.exp(-((local - 18) ** 2) / 4) \
        + 0.5 * ((local > 9) & (local < 17))
    wave[120:] *= 0.6  # the weekend
    weights = np.outer(volume, wave)
    counts = rng.poisson(weights / weights.sum() * observations)
    seg, hour = np.nonzero(counts)
    n = counts[seg, hour]
    obs_seg = np.repeat(seg, n)
    obs_hour = np.repeat(hour, n)
    rush = np.exp(-((local[obs_hour] - 8.5) ** 2) / 3) + np.exp(-((local[obs_hour] - 18) ** 2) / 4)
    speed = free[obs_seg] * (1 - 0.6 * rush) * rng.uniform(0.75, 1.25, len(obs_seg))
    nk = np.array([len(x) for x in nexts])
    pick = (rng.random(len(obs_seg)) * nk[obs_seg]).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(nk)[:-1]])
    flat = np.concatenate(nexts)
    nxt = flat[offsets[obs_seg] + pick]
    nxt[rng.random(len(obs_seg)) < 0.05] = -1  # trips that end on the segment
    delay = np.array([0, 2, 5, 12])[pick % 4]
    dcode = duration_codes(lengths[obs_seg] / speed + delay)
    queue = np.where(rng.random(len(obs_seg)) < 0.1 * rush,
                     rng.integers(1, 120, len(obs_seg)), 0)
    keys = np.stack([ids[obs_seg], nxt, first_hour + obs_hour, dcode, queue], axis=1)
    bins, count = np.unique(keys, axis=0, return_counts=True)
    return np.column_stack([bins, count]), dict(zip(ids.tolist(), lengths.tolist(), strict=True))


def load(url: str, bins: np.ndarray, lengths: dict[int, int]) -> None:
    first_hour, _ = weeks.hour_range_of_week(WEEK)
    with psycopg.connect(url) as conn:
        conn.execute("SELECT renderer.traffic_histogram_partition(%s)", [first_hour])
        with conn.cursor() as cur:
            with cur.copy("COPY traffic_histograms (mode, segment_id, next_segment_id, hour,"
                          " duration_code, queue_code, count) FROM STDIN") as copy:
                for s, nx, h, d, q, c in bins.tolist():
                    copy.write_row(("AUTO", s, None if nx < 0 else nx, h, d, q, c))
            with cur.copy("COPY traffic_segment_lengths FROM STDIN") as copy:
                for s, length in lengths.items():
                    copy.write_row((s, length, 10))
        conn.commit()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE traffic_histograms")
        conn.execute("VACUUM ANALYZE traffic_segment_length_reports")


class Clock:
    """Wall time, and CPU seconds of this process (its threads included) plus the database
    cluster's (every backend, those of a split build's parts too; None when the server's
    /proc is not readable, e.g. a remote server)."""

    def __init__(self, url: str) -> None:
        try:
            self.postmaster: int | None = postmaster_of(url)
        except OSError:
            self.postmaster = None
        self.server = self._server()
        self.wall = time.perf_counter()
        self.client = time.process_time()

    def _server(self) -> float | None:
        """The cluster's CPU seconds once backends that just closed are reaped (one caught
        exiting between reading the postmaster and reading it would be missed): two reads
        0.2 s apart that agree."""
        if self.postmaster is None:
            return None
        last = cluster_seconds(self.postmaster)
        for _ in range(25):
            time.sleep(0.2)
            now = cluster_seconds(self.postmaster)
            if abs(now - last) < 0.02:
                break
            last = now
        return now

    def stop(self) -> tuple[float, float | None, float]:
        """(wall s, server CPU s or None, client CPU s) since the start."""
        wall, client = time.perf_counter() - self.wall, time.process_time() - self.client
        server = self._server()
        return (wall, None if server is None or self.server is None else server - self.server,
                client)


def run_ours(url: str, engine: str, parts: int = 1, sort: str = "server", work_mem: str = ""
             ) -> tuple[tuple[float, float | None], speedtile.WeekBuild,
                        dict[int, dict[str, Any]], str]:
    """One build with the given engine, committed; its time (wall, CPU), result, rows, and
    its CPU split as text (server, client)."""
    with psycopg.connect(url, row_factory=dict_row) as conn:
        conn.execute("SET max_parallel_workers_per_gather = 0")  # one backend per part
        conn.commit()
        clock = Clock(url)
        result = speedtile.build(conn, speedtile.TileWeek("AUTO", TILE, WEEK), engine=engine,
                                 parts=parts, sort=sort, work_mem=work_mem)
        conn.commit()
        wall, server, client = clock.stop()
        rows = {r["segment_id"]: unpack_row(r)
                for r in conn.execute("SELECT * FROM traffic_speeds")}
        split = (f"server {server:.2f} + client {client:.2f} CPU s" if server is not None
                 else f"client {client:.2f} CPU s")
        return (wall, None if server is None else server + client), result, rows, split


def run_python(url: str) -> tuple[float, float | None]:
    """The straightforward loop: rows out, arithmetic in Python, rows back in."""
    first_hour, _ = weeks.hour_range_of_week(WEEK)
    tile_ids = [tiles.tile_id(t) for t in speedtile.family(TILE, 1)]
    with psycopg.connect(url) as conn:
        clock = Clock(conn)
        rows = conn.execute(
            "SELECT segment_id, next_segment_id, hour, duration_code, queue_code, count"
            " FROM traffic_histograms WHERE mode = 'AUTO' AND hour >= %s AND hour < %s + 168"
            " AND (segment_id & 33554431)::integer = ANY(%s)",
            [first_hour, first_hour, tile_ids]).fetchall()
        lengths = {}
        for segment_id, length, observations in conn.execute(
                "SELECT segment_id, length, observations FROM traffic_segment_lengths"
                " WHERE (segment_id & 33554431)::integer = ANY(%s)", [tile_ids]):
            best = lengths.get(segment_id)
            if best is None or (observations, -length) > (best[1], -best[0]):
                lengths[segment_id] = (length, observations)
        result = speedtile.speeds_from_histograms(
            rows, {s: v[0] for s, v in lengths.items()}, first_hour)
        conn.execute("DELETE FROM bench_python")
        with conn.cursor() as cur, cur.copy(
                f"COPY bench_python ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for segment_id, week in result.items():
                copy.write_row(("AUTO", first_hour, segment_id, week.length, week.hours,
                                week.observations, week.speeds,
                                *pack_week(dataclasses.asdict(week)), sum(week.observations)))
        conn.commit()
        return clock.stop()


# --- DuckDB and Polars on the same rows as Parquet ------------------------------------------

PER_HOUR = ("hours", "observations", "speeds", "mean_speeds", "speed_variances", "prevalences")
PER_NEXT = ("next_hours", "next_ids", "next_counts", "delays", "delay_variances",
            "queue_lengths", "queue_length_variances")


def write_parquet(folder: str, bins: np.ndarray, lengths: dict[int, int]) -> tuple[str, str]:
    nxt = bins[:, 1]
    table = pa.table({
        "segment_id": pa.array(bins[:, 0]),
        "next_segment_id": pa.array(nxt, mask=nxt < 0),
        "hour": pa.array(bins[:, 2].astype(np.int32)),
        "duration_code": pa.array(bins[:, 3].astype(np.int16)),
        "queue_code": pa.array(bins[:, 4].astype(np.int16)),
        "count": pa.array(bins[:, 5]),
    })
    hist = os.path.join(folder, "histograms.parquet")
    pq.write_table(table, hist)
    lens = os.path.join(folder, "lengths.parquet")
    pq.write_table(pa.table({"segment_id": pa.array(list(lengths), pa.int64()),
                             "length": pa.array(list(lengths.values()), pa.int64())}), lens)
    return hist, lens


def run_duckdb(hist: str, lens: str, first_hour: int, min_count: int = 1
               ) -> tuple[tuple[float, float], dict[int, dict[str, Any]]]:
    """(wall s, CPU s of this process, all threads), the rows."""
    con = duckdb.connect()
    con.execute("SET threads = 2")
    started, cpu = time.perf_counter(), time.process_time()
    con.execute(DUCKDB_QUERY, {"hist": hist, "lens": lens, "first": first_hour,
                               "min_count": min_count, "max_speed": speedtile.MAX_SPEED})
    seconds = (time.perf_counter() - started, time.process_time() - cpu)
    names = [d[0] for d in con.execute("SELECT * FROM speeds LIMIT 0").description]
    rows = {r[0]: dict(zip(names, r, strict=True))
            for r in con.execute("SELECT * FROM speeds").fetchall()}
    return seconds, rows


def polars_query(hist: str, lens: str, first_hour: int, min_count: int) -> pl.LazyFrame:
    """The DuckDB plan in Polars' lazy API."""
    code = pl.col("duration_code").cast(pl.Int64)
    d = (pl.when(code < 64).then(code)
         .when(code < 128).then(64 + (code - 64) * 2)
         .when(code < 192).then(192 + (code - 128) * 5)
         .otherwise(512 + (code - 192) * 10)).cast(pl.Float64)
    c = pl.col("count").cast(pl.Float64)
    q = pl.col("queue_code").cast(pl.Float64)
    bins = (pl.scan_parquet(hist)
            .with_columns(d=d, c=c, q=q)
            .group_by("segment_id", "hour", "next_segment_id")
            .agg(n=pl.col("c").sum(), sd=(pl.col("c") * pl.col("d")).sum(),
                 sdd=(pl.col("c") * pl.col("d") * pl.col("d")).sum(),
                 sq=(pl.col("c") * pl.col("q")).sum(),
                 sqq=(pl.col("c") * pl.col("q") * pl.col("q")).sum()))
    timed = pl.col("sd") > 0
    n, sd = pl.col("n"), pl.col("sd")
    hours = (bins.group_by("segment_id", "hour")
             .agg(min_d=(sd / n).min(), total=n.sum(),
                  n_pos=n.filter(timed).sum(), inv=(n * n / sd).filter(timed).sum(),
                  nv=timed.sum().cast(pl.Float64), sv=(n / sd).filter(timed).sum(),
                  svv=(n * n / sd / sd).filter(timed).sum())
             .join(pl.scan_parquet(lens), on="segment_id", how="left")
             .with_columns(length=pl.col("length").cast(pl.Float64),
                           how=(pl.col("hour") - first_hour).cast(pl.Int16),
                           published=pl.col("total") >= min_count))
    length, total = pl.col("length"), pl.col("total")
    top = speedtile.MAX_SPEED

    def capped(x: pl.Expr, when: pl.Expr) -> pl.Expr:
        r = x.round(0, mode="half_away_from_zero")
        return pl.when(when & length.is_not_null() & (r <= top)).then(r).otherwise(0)

    h1 = ((pl.col("segment_id") % 2147483647) * 48271 + pl.col("how").cast(pl.Int64)) \
        % 2147483647
    r = ((h1 * 48271 + first_hour) % 2147483647) * 48271 % 2147483647 % 100
    base = sum(((total > b).cast(pl.Int64) for b in speedtile.PREVALENCE_BOUNDS[:-1]),
               pl.lit(1, pl.Int64))
    jit = pl.when(r < 15).then(-1).when(r >= 85).then(1).otherwise(0)
    hv = hours.with_columns(
        speed=capped(length / pl.col("min_d") * 3.6,
                     pl.col("published") & (pl.col("min_d") > 0)))
    per_hour = (hv.with_columns(
        mean_speed=capped(3.6 * length * pl.col("inv") / pl.col("n_pos"),
                          pl.col("published") & (pl.col("n_pos") > 0)).cast(pl.Int16),
        variance=pl.when(pl.col("speed") > 0).then(
            ((3.6 * length) * (3.6 * length)
             * pl.max_horizontal(pl.col("svv") / pl.col("nv")
                                 - (pl.col("sv") / pl.col("nv")) ** 2, 0))
            .round(0, mode="half_away_from_zero")).otherwise(0).cast(pl.Int32),
        prevalence=pl.when(~pl.col("published") | (total <= 0)).then(0)
        .when(total > 90).then(10)
        .otherwise(pl.max_horizontal(1, base + jit)).cast(pl.Int16))
        .sort("segment_id", "how")
        .group_by("segment_id", maintain_order=True)
        .agg(length=length.first().cast(pl.Int32), hours=pl.col("how"),
             observations=total.cast(pl.Int64), speeds=pl.col("speed").cast(pl.Int16),
             mean_speeds=pl.col("mean_speed"), speed_variances=pl.col("variance"),
             prevalences=pl.col("prevalence")))
    mean_d = sd / n
    mq = pl.col("sq") / n
    per_next = (bins.join(hv.filter(pl.col("published"))
                          .select("segment_id", "hour", "how", "min_d", "length"),
                          on=["segment_id", "hour"])
                .sort("segment_id", "hour", "next_segment_id", nulls_last=True)
                .group_by("segment_id", maintain_order=True)
                .agg(next_hours=pl.col("how"), next_ids=pl.col("next_segment_id"),
                     next_counts=n.cast(pl.Int64),
                     delays=(mean_d - pl.col("min_d")).round(0, mode="half_away_from_zero")
                     .cast(pl.Int32),
                     delay_variances=pl.max_horizontal(pl.col("sdd") / n - mean_d * mean_d, 0)
                     .round(0, mode="half_away_from_zero").cast(pl.Int64),
                     queue_lengths=(mq * length / 255).round(0, mode="half_away_from_zero")
                     .fill_null(0).cast(pl.Int32),
                     queue_length_variances=(
                         pl.max_horizontal(pl.col("sqq") / n - mq * mq, 0)
                         * (length / 255) * (length / 255))
                     .round(0, mode="half_away_from_zero").fill_null(0).cast(pl.Int64)))
    return per_hour.join(per_next, on="segment_id", how="left")


def run_polars(hist: str, lens: str, first_hour: int, min_count: int = 1
               ) -> tuple[tuple[float, float], dict[int, dict[str, Any]]]:
    """(wall s, CPU s of this process, all threads), the rows."""
    started, cpu = time.perf_counter(), time.process_time()
    frame = polars_query(hist, lens, first_hour, min_count).collect()
    seconds = (time.perf_counter() - started, time.process_time() - cpu)
    return seconds, {r["segment_id"]: r for r in frame.iter_rows(named=True)}


def compare(ours: dict[int, dict[str, Any]], theirs: dict[int, dict[str, Any]]) -> int:
    """Segments whose rows differ (mean speed and speed variance within one)."""
    differ = len(set(ours) ^ set(theirs))
    for segment_id, row in theirs.items():
        mine = ours.get(segment_id)
        if mine is None:
            continue
        for column in ("length", *PER_HOUR, *PER_NEXT):
            a, b = mine[column], row[column]
            if b is None and column in PER_NEXT:
                b = []
            if column in ("mean_speeds", "speed_variances"):
                ok = len(a) == len(b) and all(abs(x - y) <= 1 for x, y in zip(a, b, strict=True))
            else:
                ok = list(a) == list(b) if isinstance(a, list) else a == b
            if not ok:
                differ += 1
                break
    return differ


def same(url: str) -> tuple[int, int]:
    """Segments compared, and segments whose rows differ (mean speed and speed variance
    may differ by one: float sums in another order)."""
    with psycopg.connect(url, row_factory=dict_row) as conn:
        ours = {r["segment_id"]: unpack_row(r)
                for r in conn.execute("SELECT * FROM traffic_speeds")}
        loop = {r["segment_id"]: unpack_row(r) for r in conn.execute("SELECT * FROM bench_python")}
    differ = 0
    for segment_id, row in loop.items():
        mine: dict[str, Any] | None = ours.get(segment_id)
        if mine is None:
            differ += 1
            continue
        for column in ("length", "total_observations", *PER_HOUR, *PER_NEXT):
            a, b = mine[column], row[column]
            if column in ("mean_speeds", "speed_variances"):
                ok = len(a) == len(b) and all(abs(x - y) <= 1 for x, y in zip(a, b, strict=True))
            else:
                ok = a == b
            if not ok:
                differ += 1
                break
    return len(loop), differ + len(set(ours) - set(loop))


def _isal1(data: bytes) -> bytes:
    """ISA-L's level 1: the fastest deflate measured, not shipped (larger files, bytes that
    may differ between CPUs; renderer/traffic/export.py SPEED_GZIP_LEVEL)."""
    return igzip.compress(data, compresslevel=1, mtime=0)


EXPORTS = {"c + zlib 6 (shipped)": (export.subtile, export._gzip),
           "c + isal 1": (export.subtile, _isal1),
           "python + zlib 6": (export.subtile_py, gzip_compress)}


def run_export(url: str) -> dict[str, tuple[float, float, int, str]]:
    """Each writer and deflate of :data:`EXPORTS` over every built tile of the week: client
    CPU s, wall s, gzipped bytes, SHA-256 of the decompressed bodies."""
    out = {}
    saved = export.subtile, export._gzip
    with psycopg.connect(url, row_factory=dict_row) as conn:
        built = conn.execute("SELECT level, tile_index, total_segments FROM traffic_speed_tiles"
                             " WHERE mode = 'AUTO' ORDER BY level, tile_index").fetchall()
        for name, (write, deflate) in EXPORTS.items():
            export.subtile = write
            export._gzip = deflate
            try:
                cpu, wall = time.process_time(), time.perf_counter()
                bodies = [body for t in built for _, *pair in export.speed_objects(
                    conn, "AUTO", WEEK, Tile(t["level"], t["tile_index"]), t["total_segments"])
                    for body in pair]
                cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            finally:
                export.subtile, export._gzip = saved
            digest = hashlib.sha256()
            for body in bodies:
                digest.update(gzip.decompress(body))
            out[name] = (cpu, wall, sum(map(len, bodies)), digest.hexdigest())
    return out


def _cpu(seconds: float | None) -> str:
    return "(CPU n/a)" if seconds is None else f"(CPU {seconds:6.2f} s)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--segments", type=int, default=50_000)
    parser.add_argument("--observations", type=int, default=5_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--python", action="store_true",
                        help="Also run the plain-Python twin (slow; a correctness twin).")
    parser.add_argument("--keep", action="store_true", help="Keep the scratch database.")
    parser.add_argument("--export", action="store_true",
                        help="Also time the export of the week's speed files (writers, gzip).")
    defaults = config.Settings()
    parser.add_argument("--parts", type=int, default=defaults.traffic_speedtile_parts,
                        help="The C engine's backends reading at once (the setting's default).")
    parser.add_argument("--sort", default=defaults.traffic_speedtile_sort,
                        choices=["c", "server"], help="Who sorts (the setting's default).")
    parser.add_argument("--work-mem", default=defaults.traffic_speedtile_work_mem,
                        help="Each part's sort memory (the setting's default).")
    args = parser.parse_args()

    server = resolve_url(config.load())
    url = scratch_database(server, BENCH_DB)
    first_hour, _ = weeks.hour_range_of_week(WEEK)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-speedtile-") as scratch:
            # kept with the database, for whole-process timings
            folder = tempfile.mkdtemp(prefix="bench-speedtile-kept-") if args.keep else scratch
            started = time.perf_counter()
            bins, lengths = generate(args.segments, args.observations, args.seed)
            load(url, bins, lengths)
            hist, lens = write_parquet(folder, bins, lengths)
            with psycopg.connect(url) as conn:
                conn.execute("CREATE TABLE bench_python (LIKE traffic_speeds INCLUDING GENERATED)")
            print(f"data: {len(lengths):,} segments, {int(bins[:, 5].sum()):,} observations in "
                  f"{len(bins):,} histogram rows, tile {TILE.level}/{TILE.index} + 16 children, "
                  f"{WEEK} (generated in {time.perf_counter() - started:.1f} s); "
                  f"load average {os.getloadavg()[0]:.1f}")
            (sql_s, sql_cpu), _, sql_rows, split = run_ours(url, "sql")
            print(f"sql:    {sql_s:7.2f} s  {_cpu(sql_cpu)}  PostgreSQL in and out, "
                  f"aggregates and windows ({split})")
            (one_s, one_cpu), _, one_rows, split = run_ours(url, "c")
            print(f"c, 1 part: {one_s:7.2f} s  {_cpu(one_cpu)}  one backend, sorted by the "
                  f"server (before this change; {split})")
            (c_s, c_cpu), result, c_rows, split = run_ours(url, "c", args.parts, args.sort,
                                                         args.work_mem)
            print(f"c:      {c_s:7.2f} s  {_cpu(c_cpu)}  PostgreSQL in and out, binary COPY + C"
                  f", {args.parts} parts, sorted by {args.sort}, work_mem "
                  f"{args.work_mem or 'default'} ({split})"
                  f"; {result.segments:,} segments, {result.observations:,} observations")
            print(f"        sql rows differ from c in {compare(c_rows, sql_rows)} segments, "
                  f"1 part in {compare(c_rows, one_rows)}")
            (duck_s, duck_cpu), duck_rows = run_duckdb(hist, lens, first_hour)
            print(f"duckdb: {duck_s:7.2f} s  {_cpu(duck_cpu)}  2 threads, Parquet in, table out; "
                  f"{compare(c_rows, duck_rows)} segments differ from c")
            (polars_s, polars_cpu), polars_rows = run_polars(hist, lens, first_hour)
            print(f"polars: {polars_s:7.2f} s  {_cpu(polars_cpu)}  Parquet in, DataFrame out; "
                  f"{compare(c_rows, polars_rows)} segments differ from c")
            if args.keep:
                print(f"kept: {url} and {folder}", flush=True)
            if args.export:
                exports = run_export(url)
                for name, (cpu, wall, size, digest) in exports.items():
                    print(f"export, {name}: {cpu:6.2f} client CPU s ({wall:.2f} s) "
                          f"{size:,} bytes gzipped; payload sha256 {digest[:16]}", flush=True)
                base = exports["python + zlib 6"][0]
                print("ratios (export client CPU): " + ", ".join(
                    f"{name} {base / cpu:.1f}x" for name, (cpu, *_) in exports.items()))
            if args.python:
                python_s, python_cpu = run_python(url)
                compared, differ = same(url)
                print(f"python: {python_s:7.2f} s  {_cpu(python_cpu)}  (fetch, loop, COPY back)"
                      f"; {compared:,} segments compared, {differ} differ")
        print(f"load average: {os.getloadavg()[0]:.1f}")
        print(f"ratios (wall): c vs sql {sql_s / c_s:.2f}x, c vs 1 part {one_s / c_s:.2f}x, "
              f"c vs polars {polars_s / c_s:.2f}x, c vs duckdb {duck_s / c_s:.2f}x, "
              f"c 1 part vs duckdb {duck_s / one_s:.2f}x")
        if c_cpu and sql_cpu:
            print(f"ratios (CPU s): c vs sql {sql_cpu / c_cpu:.2f}x, "
                  f"c vs duckdb {duck_cpu / c_cpu:.2f}x, c vs polars {polars_cpu / c_cpu:.2f}x"
                  + (f", c 1 part vs duckdb {duck_cpu / one_cpu:.2f}x" if one_cpu else ""))
        print(f"ratio_vs_duckdb={duck_s / c_s:.2f}")
    finally:
        if not args.keep:
            drop_database(server, BENCH_DB)


if __name__ == "__main__":
    main()
