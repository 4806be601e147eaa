"""A generator of realistic reporter files, for ``make run``, tests and benchmarks.

It writes the OpenTraffic reporter layout ``{start}_{end}/{level}/{tile_index}/{name}`` under a
folder: for each tile, hour and reporter one CSV file, some gzip-compressed, some without a
final newline. Segments have real ids in real tiles around cities (a level-0 tile and a
level-1 tile in it, city by city), lengths from tens of metres to kilometres, one to four next
segments each (some trips end: all three "no next" spellings appear), speeds that follow daily
congestion waves in local time (weekday rush hours, calmer weekends), queues when congested,
weights above 1 now and then, traversals that span two hours (written to both hours' files, as
reporters do), and a few malformed lines of each kind the histogram stage rejects.

The output depends only on the arguments: the same seed writes the same bytes.
"""

from __future__ import annotations

import gzip
import itertools
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from renderer import tiles as tilegrid
from renderer.tiles import Tile

__all__ = ["CITIES", "DEFAULT_START", "HEADER", "SampleStats", "generate", "sample_tiles"]

HEADER = (
    "segment_id,next_segment_id,duration,count,length,queue_length,"
    "minimum_timestamp,maximum_timestamp,source,vehicle_type"
)
DEFAULT_START = date(2016, 10, 31)  # a Monday: ISO week 2016-W44 starts here

# (name, lon, lat, UTC offset in hours): the congestion waves follow local time.
CITIES = (
    ("Paris", 2.35, 48.86, 1),
    ("Berlin", 13.40, 52.52, 1),
    ("New York", -73.99, 40.73, -5),
    ("Sao Paulo", -46.63, -23.55, -3),
    ("Tokyo", 139.69, 35.69, 9),
    ("Jakarta", 106.85, -6.20, 7),
)
NO_NEXT_SPELLINGS = ("", str((1 << 46) - 1), str((1 << 42) - 1))
MODES = ("AUTO", "AUTO", "AUTO", "AUTO", "AUTO", "AUTO", "AUTO", "AUTO", "BUS", "MOTORCYCLE")

# Per level: segments per tile, length range (m, log-uniform), free-flow speed range (km/h),
# traversals in the busiest hour.
_PROFILE = {
    0: (120, (150.0, 4000.0), (70.0, 120.0), 420),
    1: (300, (25.0, 900.0), (25.0, 60.0), 600),
}
_REPORTERS = 3  # files per (tile, hour): reporter 0 gzips, reporter 2 omits the final newline


@dataclass(frozen=True)
class SampleStats:
    """What :func:`generate` wrote."""

    root: Path
    tiles: list[Tile]
    first_hour: int
    end_hour: int
    """Epoch hours ``first_hour <= h < end_hour`` have files."""
    files: int
    gzip_files: int
    rows: int
    """Data lines written, malformed ones included."""
    bad_rows: int
    """Malformed lines, each rejected by the histogram stage with a reason."""
    observations: int
    """Sum of ``count`` over the good lines: what the histograms must add up to."""
    segments: int
    modes: list[str] = field(default_factory=list)


@dataclass
class _Segment:
    id: int
    length: float
    speed: float  # free-flow, m/s
    sensitivity: float  # how much rush hour slows it, 0..1
    nexts: list[tuple[int | None, float]]  # (next id or None, turn delay in s)


def sample_tiles(count: int) -> list[Tile]:
    """The tiles of a sample of ``count`` tiles: per city its level-0 tile, then the
    level-1 tile of its centre.

    Examples
    --------
    >>> sample_tiles(3)
    [Tile(level=0, index=3105), Tile(level=1, index=49862), Tile(level=0, index=3198)]
    """
    if not 1 <= count <= 2 * len(CITIES):
        raise ValueError(f"a sample has 1 to {2 * len(CITIES)} tiles, not {count}")
    found = []
    for _, lon, lat, _ in CITIES:
        found += [tilegrid.tile(lon, lat, 0), tilegrid.tile(lon, lat, 1)]
    return found[:count]


def _city_offset(t: Tile) -> int:
    for _, lon, lat, offset in CITIES:
        if tilegrid.tile(lon, lat, t.level) == t:
            return offset
    return 0


def _segments(rng: random.Random, t: Tile, neighbour: Tile) -> list[_Segment]:
    count, (lo, hi), (vlo, vhi), _ = _PROFILE[t.level]
    indices = sorted(rng.sample(range(1, 40_000), count))
    ids = [tilegrid.segment_id(t, i) for i in indices]
    outside = [tilegrid.segment_id(neighbour, i) for i in rng.sample(range(1, 40_000), 8)]
    found = []
    for k, sid in enumerate(ids):
        length = math.exp(rng.uniform(math.log(lo), math.log(hi)))
        nexts: list[tuple[int | None, float]] = []
        for _ in range(rng.choice((1, 2, 2, 3, 3, 4))):
            target = outside[k % len(outside)] if rng.random() < 0.05 else rng.choice(ids)
            nexts.append((target, rng.choice((0.0, 2.0, 5.0, 12.0, 25.0))))
        if rng.random() < 0.2:
            nexts.append((None, 0.0))  # trips end here now and then
        found.append(_Segment(sid, length, rng.uniform(vlo, vhi) / 3.6,
                              rng.uniform(0.2, 0.75), nexts))
    return found


def _wave(local_hour: float, weekend: bool) -> tuple[float, float]:
    """(traffic volume 0..1, congestion 0..1) at a local hour of the day."""
    def bump(centre: float, width: float) -> float:
        return math.exp(-(((local_hour - centre) / width) ** 2))

    if weekend:
        congestion = 0.35 * bump(13.0, 3.0)
        volume = 0.08 + 0.55 * bump(13.5, 4.0)
    else:
        congestion = max(bump(8.0, 1.2), 0.9 * bump(17.5, 1.6))
        volume = 0.06 + 0.5 * bump(12.5, 5.0) + 0.45 * congestion
    return min(volume, 1.0), congestion


_BAD_KINDS = ("columns", "number", "length", "order", "tile", "hour")


def _bad_line(kind: str, seg: _Segment, outside: int, start: int) -> str:
    if kind == "columns":
        return f"{seg.id},,30,1,{int(seg.length)},0,{start + 10},{start + 40},reporter"
    if kind == "number":
        return f"{seg.id},,thirty,1,{int(seg.length)},0,{start + 10},{start + 40},r,AUTO"
    if kind == "length":
        return f"{seg.id},,30,1,0,0,{start + 10},{start + 40},r,AUTO"
    if kind == "order":
        return f"{seg.id},,30,1,{int(seg.length)},0,{start + 40},{start + 10},r,AUTO"
    if kind == "tile":
        return f"{outside},,30,1,{int(seg.length)},0,{start + 10},{start + 40},r,AUTO"
    return f"{seg.id},,30,1,{int(seg.length)},0,{start - 7200},{start - 7000},r,AUTO"


class _Writer:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.files = self.gzip_files = 0

    def write(self, t: Tile, hour: int, reporter: int, lines: list[str]) -> None:
        start = hour * 3600
        folder = self.root / f"{start}_{start + 3599}" / str(t.level) / str(t.index)
        folder.mkdir(parents=True, exist_ok=True)
        text = "\n".join([HEADER, *lines])
        if reporter != 2:
            text += "\n"
        data = text.encode()
        name = f"reporter-{reporter}.csv"
        if reporter == 0:
            data = gzip.compress(data, compresslevel=1, mtime=0)
            name += ".gz"
            self.gzip_files += 1
        (folder / name).write_bytes(data)
        self.files += 1


class _TileStream:
    """The traversals of one tile, hour after hour; a traversal that ends in the next hour is
    carried over into that hour's files too."""

    def __init__(self, t: Tile, n: int, seed: int, scale: float, first: int, end: int) -> None:
        self.tile, self.n, self.seed, self.first, self.end = t, n, seed, first, end
        self.rng = random.Random(f"{seed}/{t.level}/{t.index}")
        self.neighbour = Tile(t.level, t.index + 1)
        self.segments = _segments(self.rng, t, self.neighbour)
        weights = [self.rng.paretovariate(1.5) for _ in self.segments]  # few busy, many quiet
        self.cum = list(itertools.accumulate(weights))
        self.peak = _PROFILE[t.level][3] * scale
        self.offset = _city_offset(t)
        self.spill: list[list[str]] = [[] for _ in range(_REPORTERS)]
        self.spill_obs = 0
        self.modes: set[str] = set()

    def hour(self, hour: int) -> tuple[list[list[str]], int, int]:
        """(lines per reporter, observations on good lines, bad lines) of one hour."""
        rng = self.rng
        local = (hour + self.offset) % 24
        weekday = (hour + self.offset - 96) // 24 % 7  # 0 = Monday
        volume, congestion = _wave(float(local), weekday >= 5)
        day_factor = 0.9 + 0.2 * random.Random(f"{self.seed}/{hour // 24}").random()
        traversals = max(1, int(self.peak * volume * day_factor * rng.uniform(0.9, 1.1)))
        hs = hour * 3600
        out, observations = self.spill, self.spill_obs
        self.spill, self.spill_obs = [[] for _ in range(_REPORTERS)], 0
        picks = rng.choices(self.segments, cum_weights=self.cum, k=traversals)
        for k, seg in enumerate(picks):
            reporter = k % _REPORTERS
            slow = 1.0 - seg.sensitivity * congestion
            speed = seg.speed * slow * rng.uniform(0.85, 1.15)
            nxt, delay = rng.choice(seg.nexts)
            duration = int(seg.length / speed + delay * (1.0 + 3.0 * congestion)) + 1
            count = 1 if rng.random() < 0.9 else rng.randint(2, 5)
            queue = int(seg.length * (0.4 - slow) * rng.random() * 2) if slow < 0.4 else 0
            length = int(seg.length) + (rng.choice((-1, 1)) if rng.random() < 0.05 else 0)
            t0 = hs + rng.randrange(3600)
            t1 = t0 + duration
            nxt_text = NO_NEXT_SPELLINGS[(k + hour) % 3] if nxt is None else str(nxt)
            mode = MODES[rng.randrange(len(MODES))]
            self.modes.add(mode)
            line = (f"{seg.id},{nxt_text},{duration},{count},{length},{queue},"
                    f"{t0},{t1},reporter-{reporter},{mode}")
            out[reporter].append(line)
            observations += count
            if t1 >= hs + 3600 and hour + 1 < self.end:
                self.spill[reporter].append(line)
                self.spill_obs += count
        bad = 0
        # a few bad lines: one of each kind in a tile's first hours, then now and then
        if hour - self.first < len(_BAD_KINDS) or rng.random() < 0.04:
            kind = _BAD_KINDS[(hour - self.first + self.n) % len(_BAD_KINDS)]
            seg = self.segments[hour % len(self.segments)]
            outside = tilegrid.segment_id(self.neighbour, 7)
            out[1].insert(len(out[1]) // 2, _bad_line(kind, seg, outside, hs))
            bad = 1
        return out, observations, bad


def generate(root: Path, *, tiles: int, days: int, seed: int,
             start: date | None = None, scale: float = 1.0,
             progress: Callable[[], None] | None = None) -> SampleStats:
    """Write ``days`` days of reporter files for ``tiles`` tiles under ``root``.

    Parameters
    ----------
    root
        Folder to write into (created if missing); existing files of the same names are
        overwritten.
    tiles, days
        How many tiles (see :func:`sample_tiles`) and whole UTC days, from ``start``
        (default 2016-10-31, a Monday).
    seed
        The same seed writes the same files.
    scale
        Multiplies the number of traversals (1.0: a few hundred per tile in a busy hour).
    progress
        Called after each tile hour written (``tiles * days * 24`` calls).

    Examples
    --------
    >>> import tempfile
    >>> stats = generate(Path(tempfile.mkdtemp()), tiles=1, days=1, seed=1)
    >>> stats.files, stats.first_hour
    (72, 410520)
    """
    if days < 1:
        raise ValueError(f"days must be at least 1, not {days}")
    if scale <= 0:
        raise ValueError(f"scale must be positive, not {scale}")
    chosen = sample_tiles(tiles)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    first_day = start or DEFAULT_START
    first = int(datetime(first_day.year, first_day.month, first_day.day,
                         tzinfo=UTC).timestamp()) // 3600
    end = first + 24 * days
    writer = _Writer(root)
    rows = bad = observations = segments = 0
    modes: set[str] = set()
    for n, t in enumerate(chosen):
        stream = _TileStream(t, n, seed, scale, first, end)
        segments += len(stream.segments)
        for hour in range(first, end):
            out, obs, bad_lines = stream.hour(hour)
            observations += obs
            bad += bad_lines
            for reporter, lines in enumerate(out):
                rows += len(lines)
                writer.write(t, hour, reporter, lines)
            if progress is not None:
                progress()
        modes |= stream.modes
    return SampleStats(root, chosen, first, end, writer.files, writer.gzip_files,
                       rows, bad, observations, segments, sorted(modes))
