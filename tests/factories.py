"""Factories: rows in a given state, written in one place instead of in each test file.

Each factory takes an open connection and leaves the commit to the caller, so a test can lay
out several kinds of rows in one transaction (or inside a handler, on ``job.conn``). Where the
library has a verb for a row, the factory calls it (``schedules.add``), and only sets what no
verb can: a time in the past, rows a stage upstream would have written. Overrides are keyword
arguments with the defaults a test usually wants.

Queue items need no factory of their own: tests enqueue through ``renderer.queue.enqueue`` /
``enqueue_many`` and move items with ``claim``/``complete``/``fail``; ``backdate`` stands in
for waiting.

Example
-------
>>> with db.connect() as conn:                                          # doctest: +SKIP
...     add_histograms(conn, [(seg(1), None, FIRST, code(10), 0, 3)])
...     add_lengths(conn, {seg(1): 200})
...     conn.commit()
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

from renderer import schedules
from renderer.traffic import weeks
from renderer.traffic.speedtile_pack import NEXT_COLUMNS, pack_week

Conn = psycopg.Connection[Any]
HistogramRow = tuple[int, int | None, int, int, int, int]
"""segment id, next segment id (None: none), hour, duration code, queue code, count"""

# -- queue -----------------------------------------------------------------------------------

QUEUE_TIMES = ("enqueued_at", "run_after", "started_at", "finished_at", "lease_expires")


def backdate(conn: Conn, *, kind: str | None = None, keys: Iterable[str] | None = None,
             state: str | None = None, **seconds_ago: float | timedelta) -> int:
    """Set queue timestamps to that long before now() on the matching items, as if the time
    had passed: ``run_after=0`` makes items due at once (skips a backoff), ``lease_expires=1``
    expires leases, ``finished_at=timedelta(days=10)`` ages done items. Items match on
    ``kind``, ``keys`` and ``state`` when given (all items otherwise). Returns how many."""
    unknown = set(seconds_ago) - set(QUEUE_TIMES)
    if unknown or not seconds_ago:
        raise ValueError(f"backdate sets some of {', '.join(QUEUE_TIMES)}, "
                         f"not {sorted(unknown) or 'none'}")
    # a leased item's start and expiry are its lease's (queue_leases)
    lease_columns = {c: {"lease_expires": "expires", "started_at": "started_at"}[c]
                     for c in seconds_ago if c in ("lease_expires", "started_at")}
    lease_sets = sql.SQL(", ").join(
        sql.SQL("{} = now() - make_interval(secs => {})").format(
            sql.Identifier(lease_columns[c]),
            sql.Literal(ago.total_seconds() if isinstance(ago, timedelta) else float(ago)))
        for c, ago in seconds_ago.items() if c in lease_columns
    ) if lease_columns else sql.SQL("expires = expires")
    sets = sql.SQL(", ").join(
        sql.SQL("{} = now() - make_interval(secs => {})").format(
            sql.Identifier(column),
            sql.Literal(ago.total_seconds() if isinstance(ago, timedelta) else float(ago)))
        for column, ago in seconds_ago.items())
    statement = sql.SQL(
        "WITH m AS MATERIALIZED (SELECT id FROM queue_items"
        " WHERE (%(kind)s::text IS NULL OR kind = %(kind)s)"
        " AND (%(keys)s::text[] IS NULL OR key = ANY(%(keys)s))"
        " AND (%(state)s::text IS NULL OR state::text = %(state)s)),"
        " l AS (UPDATE queue_leases SET {lease_sets}"
        "       WHERE ids && ARRAY(SELECT id FROM m) AND {leased})"
        " UPDATE work_queue SET {sets} WHERE id IN (SELECT id FROM m)").format(
        sets=sets, lease_sets=lease_sets, leased=sql.Literal(bool(lease_columns)))
    params = {"kind": kind, "keys": None if keys is None else list(keys), "state": state}
    return conn.execute(statement, params).rowcount


# -- schedules -------------------------------------------------------------------------------

def add_schedule(conn: Conn, name: str, cron: str, kind: str, key: str, *,
                 created: datetime | None = None, **options: Any) -> None:
    """A schedule through ``schedules.add``, created at ``created`` (its first tick is the
    first one after it; default two minutes ago, so a minutely schedule is due now)."""
    schedules.add(conn, name, cron, kind, key, **options)
    when = created if created is not None else datetime.now(UTC) - timedelta(minutes=2)
    conn.execute("UPDATE schedules SET created_at = %s WHERE name = %s", [when, name])


# -- traffic ---------------------------------------------------------------------------------

def add_histograms(conn: Conn, rows: Iterable[HistogramRow], mode: str = "AUTO") -> None:
    """Append histogram bins, in one statement (readers sum rows of the same bin), making the
    hours' partitions first, as the histogram stage does."""
    rows = list(rows)
    conn.execute("SELECT renderer.traffic_histogram_partition(h)"
                 " FROM unnest(%s::integer[]) AS h", [sorted({r[2] for r in rows})])
    columns = list(zip(*rows, strict=True))
    conn.execute(
        "INSERT INTO traffic_histograms AS t (mode, segment_id, next_segment_id, hour,"
        " duration_code, queue_code, count)"
        " SELECT %s, * FROM unnest(%s::bigint[], %s::bigint[], %s::integer[], %s::smallint[],"
        "                          %s::smallint[], %s::bigint[])",
        [mode, *[list(c) for c in columns]])


def add_lengths(conn: Conn, lengths: Mapping[int, int], observations: int = 10) -> None:
    """Reported lengths ({segment: metres}), each seen ``observations`` times."""
    conn.execute("INSERT INTO traffic_segment_lengths (segment_id, length, observations)"
                 " SELECT s, l, %s FROM unnest(%s::bigint[], %s::integer[]) AS u(s, l)",
                 [observations, list(lengths), list(lengths.values())])


def add_speeds(conn: Conn, first_hour: int, by_segment: Mapping[int, Mapping[int, int]],
               mode: str = "AUTO", observations: int = 3) -> None:
    """Speed rows of one week ({segment: {hour of week: speed}}) and their tile summaries,
    as the speed tile stage writes them."""
    for segment_id, hours in by_segment.items():
        hs = sorted(hours)
        hour_values, nexts = pack_week(
            {"hours": hs, "mean_speeds": [hours[h] for h in hs], "speed_variances": [0] * len(hs),
             "prevalences": [5] * len(hs), **{c: [] for c in NEXT_COLUMNS}})
        conn.execute(
            "INSERT INTO traffic_speeds (mode, first_hour, segment_id, length, hours,"
            " observations, speeds, hour_values, nexts, total_observations)"
            " VALUES (%s, %s, %s, 100, %s, %s, %s, %s, %s, %s)",
            [mode, first_hour, segment_id, hs, [observations] * len(hs),
             [hours[h] for h in hs], hour_values, nexts, observations * len(hs)])
    conn.execute(
        "INSERT INTO traffic_speed_tiles (mode, level, tile_index, first_hour, week,"
        " total_segments, segments, observations, min_count)"
        " SELECT %s, tile_id & 7, tile_id >> 3, %s, %s, max(segment_id >> 25) + 1, count(*),"
        " sum(cardinality(observations)) * %s, 1 FROM traffic_speeds"
        " WHERE mode = %s AND first_hour = %s GROUP BY tile_id"
        " ON CONFLICT (mode, level, tile_index, first_hour) DO UPDATE"
        " SET segments = excluded.segments, total_segments = excluded.total_segments",
        [mode, first_hour, weeks.week_of_hour(first_hour), observations, mode, first_hour])


# -- sensors ---------------------------------------------------------------------------------

def add_sensor_rows(conn: Conn, rows: Iterable[tuple[int, float, Any]], *,
                    days: Iterable[date] = ()) -> None:
    """Raw records (detector, epoch seconds, speed in km/h: int, float or Decimal with at
    most two decimals, or None) straight into sensors_raw, a later one replacing the speed
    of the same (detector, time); the partitions of their days and of ``days`` are made
    first."""
    rows = list(rows)
    wanted = {datetime.fromtimestamp(t, UTC).date() for _, t, _ in rows} | set(days)
    conn.execute("SELECT renderer.sensors_raw_partition(d) FROM unnest(%(days)s::date[]) d",
                 {"days": sorted(wanted)})
    conn.execute("""
        INSERT INTO sensors_raw (uniqueid, recordtimestamp, currentspeed_hundredths,
                                 bezettingsgraad, trafficintensityclass1, file_id)
        SELECT u, to_timestamp(t), (s * 100)::integer, 1, 2, 0
        FROM unnest(%(u)s::int[], %(t)s::float8[], %(s)s::numeric[]) AS r(u, t, s)
        ON CONFLICT (uniqueid, recordtimestamp)
        DO UPDATE SET currentspeed_hundredths = excluded.currentspeed_hundredths
    """, {"u": [r[0] for r in rows], "t": [r[1] for r in rows],
          "s": [None if r[2] is None else str(r[2]) for r in rows]})


def add_sensor_days(conn: Conn, versions: Mapping[date, int]) -> None:
    """Days with ingested raw data ({day: raw_version}), waiting to be enriched, as ingest
    leaves them."""
    conn.execute("INSERT INTO sensors_days (day, raw_version)"
                 " SELECT * FROM unnest(%s::date[], %s::bigint[])",
                 [list(versions), list(versions.values())])
