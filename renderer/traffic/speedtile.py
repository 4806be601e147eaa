"""Stage 2 of the traffic pipeline: weekly speed tiles from the hourly histograms.

One ``speedtile`` item per (mode, tile, ISO week), key ``AUTO/0/2140/2016-W44`` (normally a
level-0 tile; ``renderer traffic schedule --level 1`` makes level-1 items), builds the tile
and its descendants down to ``traffic_max_level`` in bulk SQL
(``sql/traffic_speedtile.sql``: delete, build, summarize), exports them to the store as
OpenTraffic ``.spd``/``.nex`` files (:mod:`renderer.traffic.export`) and returns the
:class:`WeekBuild`, from which the profile asks for the tile's reference tile
(:func:`renderer.traffic.reftile.for_speed_week`). Everything it writes to the database
commits with the item's completion; the exported files are written before the commit and
are byte-identical when a retry writes them again.

The arithmetic is documented on :func:`speeds_from_histograms`, its plain-Python twin, which
tests hold equal to the SQL and the benchmark races against it.

Example
-------
>>> build(conn, TileWeek("AUTO", Tile(0, 2140), "2016-W44"))  # doctest: +SKIP
WeekBuild(spec=..., tiles=(BuiltTile(tile=Tile(level=0, index=2140), segments=812, ...), ...))
"""

from __future__ import annotations

import bisect
import logging
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from renderer import tiles
from renderer.binning import duration_seconds
from renderer.db import Connection, query, scalar
from renderer.errors import ConfigError, InputError
from renderer.profile import Next
from renderer.queue import Job
from renderer.tiles import Tile
from renderer.traffic import export, speedtile_c, speedtile_pack, weeks
from renderer.traffic.histogram import ConsumeResult
from renderer.traffic.layout import Prefix

__all__ = ["KIND", "MAX_SPEED", "BuiltTile", "SegmentWeek", "TileWeek", "WeekBuild", "build",
           "family", "for_histogram", "handle", "jitter", "prevalence", "round_half_away",
           "speeds_from_histograms", "tile_sums"]

log = logging.getLogger(__name__)

KIND = "speedtile"
MAX_SPEED = 160
"""Speeds above this (km/h) are published as 0 = no data, as OpenTraffic did."""


@dataclass(frozen=True)
class TileWeek:
    """What one ``speedtile`` item builds: a mode, a tile (and its descendants), a week."""

    mode: str
    tile: Tile
    week: str

    @property
    def key(self) -> str:
        """The queue key, ``AUTO/0/2140/2016-W44``."""
        return f"{self.mode}/{self.tile.level}/{self.tile.index}/{self.week}"

    @property
    def group(self) -> str:
        """The queue group of scheduled items, ``AUTO/0/2140``: every week of one tile."""
        return f"{self.mode}/{self.tile.level}/{self.tile.index}"

    @classmethod
    def parse(cls, key: str) -> TileWeek:
        """The spec of a key like ``AUTO/0/2140/2016-W44``; InputError if malformed."""
        parts = key.split("/")
        try:
            mode, level, index, week = parts
            tile = tiles.parse_tile(f"{level}/{index}")
            weeks.parse_week(week)
        except ValueError as exc:
            raise InputError(f"bad speed tile key {key!r}: {exc}",
                             "write MODE/LEVEL/INDEX/YYYY-Www, e.g. AUTO/0/2140/2016-W44") from exc
        if not mode:
            raise InputError(f"bad speed tile key {key!r}: no mode", "e.g. AUTO/0/2140/2016-W44")
        return cls(mode, tile, week)


def family(tile: Tile, max_level: int) -> list[Tile]:
    """A tile and its descendants down to ``max_level``, coarsest first.

    Examples
    --------
    >>> len(family(Tile(0, 2140), 1)), len(family(Tile(0, 2140), 2))
    (17, 273)
    """
    found = [tile]
    layer = [tile]
    for _ in range(tile.level, max(tile.level, min(max_level, 2))):
        layer = [child for t in layer for child in tiles.children(t)]
        found.extend(layer)
    return found


@dataclass(frozen=True)
class BuiltTile:
    """One tile of a build; ``segments == 0`` means it has no speeds (any more)."""

    tile: Tile
    total_segments: int
    old_total_segments: int
    segments: int
    observations: int


@dataclass(frozen=True)
class WeekBuild:
    """The outcome of building one :class:`TileWeek`."""

    spec: TileWeek
    first_hour: int
    min_count: int
    tiles: tuple[BuiltTile, ...]

    @property
    def segments(self) -> int:
        return sum(t.segments for t in self.tiles)

    @property
    def observations(self) -> int:
        return sum(t.observations for t in self.tiles)


def build(conn: Connection, spec: TileWeek, *, min_count: int = 1,
          max_level: int = 1, engine: str = "c", parts: int = 1,
          sort: str = "server", work_mem: str = "") -> WeekBuild:
    """Build the speeds of a tile-week and its descendants, inside the caller's transaction.

    Replaces the week's rows of those tiles, so a rebuild (late data, another
    ``min_count``) leaves no trace of the previous one. ``engine`` (the setting
    ``traffic_speedtile_engine``): ``c`` computes in ext/speedtile.c over binary COPY
    (:mod:`renderer.traffic.speedtile_c`), ``sql`` in the bulk statement build_speeds; the
    rows are the same. ``parts``, ``sort`` and ``work_mem`` (``traffic_speedtile_parts``,
    ``_sort``, ``_work_mem``): the C engine's read split across that many backends at once
    (one part when this transaction has written already: the parts read in transactions of
    their own, which cannot see its writes), its rows sorted by ``c`` (ext/speedtile_sort.c) or
    by the ``server``, each part's sort in ``work_mem`` ('' the server's).
    """
    if min_count < 1:
        raise InputError(f"min count must be at least 1, not {min_count}", "use --min-count 1")
    first_hour, _ = weeks.hour_range_of_week(spec.week)
    members = family(spec.tile, max_level)
    root = tiles.ancestor(spec.tile)
    params = {"mode": spec.mode, "first_hour": first_hour, "week": spec.week,
              "tile_ids": [tiles.tile_id(t) for t in members], "min_count": min_count,
              "max_speed": MAX_SPEED, "root": root.index}
    if engine == "c" and parts > 1 and not scalar(conn, "traffic_speedtile.nothing_written"):
        parts = 1
    conn.execute(query("traffic_speedtile.lock_week"), params)
    built: list[TileSum] | None = None  # the SQL engine's are read back from traffic_speeds
    if engine == "c":
        if sort not in ("c", "server"):
            raise ConfigError(f"unknown speed-tile sort {sort!r}",
                              "set traffic speedtile_sort to c or server")
        # the delete runs while the parts read (they read histograms and lengths only)
        built = speedtile_c.build_speeds_c(
            conn, params, parts=parts, sort_in_c=sort == "c", work_mem=work_mem,
            before_write=lambda: conn.execute(query("traffic_speedtile.delete_speeds"), params))
    elif engine == "sql":
        conn.execute(query("traffic_speedtile.delete_speeds"), params)
        conn.execute(query("traffic_speedtile.streaming_plan"))  # transaction-local settings
        conn.execute(query("traffic_speedtile.build_speeds"), params)
        conn.execute(query("traffic_speedtile.default_plan"))
    else:
        raise ConfigError(f"unknown speed-tile engine {engine!r}",
                          "set traffic speedtile_engine to c or sql")
    rows = conn.execute(query("traffic_speedtile.summarize_tiles"),
                        {**params, **_built_params(built)}).fetchall()
    result = tuple(
        BuiltTile(Tile(r["level"], r["tile_index"]), r["total_segments"],
                  r["old_total_segments"], r["segments"], r["observations"])
        for r in rows
    )
    return WeekBuild(spec, first_hour, min_count, result)


def _built_params(built: list[TileSum] | None) -> dict[str, list[int] | None]:
    """summarize_tiles' ``built_*`` parameters: the C engine's sums per tile, or None (read
    them back from traffic_speeds)."""
    names = ("built_tile_ids", "built_segments", "built_observations", "built_max_index")
    if built is None:
        return dict.fromkeys(names)
    return {name: [t[k] for t in built] for k, name in enumerate(names)}


def handle(job: Job) -> WeekBuild:
    """Build and export one tile-week (see the module docstring); ``min_count`` comes from
    the item's payload (a run's option), else the setting."""
    spec = TileWeek.parse(job.item.key)
    settings = job.settings
    min_count = int(job.item.payload.get("min_count") or settings.traffic_min_count)
    result = build(job.conn, spec, min_count=min_count, max_level=settings.traffic_max_level,
                   engine=settings.traffic_speedtile_engine,
                   parts=settings.traffic_speedtile_parts,
                   sort=settings.traffic_speedtile_sort,
                   work_mem=settings.traffic_speedtile_work_mem)
    written = export.export_speed_week(job.conn, job.store, result)
    log.info("speed tile %s: %d segments, %d observations, %d files", spec.key,
             result.segments, result.observations, written.files)
    return result


def for_histogram(job: Job, result: ConsumeResult) -> list[Next]:
    """The speed tiles a binned (tile, hour) fans into: one per mode, of its level-0 tile
    and week (a group rule: built once every hour of the group is done). A run's
    ``min_count`` rides along in the payload."""
    prefix = Prefix.parse(job.item.key)
    extra = {k: job.item.payload[k] for k in ("min_count",) if k in job.item.payload}
    return [Next(TileWeek(mode, tiles.Tile(0, prefix.level0), prefix.week).key,
                 {"mode": mode, "tile": prefix.level0, "week": prefix.week, **extra})
            for mode in result.modes]


# --- the plain-Python twin of sql/traffic_speedtile.sql ----------------------------------

def round_half_away(x: float) -> int:
    """``x`` rounded to the nearest integer, halves away from zero: Python 2's ``round()``,
    which OpenTraffic's speed and reference tile builders used (Python 3's rounds halves to
    even, as PostgreSQL's ``round(float8)`` does).

    Decided on the float's exact value, as Python 2 did: ``floor(x + 0.5)`` would round
    0.49999999999999994 up, because the sum itself rounds to 1.0. The SQL, whose values are
    never negative, writes ``floor(x + 0.49999999999999994)`` (the double just below 0.5):
    one evaluation of ``x``, and equal to this for every non-negative double (tests hold
    the two equal, halves and their neighbours included).

    Examples
    --------
    >>> round_half_away(22.5), round_half_away(23.5), round_half_away(-2.5)
    (23, 24, -3)
    >>> round_half_away(0.49999999999999994), round_half_away(2.4999999999999996)
    (0, 2)
    """
    a = abs(x)
    whole = math.floor(a)
    rounded = whole + 1 if a - whole >= 0.5 else whole  # a - whole is exact in binary
    return rounded if x >= 0 else -rounded


PREVALENCE_BOUNDS = (2, 6, 12, 20, 30, 42, 56, 72, 90)
"""Upper bounds of prevalence bins 1..9; a count above 90 is bin 10, none is bin 0."""

_P = 2_147_483_647  # 2^31 - 1, the MINSTD modulus
_A = 48_271


def jitter(segment_id: int, hour_of_week: int, first_hour: int) -> int:
    """The deterministic -1/0/+1 move of a prevalence bin, with probability 15/70/15 %.

    A Lehmer (MINSTD) hash of segment, hour of week and week; the SQL function
    ``renderer.traffic_prevalence`` computes the same.

    Examples
    --------
    >>> jitter(100680416, 5, 410520)
    1
    """
    h = ((segment_id % _P) * _A + hour_of_week) % _P
    h = ((h * _A + first_hour) % _P) * _A % _P
    r = h % 100
    return -1 if r < 15 else 1 if r >= 85 else 0


def prevalence(total: int, segment_id: int, hour_of_week: int, first_hour: int) -> int:
    """OpenTraffic's prevalence (0..10) of an hour with ``total`` observations.

    Examples
    --------
    >>> prevalence(0, 1, 0, 0), prevalence(91, 1, 0, 0)
    (0, 10)
    >>> prevalence(5, 100680416, 5, 410520)  # bin 2, moved up by the jitter
    3
    """
    if total <= 0:
        return 0
    if total > PREVALENCE_BOUNDS[-1]:
        return 10
    base = bisect.bisect_left(PREVALENCE_BOUNDS, total) + 1
    return max(1, base + jitter(segment_id, hour_of_week, first_hour))


@dataclass
class SegmentWeek:
    """One segment's week: per-hour lists parallel to ``hours``, per-(hour, next segment)
    lists parallel to ``next_hours``. A ``traffic_speeds`` row keeps ``hours``,
    ``observations`` and ``speeds`` as arrays and the rest packed
    (:mod:`renderer.traffic.speedtile_pack`; :meth:`from_row` unpacks)."""

    length: int | None
    hours: list[int] = field(default_factory=list)
    observations: list[int] = field(default_factory=list)
    speeds: list[int] = field(default_factory=list)
    mean_speeds: list[int] = field(default_factory=list)
    speed_variances: list[int] = field(default_factory=list)
    prevalences: list[int] = field(default_factory=list)
    next_hours: list[int] = field(default_factory=list)
    next_ids: list[int | None] = field(default_factory=list)
    next_counts: list[int] = field(default_factory=list)
    delays: list[int] = field(default_factory=list)
    delay_variances: list[int] = field(default_factory=list)
    queue_lengths: list[int] = field(default_factory=list)
    queue_length_variances: list[int] = field(default_factory=list)

    @classmethod
    def from_row(cls, row: Mapping[str, object]) -> SegmentWeek:
        """From a ``traffic_speeds`` row (a dict; its packed columns unpacked)."""
        unpacked = speedtile_pack.unpack_row(row) if "nexts" in row else row
        names = cls.__dataclass_fields__
        return cls(**{name: unpacked[name] for name in names})  # type: ignore[arg-type]


# sums per (segment, hour, next): n, sd, sdd, sq, sqq
_Sums = list[float]


def _hour(segment_id: int, how: int, nexts: dict[int | None, _Sums], length: int | None,
          first_hour: int, min_count: int, max_speed: int, out: SegmentWeek) -> None:
    means = {nid: s[1] / s[0] for nid, s in nexts.items()}
    min_d = min(means.values())
    total = sum(s[0] for s in nexts.values())
    published = total >= min_count
    speed = mean_speed = variance = 0
    if published and length is not None:
        if min_d > 0:
            speed = round_half_away(length / min_d * 3.6)  # OpenTraffic's order of operations
            speed = 0 if speed > max_speed else speed
        n_pos = sum(s[0] for s in nexts.values() if s[1] > 0)
        if n_pos > 0:
            inv = sum(s[0] * s[0] / s[1] for s in nexts.values() if s[1] > 0)
            mean_speed = round_half_away(3.6 * length * inv / n_pos)
            mean_speed = 0 if mean_speed > max_speed else mean_speed
        if speed > 0:
            timed = [s for s in nexts.values() if s[1] > 0]
            nv = len(timed)
            sv = sum(s[0] / s[1] for s in timed)
            svv = sum(s[0] * s[0] / s[1] / s[1] for s in timed)
            variance = round_half_away((3.6 * length) * (3.6 * length)
                             * max(svv / nv - (sv / nv) * (sv / nv), 0))
    out.hours.append(how)
    out.observations.append(int(total))
    out.speeds.append(speed)
    out.mean_speeds.append(mean_speed)
    out.speed_variances.append(variance)
    out.prevalences.append(prevalence(int(total), segment_id, how, first_hour)
                           if published else 0)
    if not published:
        return
    for nid in sorted(nexts, key=lambda k: (k is None, k or 0)):
        n, _, sdd, sq, sqq = nexts[nid][:5]
        mean_d = means[nid]
        out.next_hours.append(how)
        out.next_ids.append(nid)
        out.next_counts.append(int(n))
        out.delays.append(round_half_away(mean_d - min_d))
        out.delay_variances.append(round_half_away(max(sdd / n - mean_d * mean_d, 0)))
        if length is None:
            out.queue_lengths.append(0)
            out.queue_length_variances.append(0)
        else:
            out.queue_lengths.append(round_half_away(sq / n * length / 255))
            out.queue_length_variances.append(round_half_away(
                max(sqq / n - (sq / n) * (sq / n), 0) * (length / 255) * (length / 255)))


TileSum = tuple[int, int, int, int]
"""Per tile of a build: (tile id, segments, observations, largest segment index)."""


def tile_sums(weeks: Mapping[int, SegmentWeek]) -> list[TileSum]:
    """What summarize_tiles reads back per tile from the rows of ``weeks`` (segment id ->
    its week), by tile id: the twin of ``_speedtile.Builder.tiles``, which the C engine
    gives summarize_tiles instead of a scan of the rows it just wrote.

    Examples
    --------
    >>> tile_sums({3 << 25 | 24840: SegmentWeek(None, [0], [5]),
    ...            7 << 25 | 24840: SegmentWeek(None, [0, 1], [1, 2])})
    [(24840, 2, 8, 7)]
    """
    sums: dict[int, list[int]] = {}
    for segment_id, week in weeks.items():
        tile, index = segment_id & 0x1FFFFFF, segment_id >> 25
        t = sums.setdefault(tile, [0, 0, index])
        t[0] += 1
        t[1] += sum(week.observations)
        t[2] = max(t[2], index)
    return [(tile, *t) for tile, t in sorted(sums.items())]  # type: ignore[misc]


def speeds_from_histograms(
    rows: Iterable[tuple[int, int | None, int, int, int, int]],
    lengths: Mapping[int, int],
    first_hour: int,
    *,
    min_count: int = 1,
    max_speed: int = MAX_SPEED,
) -> dict[int, SegmentWeek]:
    """Speeds of one week from histogram rows, segment by segment, in plain Python.

    ``rows`` are ``(segment_id, next_segment_id | None, hour, duration_code, queue_code,
    count)`` with ``first_hour <= hour < first_hour + 168``; ``lengths`` maps segment ids to
    lengths in metres (segments without one get speed 0). The rules (issue 5, after
    OpenTraffic's ``make_speeds.py``):

    - a bin's duration is the lower bound of its bucket (:func:`duration_seconds`); per
      (segment, hour, next segment) the count-weighted mean duration and queue code;
    - speed = length / the shortest mean duration among the next segments (the "no next
      segment" group included) * 3.6, in that order as OpenTraffic computed it; above
      ``max_speed`` it is 0 = no data. ``mean_speed`` (ours) is the count-weighted mean of
      the per-next-segment speeds;
    - speed variance = the variance of the per-next-segment speeds (3.6 * length / mean
      duration; population variance, km^2/h^2) as OpenTraffic's, which rounded each speed
      first; 0 when the speed is 0;
    - prevalence: :func:`prevalence`;
    - per next segment: delay = its mean duration minus the shortest (s), queue length =
      mean queue code / 255 * length (m), and the count-weighted variances of both (within
      that next segment; OpenTraffic wrote the variance across next segments instead);
    - an hour with fewer than ``min_count`` observations publishes no data: zeros and no
      next segments;
    - every published integer is rounded halves away from zero (:func:`round_half_away`),
      as OpenTraffic's Python 2 ``round()`` did: 25 m in 4 s is 22.5 km/h, written 23.

    The float arithmetic follows the SQL's order of operations, so the results are equal,
    except that speed variance and mean speed sum floats in an order the database picks
    (and the SQL's ``var_pop`` updates its sums another way) and may differ by one after
    rounding.
    """
    acc: dict[int, dict[int, dict[int | None, _Sums]]] = defaultdict(
        lambda: defaultdict(dict))
    for segment_id, next_id, hour, code, queue, count in rows:
        d = duration_seconds(code)
        nexts = acc[segment_id][hour - first_hour]
        s = nexts.get(next_id)
        if s is None:
            s = nexts[next_id] = [0.0] * 5
        s[0] += count
        s[1] += count * d
        s[2] += count * d * d
        s[3] += count * queue
        s[4] += count * queue * queue
    result: dict[int, SegmentWeek] = {}
    for segment_id in sorted(acc):
        length = lengths.get(segment_id)
        week = result[segment_id] = SegmentWeek(length=length)
        hours = acc[segment_id]
        for how in sorted(hours):
            _hour(segment_id, how, hours[how], length, first_hour, min_count, max_speed, week)
    return result
