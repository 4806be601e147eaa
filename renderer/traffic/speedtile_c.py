"""The speed-tile build's C engine: binary COPY out, a C loop, binary COPY back.

``build_speeds_c`` does what the named statement ``traffic_speedtile.build_speeds`` does
(insert the week's ``traffic_speeds`` rows of the given tiles) inside the caller's
transaction: it streams the week's histogram rows out of PostgreSQL as binary COPY in key
order (segment, hour, next segment), computes every (segment, hour) in ``ext/speedtile.c``
(``renderer._speedtile.Builder``, whose arithmetic is that of the Python twin
:func:`renderer.traffic.speedtile.speeds_from_histograms`, tested equal) and streams the rows
back into ``traffic_speeds`` by binary COPY. PostgreSQL's executor then does one sort and
one scan instead of three passes of aggregation and windows (BENCHMARKS.md).

Rounding happens in one place in C: ``st_round`` in ext/speedtile.c (half to even, as the
twin's ``round``).
"""

from __future__ import annotations

from array import array
from typing import Any, cast

from renderer import _speedtile  # type: ignore[attr-defined]
from renderer.db import Connection, query, tuple_row

__all__ = ["build_speeds_c"]

_OUT_CHUNK = 1 << 20


def build_speeds_c(conn: Connection, params: dict[str, Any], *, sort_in_c: bool = False) -> int:
    """Insert the speed rows of ``params`` (those of build_speeds); the number of rows.

    ``sort_in_c``: the histogram rows come in the order the server's scan finds them and
    the C engine sorts them (speedtile_sort.c); else (the default) the server sorts them
    (ORDER BY), which measured cheaper in all: on a 4.59M-row tile-week the C sort saved
    the server 0.4-0.7 CPU s and cost the client 0.85 (BENCHMARKS.md)."""
    ids, values = array("q"), array("q")
    with conn.cursor(row_factory=tuple_row) as cur:
        for segment_id, length in cur.execute(query("traffic_speedtile.segment_lengths"),
                                              params).fetchall():
            ids.append(segment_id)
            values.append(length)
    builder = _speedtile.Builder(params["mode"], params["first_hour"], params["min_count"],
                                 params["max_speed"], ids.tobytes(), values.tobytes(),
                                 unsorted=sort_in_c)
    rows_query = "histogram_rows_heap_copy" if sort_in_c else "histogram_rows_copy"
    with conn.cursor() as cur:
        with cur.copy(query(f"traffic_speedtile.{rows_query}"), params) as copy:
            if _speedtile.has_libpq():
                # read by C from the driver's own libpq: a Python loop over millions of
                # one-row messages would cost more than the whole computation
                builder.drain(cast(Any, conn.pgconn).pgconn_ptr)  # libpq's PGconn *
            for data in copy:  # after a drain: only the end of the COPY, its result
                builder.feed(data)
        rows = memoryview(builder.finish())
        with cur.copy(query("traffic_speedtile.speeds_copy")) as copy:
            for at in range(0, len(rows), _OUT_CHUNK):
                copy.write(rows[at:at + _OUT_CHUNK])
    return int(builder.segments)
