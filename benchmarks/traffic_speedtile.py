"""Benchmark (a) of issue 5: the speed tiles of one level-0 tile-week, bulk SQL vs a loop.

Generates (not timed) the histograms of one level-0 tile and its 16 level-1 children for
one ISO week: 50,000 segments and 5,000,000 observations by default, with daily waves,
a heavy-tailed volume per segment, 1-4 next segments each, congestion at rush hours and a
few queues; binned as the histogram stage bins them. Then, in one run against the same
database and the same rows:

- sql: :func:`renderer.traffic.speedtile.build`, the speed-tile stage (delete, one bulk
  INSERT ... SELECT over the week's histograms, summarize), committed;
- python: a straightforward loop: fetch the same histogram rows and lengths, compute every
  segment-hour in Python (:func:`renderer.traffic.speedtile.speeds_from_histograms`, the
  tested twin of the SQL), write the rows back with COPY, committed.

Both must give the same speeds (checked); the last line is the ratio python / sql time
(goal >= 10). Each side is also timed in CPU seconds: this process's plus its database
backend's (``/proc/<pid>/stat``; parallel query off in both sessions, so the backend does all
of the server's work), which other load on the machine barely moves; the ratio of those is
printed too.

    .venv/bin/python benchmarks/traffic_speedtile.py [--segments 50000 --observations 5000000]

Uses the configured database server (RENDERER_DATABASE_URL or the embedded cluster) with a
scratch database ``renderer_bench_speedtile`` that it drops afterwards. Needs numpy (the
``bench`` extra) for the generator.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import numpy as np
import psycopg
from psycopg.rows import dict_row
from scratch import drop_database, scratch_database

from renderer import config, tiles
from renderer.db import resolve_url
from renderer.tiles import Tile
from renderer.traffic import speedtile, weeks

BENCH_DB = "renderer_bench_speedtile"
TILE = Tile(0, 3105)  # around Shanghai, as the sample's first city
WEEK = "2016-W44"
COLUMNS = ("mode", "first_hour", "segment_id", "length", "hours", "observations", "speeds",
           "mean_speeds", "speed_variances", "prevalences", "next_hours", "next_ids",
           "next_counts", "delays", "delay_variances", "queue_lengths", "queue_length_variances")


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
    """Wall time, and CPU seconds of this process plus one database backend (None when the
    server's /proc is not readable, e.g. a remote server)."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute("SET max_parallel_workers_per_gather = 0")  # all server work in one pid
        self.pid = conn.info.backend_pid
        self.wall = time.perf_counter()
        self.cpu = self._cpu()

    def _cpu(self) -> float | None:
        try:
            with open(f"/proc/{self.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK") + time.process_time()

    def stop(self) -> tuple[float, float | None]:
        """(wall s, CPU s) since the start."""
        cpu = self._cpu()
        return (time.perf_counter() - self.wall,
                None if cpu is None or self.cpu is None else cpu - self.cpu)


def run_sql(url: str) -> tuple[tuple[float, float | None], speedtile.WeekBuild]:
    with psycopg.connect(url, row_factory=dict_row) as conn:
        clock = Clock(conn)
        result = speedtile.build(conn, speedtile.TileWeek("AUTO", TILE, WEEK))
        conn.commit()
        return clock.stop(), result


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
                copy.write_row(("AUTO", first_hour, segment_id,
                                *(getattr(week, c) for c in COLUMNS[3:])))
        conn.commit()
        return clock.stop()


def same(url: str) -> tuple[int, int]:
    """Segments compared, and segments whose rows differ (mean speed and speed variance
    may differ by one: float sums in another order)."""
    with psycopg.connect(url, row_factory=dict_row) as conn:
        ours = {r["segment_id"]: r for r in conn.execute("SELECT * FROM traffic_speeds")}
        loop = {r["segment_id"]: r for r in conn.execute("SELECT * FROM bench_python")}
    differ = 0
    for segment_id, row in loop.items():
        mine: dict[str, Any] | None = ours.get(segment_id)
        if mine is None:
            differ += 1
            continue
        for column in COLUMNS[3:]:
            a, b = mine[column], row[column]
            if column in ("mean_speeds", "speed_variances"):
                ok = len(a) == len(b) and all(abs(x - y) <= 1 for x, y in zip(a, b, strict=True))
            else:
                ok = a == b
            if not ok:
                differ += 1
                break
    return len(loop), differ + len(set(ours) - set(loop))


def _cpu(seconds: float | None) -> str:
    return "(CPU n/a)" if seconds is None else f"(CPU {seconds:6.2f} s)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--segments", type=int, default=50_000)
    parser.add_argument("--observations", type=int, default=5_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="Keep the scratch database.")
    args = parser.parse_args()

    server = resolve_url(config.load())
    url = scratch_database(server, BENCH_DB)
    try:
        started = time.perf_counter()
        bins, lengths = generate(args.segments, args.observations, args.seed)
        load(url, bins, lengths)
        with psycopg.connect(url) as conn:
            conn.execute("CREATE TABLE bench_python (LIKE traffic_speeds INCLUDING GENERATED)")
        print(f"data: {len(lengths):,} segments, {int(bins[:, 5].sum()):,} observations in "
              f"{len(bins):,} histogram rows, tile {TILE.level}/{TILE.index} + 16 children, "
              f"{WEEK} (generated in {time.perf_counter() - started:.1f} s)")
        (sql_s, sql_cpu), result = run_sql(url)
        print(f"sql:    {sql_s:7.2f} s  {_cpu(sql_cpu)}  {result.segments:,} segments, "
              f"{result.observations:,} observations, {len(result.tiles)} tiles")
        python_s, python_cpu = run_python(url)
        print(f"python: {python_s:7.2f} s  {_cpu(python_cpu)}  (fetch, loop, COPY back)")
        compared, differ = same(url)
        print(f"check:  {compared:,} segments compared, {differ} differ")
        print(f"load average: {os.getloadavg()[0]:.1f}")
        if sql_cpu and python_cpu:
            print(f"ratio python/sql in CPU seconds: {python_cpu / sql_cpu:.1f}x")
        print(f"ratio python/sql: {python_s / sql_s:.1f}x (goal >= 10)")
    finally:
        if not args.keep:
            drop_database(server, BENCH_DB)


if __name__ == "__main__":
    main()
