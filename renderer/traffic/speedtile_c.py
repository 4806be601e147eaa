"""The speed-tile build's C engine: binary COPY out, a C loop, binary COPY back.

``build_speeds_c`` does what the named statement ``traffic_speedtile.build_speeds`` does
(insert the week's ``traffic_speeds`` rows of the given tiles) inside the caller's
transaction: it streams the week's histogram rows out of PostgreSQL as binary COPY in key
order (segment, hour, next segment), computes every (segment, hour) in ``ext/speedtile.c``
(``renderer._speedtile.Builder``, whose arithmetic is that of the Python twin
:func:`renderer.traffic.speedtile.speeds_from_histograms`, tested equal) and streams the rows
back into ``traffic_speeds`` by binary COPY. PostgreSQL's executor then does one sort and
one scan instead of three passes of aggregation and windows (BENCHMARKS.md).

Split across backends (``parts`` > 1): the segments are cut into ``parts`` ranges, each
later one larger (:data:`STAGGER`: the earlier are written while the later are still read);
each range is read by its own connection, in a read-only transaction at one snapshot (so the
parts together see what one read would): in read committed, the snapshot the first part
exports (what one statement would see; a caller inside a savepoint cannot export its own),
else the caller's, exported (its later statements see exactly that), and drained by its own
Builder in its own thread (the drain runs without the GIL), so the backends' scans, sorts
and COPYs and the C loops run at once. The ranges are in segment order, so their outputs,
written one after the other by the caller's connection, are the very rows and order of one
part. The caller's transaction must not have written yet (no snapshot shows its own writes
to another backend: ``build`` checks); in repeatable read or serializable it must not be
inside a savepoint (a subtransaction cannot export its snapshot). The segment lengths are
read by the first part, at the parts' snapshot (what the one statement build_speeds reads);
meanwhile the caller's connection does what must precede the write (``before_write``: the
delete of the last build's rows), so the start leaves no core idle.

Rounding happens in one place in C: ``st_round`` in ext/speedtile.c (half to even, as the
twin's ``round``).
"""

from __future__ import annotations

import contextlib
from array import array
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, cast

from renderer import _speedtile  # type: ignore[attr-defined]
from renderer.db import Connection, connect, query, scalar, sql, tuple_row

__all__ = ["build_speeds_c", "part_ranges", "sibling"]

_OUT_CHUNK = 1 << 20
_HEADER = 19  # bytes of a binary COPY header without extension (ext/pgcopy.c)
_MIN_ID, _MAX_ID = -(1 << 63), (1 << 63) - 1
STAGGER = 0.4
"""Each part of a split build this much larger than the one before (in shares of the known
segments; two parts: 42 % and 58 %): the first part's rows are written into traffic_speeds
by the build's connection while the second part is still read, instead of both after both
reads (BENCHMARKS.md, wave 8). Measured instead: more ranges than backends, each backend
reading its next as it is done: every range is a scan of the whole tile-week, +0.5-1 server
CPU s for four ranges on two backends."""


def part_ranges(ids: array[int], parts: int, stagger: float = 0.0) -> list[tuple[int, int]]:
    """``parts`` (at most) consecutive ranges (lo, hi) of segment ids covering every int8,
    cut so that each holds about as many of the sorted ``ids`` (the known segments), or with
    ``stagger`` the k-th (from 0) about ``1 + stagger * k`` shares of them: later parts
    larger, so that the earlier finish reading first and are written while the later are
    still read (:data:`STAGGER`)."""
    weights = [1 + stagger * k for k in range(parts)]
    total = sum(weights)
    cuts: list[int] = []
    for k in range(1, parts):
        at = (len(ids) * k // parts if not stagger
              else int(len(ids) * sum(weights[:k]) / total))
        if 0 < at < len(ids) and (not cuts or ids[at] > cuts[-1]):
            cuts.append(ids[at])
    los = [_MIN_ID, *cuts]
    his = [c - 1 for c in cuts] + [_MAX_ID]
    return list(zip(los, his, strict=True))


def sibling(conn: Connection) -> Callable[[], Connection]:
    """Opens another connection to the server and database of ``conn``, as its user (its
    connection options as libpq reports them), in autocommit."""
    options = {o.keyword.decode(): o.val.decode() for o in conn.pgconn.info
               if o.val is not None and o.keyword.decode() != "application_name"}
    # the password apart: a failed connection's message quotes the conninfo
    password = {k: options.pop(k) for k in ("password",) if k in options}
    info = " ".join(f"{k}='" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"
                    for k, v in options.items())
    return lambda: connect(info, autocommit=True, pooler=True, **password)


def _lengths(conn: Connection, params: dict[str, Any]) -> tuple[array[int], array[int]]:
    ids, values = array("q"), array("q")
    with conn.cursor(row_factory=tuple_row) as cur:
        for segment_id, length in cur.execute(query("traffic_speedtile.segment_lengths"),
                                              params).fetchall():
            ids.append(segment_id)
            values.append(length)
    return ids, values


def _builder(params: dict[str, Any], ids: array[int], values: array[int],
             sort_in_c: bool) -> Any:
    return _speedtile.Builder(params["mode"], params["first_hour"], params["min_count"],
                              params["max_speed"], ids.tobytes(), values.tobytes(),
                              unsorted=sort_in_c)


def _drain(conn: Connection, builder: Any, statement: str, params: dict[str, Any]) -> bytes:
    """Feed the COPY of ``statement`` to ``builder``; its output."""
    with conn.cursor() as cur, cur.copy(statement, params) as copy:
        if _speedtile.has_libpq():
            # read by C from the driver's own libpq: a Python loop over millions of
            # one-row messages would cost more than the whole computation
            builder.drain(cast(Any, conn.pgconn).pgconn_ptr)  # libpq's PGconn *
        for data in copy:  # after a drain: only the end of the COPY, its result
            builder.feed(data)
    return cast(bytes, builder.finish())


def build_speeds_c(conn: Connection, params: dict[str, Any], *, sort_in_c: bool = False,
                   parts: int = 1, work_mem: str = "",
                   connect_part: Callable[[], Connection] | None = None,
                   before_write: Callable[[], object] | None = None
                   ) -> list[tuple[int, int, int, int]]:
    """Insert the speed rows of ``params`` (those of build_speeds); per tile of the rows
    written, by tile id, (tile id, segments, observations, largest segment index): what
    summarize_tiles would read back (``Builder.tiles``).

    ``sort_in_c``: the histogram rows come in the order the server's scan finds them and
    the C engine sorts them (speedtile_sort.c); else (the default) the server sorts them
    (ORDER BY), which measured cheaper in all with one part (BENCHMARKS.md).
    ``parts``: split the read across that many backends at once (the module's docstring),
    each with ``work_mem`` for its sort ('' the server's), connected by ``connect_part``
    (default: :func:`sibling` of ``conn``). ``before_write``: what ``conn`` must do before
    the rows are written (the delete of the last build's rows): with parts, in a thread of
    its own while the parts read (it must not need what they read, nor they what it writes),
    so that the start does not leave a core idle (BENCHMARKS.md, wave 10)."""
    if parts == 1:
        if before_write is not None:
            before_write()
        ids, values = _lengths(conn, params)
        builder = _builder(params, ids, values, sort_in_c)
        output = _drain(conn, builder, query(_rows_query(sort_in_c)),
                        {**params, "lo": _MIN_ID, "hi": _MAX_ID})
        with conn.cursor() as cur, cur.copy(query("traffic_speedtile.speeds_copy")) as copy:
            _write(copy, memoryview(output))
        return cast(list[tuple[int, int, int, int]], builder.tiles)
    # read committed (every caller's): one statement would see what is committed when
    # it starts, so the parts share a snapshot the first part exports, which works inside
    # a savepoint too (a subtransaction cannot export its own); otherwise the parts read
    # at the caller's own snapshot, exported
    snapshot = (None if scalar(conn, "traffic_speedtile.read_committed")
                else scalar(conn, "traffic_speedtile.export_snapshot"))
    with ThreadPoolExecutor(1, thread_name_prefix="speedtile-write") as side:
        # from here until the rows are written, conn is this thread's alone
        prepared = side.submit(before_write) if before_write is not None else None
        return _split(conn, params, sort_in_c, parts, work_mem,
                      connect_part or sibling(conn), snapshot, prepared)


def _rows_query(sort_in_c: bool) -> str:
    return ("traffic_speedtile.histogram_rows_part_heap_copy" if sort_in_c
            else "traffic_speedtile.histogram_rows_part_copy")


def _split(conn: Connection, params: dict[str, Any], sort_in_c: bool, parts: int,
           work_mem: str, opener: Callable[[], Connection], snapshot: str | None,
           prepared: Future[object] | None) -> list[tuple[int, int, int, int]]:
    """The split build's reads and write (build_speeds_c); ``prepared``: conn's work to
    wait for before it writes."""
    rows_query = query(_rows_query(sort_in_c))
    with contextlib.ExitStack() as stack:
        part_conns = [stack.enter_context(opener()) for _ in range(parts)]
        for part_conn in part_conns:
            part_conn.execute(query("traffic_speedtile.part_begin"))
            if snapshot is None:  # the first part's, exported at its first statement
                snapshot = scalar(part_conn, "traffic_speedtile.export_snapshot")
            else:
                part_conn.execute(sql.SQL(query("traffic_speedtile.part_snapshot")).format(  # type: ignore[arg-type]
                    snapshot=sql.Literal(snapshot)))
            if work_mem:
                part_conn.execute(query("traffic_speedtile.part_work_mem"),
                                  {"work_mem": work_mem})
        # the lengths at the parts' snapshot: what the one statement of build_speeds reads
        ids, values = _lengths(part_conns[0], params)
        ranges = part_ranges(ids, parts, STAGGER)

        def part(k: int) -> tuple[bytes, list[tuple[int, int, int, int]]]:
            builder = _builder(params, ids, values, sort_in_c)
            lo, hi = ranges[k]
            output = _drain(part_conns[k], builder, rows_query, {**params, "lo": lo, "hi": hi})
            part_conns[k].rollback()
            return output, builder.tiles

        tiles: dict[int, tuple[int, int, int]] = {}
        with ThreadPoolExecutor(len(ranges), thread_name_prefix="speedtile") as pool:
            futures = [pool.submit(part, k) for k in range(len(ranges))]
            if prepared is not None:
                prepared.result()
            with conn.cursor() as cur, cur.copy(query("traffic_speedtile.speeds_copy")) as copy:
                for k, future in enumerate(futures):  # in segment order, each as it is done
                    output, sums = future.result()
                    for tile, segments, observations, max_index in sums:
                        had = tiles.get(tile, (0, 0, max_index))
                        tiles[tile] = (had[0] + segments, had[1] + observations,
                                       max(had[2], max_index))
                    # one stream: the first part's header, the last part's trailer
                    _write(copy, memoryview(output)[0 if k == 0 else _HEADER:
                                                    None if k == len(futures) - 1 else -2])
        return [(tile, *tiles[tile]) for tile in sorted(tiles)]


def _write(copy: Any, rows: memoryview) -> None:
    for at in range(0, len(rows), _OUT_CHUNK):
        copy.write(rows[at:at + _OUT_CHUNK])
