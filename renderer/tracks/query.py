"""The any-mix query: identifiers, bounding box, time range and sampling, alone or together.

Results come in time order (ties by vessel, latitude, longitude: a total order, since the key
is (vessel, time, position)), read from a server-side cursor and yielded as they arrive.
Queries without identifiers walk the range one UTC day partition at a time, so the first
rows leave after the first day's work, not the whole range's; queries with identifiers read
their few vessels' rows in one statement (one index range per vessel and day).

Sampling keeps each vessel's first report in each interval, intervals counted from the epoch;
every offered interval divides a day, so sampling a day at a time is sampling the whole.
Intervals of whole hours read the hourly summary (``tracks_summary``: each vessel's first
report per hour and the box of its hour), probing the reports only for the hours that the
query's box or time range cuts; the rows are the same as from every report (tests compare
the two routes).

A page ends after ``limit`` rows with a cursor token (:func:`encode_token`) that resumes
after its last row; the token names its query, so it cannot resume another one.

Example
-------
>>> q = Query.parse(ids=["mmsi=123456789"], bbox="-50,135,-20,150",
...                 start="2026-12-01", end="2026-12-31", sample="1h")
>>> q.sample_seconds
3600
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from renderer import db
from renderer.bbox import BBox
from renderer.errors import InputError

__all__ = ["SAMPLES", "Page", "Query", "Row", "decode_token", "encode_token", "narrow",
           "params_for", "parse_time", "run", "sample_first", "statement_for"]

SAMPLES = {"1s": 1, "30s": 30, "1m": 60, "5m": 300, "15m": 900, "30m": 1800, "1h": 3600,
           "2h": 7200, "4h": 14400, "8h": 28800, "12h": 43200, "1d": 86400}
FETCH = 2000
FIRST_FETCH = 100  # rows of the first fetch until a row has been sent: the first leave sooner
FIRST_SPAN = 600      # seconds: an area query's first statement reads at most this much,
                      # or one sampling interval (at 100M reports an hour of a 10-degree
                      # box at a port is 9k reports out of 81k read: BENCHMARKS.md)
NARROW_SPAN = 3600    # seconds: spans shorter than this find their rows by time (narrow)
PROBE_SECONDS = 900   # sampled id-led queries probe the key per interval from 15 min up
PROBE_VESSELS = 16    # (measured, BENCHMARKS.md "Vessel tracks")
SUMMARY_SECONDS = 3600  # the interval of tracks_summary: coarser samples read it
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
MIN_T = datetime(1970, 1, 1, tzinfo=UTC)
MAX_T = datetime(2100, 1, 1, tzinfo=UTC)

Row = dict[str, Any]


def parse_time(text: str, *, end: bool = False) -> datetime:
    """Epoch seconds or ISO 8601 (zone-less = UTC) -> aware UTC; a date alone is its
    midnight, or with ``end`` the last microsecond of the day (so ``--to`` a date is
    inclusive of that day).

    >>> parse_time("2026-12-31", end=True).isoformat()
    '2026-12-31T23:59:59.999999+00:00'
    """
    text = text.strip()
    try:
        value = (datetime.fromtimestamp(float(text), UTC) if re.fullmatch(r"-?\d+(\.\d+)?", text)
                 else datetime.fromisoformat(text))
    except (ValueError, OverflowError):
        raise InputError(f"time {text!r} is neither ISO 8601 nor epoch seconds",
                         "e.g. 2026-12-01 or 2026-12-01T06:00:00Z") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    if end and _DATE.fullmatch(text):
        value += timedelta(days=1) - timedelta(microseconds=1)
    return value


@dataclass(frozen=True)
class Query:
    """What to read; every part optional."""

    ids: tuple[tuple[str, str], ...] = ()
    bbox: tuple[float, float, float, float] | None = None
    """(min lat, min lon, max lat, max lon); min lon > max lon crosses the antimeridian
    (``-10,170,10,-170`` is 20 degrees wide around 180)."""
    start: datetime | None = None
    end: datetime | None = None
    """Both inclusive."""
    sample_seconds: int | None = None

    @classmethod
    def parse(cls, *, ids: list[str] | tuple[str, ...] = (), bbox: str | None = None,
              start: str | None = None, end: str | None = None,
              sample: str | None = None) -> Query:
        """From the flags of ``tracks query`` / the parameters of ``GET /api/tracks``:
        ``KEY=VALUE`` (or ``KEY:VALUE``) identifiers, ``MINLAT,MINLON,MAXLAT,MAXLON``, times
        as :func:`parse_time`, a sample in :data:`SAMPLES`."""
        pairs = []
        for text in ids:
            key, sep, value = text.replace(":", "=", 1).partition("=")
            if not sep or not key.strip() or not value.strip():
                raise InputError(f"identifier {text!r} is not KEY=VALUE", "e.g. mmsi=503000001")
            pairs.append((key.strip().lower(), value.strip()))
        box = None
        if bbox is not None:
            try:
                parts = [float(p) for p in bbox.split(",")]
            except ValueError:
                parts = []
            if len(parts) != 4:
                raise InputError(f"bbox {bbox!r} is not four numbers",
                                 "MINLAT,MINLON,MAXLAT,MAXLON, e.g. -50,135,-20,150")
            min_lat, min_lon, max_lat, max_lon = parts
            if not (-90 <= min_lat <= max_lat <= 90 and -180 <= min_lon <= 180
                    and -180 <= max_lon <= 180):
                raise InputError(f"bbox {bbox!r} is not MINLAT,MINLON,MAXLAT,MAXLON",
                                 "latitudes in [-90, 90], min <= max; MINLON > MAXLON "
                                 "crosses the antimeridian")
            box = (min_lat, min_lon, max_lat, max_lon)
        if sample is not None and sample not in SAMPLES:
            raise InputError(f"sample {sample!r} is not offered", f"use {'|'.join(SAMPLES)}")
        q = cls(tuple(sorted(set(pairs))), box,
                parse_time(start) if start else None, parse_time(end, end=True) if end else None,
                SAMPLES[sample] if sample else None)
        if q.start and q.end and q.start > q.end:
            raise InputError("--from is after --to", "swap them")
        return q

    def fingerprint(self) -> str:
        """A short hash naming the query (what a cursor token must match)."""
        text = json.dumps([self.ids, self.bbox, self.start and self.start.isoformat(),
                           self.end and self.end.isoformat(), self.sample_seconds])
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class After:
    """The last row of a page: the next page starts after it."""

    t: datetime
    vessel: int
    lat: float
    lon: float


def encode_token(q: Query, after: After) -> str:
    """An opaque cursor token: the query's fingerprint and the last row's key."""
    body = json.dumps({"q": q.fingerprint(), "t": after.t.isoformat(), "v": after.vessel,
                       "lat": after.lat, "lon": after.lon}, separators=(",", ":"))
    return base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")


def decode_token(q: Query, token: str) -> After:
    try:
        body = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        after = After(datetime.fromisoformat(body["t"]), int(body["v"]), float(body["lat"]),
                      float(body["lon"]))
        same = body["q"] == q.fingerprint()
    except (ValueError, KeyError, TypeError):
        raise InputError("cursor token is malformed", "use the token a page returned") from None
    if not same:
        raise InputError("cursor token belongs to another query",
                         "repeat the same filters with the token, or drop it")
    return after


@dataclass
class Page:
    """The rows of a query (an iterator, to be consumed once) and, once they are consumed,
    the token of the next page (None when there is none)."""

    rows: Iterator[Row]
    next_token: str | None = None
    count: int = field(default=0)


def _vessels(conn: db.Connection, ids: tuple[tuple[str, str], ...]) -> list[int]:
    rows = conn.execute(db.query("tracks.vessels_of"), {
        "keys": [k for k, _ in ids], "values": [v for _, v in ids]}).fetchall()
    return [r["vessel_id"] for r in rows]


def _chunks(conn: db.Connection, q: Query, lo: datetime, hi: datetime,
            by_day: bool) -> list[tuple[datetime, datetime]]:
    """The [lo, hi] spans to read in turn: one per existing day partition (the first one cut
    in two), or one span."""
    days = [r["day"] for r in conn.execute(db.query("tracks.days"), {
        "lo": lo.date(), "hi": hi.date()}).fetchall()]
    if not days:
        return []
    if not by_day:
        first = datetime.combine(days[0], datetime.min.time(), UTC)
        last = datetime.combine(days[-1], datetime.min.time(), UTC) + timedelta(days=1)
        return [(max(lo, first), min(hi, last))]
    spans = []
    for day in days:
        start = datetime.combine(day, datetime.min.time(), UTC)
        spans.append((max(lo, start), min(hi, start + timedelta(days=1, microseconds=-1))))
    # The first rows leave after ten minutes' work, not a day's: the first span is cut at
    # the next multiple of FIRST_SPAN (or of the interval, when longer: intervals divide
    # it).
    step = max(FIRST_SPAN, q.sample_seconds or 0)
    first_lo, first_hi = spans[0]
    cut = datetime.fromtimestamp((int(first_lo.timestamp()) // step + 1) * step, UTC)
    if step < 86400 and cut <= first_hi:
        spans[0:1] = [(first_lo, cut - timedelta(microseconds=1)), (cut, first_hi)]
    return spans


def _box_params(box: tuple[float, float, float, float] | None) -> dict[str, float | None]:
    """The box as SQL parameters: its latitudes and one or two longitude spans (two when
    MINLON > MAXLON: the box crosses the antimeridian, as :class:`renderer.bbox.BBox`)."""
    params: dict[str, float | None] = dict.fromkeys(
        ("min_lat", "max_lat", "min_lon", "max_lon", "min_lon2", "max_lon2"))
    if box is not None:
        min_lat, min_lon, max_lat, max_lon = box
        spans = BBox(min_lon, min_lat, max_lon, max_lat).spans()
        params.update(min_lat=min_lat, max_lat=max_lat, min_lon=spans[0][0],
                      max_lon=spans[0][1])
        if len(spans) > 1:
            params.update(min_lon2=spans[1][0], max_lon2=spans[1][1])
    return params


def narrow(lo: datetime, hi: datetime) -> bool:
    """Whether a span is short enough (under :data:`NARROW_SPAN`: an area query's first
    span) that the statements find its rows by the time indexes and test the box on each,
    rather than gather the box's rows of the whole day from the spatial indexes first."""
    return hi - lo < timedelta(seconds=NARROW_SPAN)


def params_for(q: Query, vessels: list[int] | None, after: After | None = None
               ) -> dict[str, Any]:
    """The parameters of the named statements for ``q`` but the span's (``lo``, ``hi``)
    and ``limit``."""
    params: dict[str, Any] = {
        "vessels": vessels, "sample": q.sample_seconds, "narrow": False,
        "after_t": after and after.t, "after_vessel": after and after.vessel,
        "after_lat": after and after.lat, "after_lon": after and after.lon}
    params.update(_box_params(q.bbox))
    return params


def statement_for(q: Query, vessels: list[int] | None) -> str:
    """Which named statement reads ``q``: every report; (an interval that is a whole number
    of hours, unless a few vessels and no box) the hourly summary; (a few vessels, an
    interval of at least :data:`PROBE_SECONDS`) one index probe per vessel and interval;
    else every report then the first of each interval.

    A few vessels without a box take the probes at whole hours too: each probe's first row
    is the answer, one key descent an interval (a day: 1 against the summary's 24 rows).
    With a box a probe walks the interval's reports until one is inside (every report of
    an hour the vessel spent outside), where the summary skips the hours whose box misses
    and answers those inside it without reading a report (BENCHMARKS.md)."""
    if not q.sample_seconds:
        return "tracks.reports"
    few = vessels is not None and len(vessels) <= PROBE_VESSELS
    if q.sample_seconds % SUMMARY_SECONDS == 0 and not (few and q.bbox is None):
        return "tracks.reports_summarised"
    if few and q.sample_seconds >= PROBE_SECONDS:
        return "tracks.reports_probed"
    return "tracks.reports_sampled"


def _bucket_start(t: datetime, seconds: int) -> datetime:
    epoch = int(t.timestamp()) // seconds * seconds
    return datetime.fromtimestamp(epoch, UTC)


class _Identities:
    """Vessel -> identifiers, fetched for each batch of new vessels."""

    def __init__(self, conn: db.Connection) -> None:
        self.conn = conn
        self.known: dict[int, dict[str, str]] = {}

    def fill(self, vessels: set[int]) -> None:
        missing = [v for v in vessels if v not in self.known]
        if not missing:
            return
        for v in missing:
            self.known[v] = {}
        for r in self.conn.execute(db.query("tracks.identifiers_of"),
                                   {"vessels": missing}).fetchall():
            self.known[r["vessel_id"]][r["key"]] = r["value"]


def _row(r: tuple[Any, ...], idents: dict[int, dict[str, str]]) -> Row:
    t, vessel, lat, lon, sog, cog, heading, status, rot, latency, source, cls = r
    return {"time": t, "vessel": vessel, "ids": idents[vessel], "lat": lat, "lon": lon,
            "sog": None if sog is None else sog / 10, "cog": None if cog is None else cog / 10,
            "heading": None if heading is None else heading / 10, "nav_status": status,
            "rot": rot, "latency": latency, "source": source, "ais_class": cls}


def run(conn: db.Connection, q: Query, *, limit: int | None = None,
        token: str | None = None, fetch: int = FETCH, statement: str | None = None) -> Page:
    """The rows of ``q`` (after ``token``), at most ``limit``, streamed from server-side
    cursors on ``conn`` (which must not be in autocommit mode). ``page.next_token`` is set
    once the rows are consumed, when the limit cut the result. ``statement`` forces a named
    statement instead of :func:`statement_for`'s choice (tests compare the routes)."""
    after = decode_token(q, token) if token else None
    page = Page(iter(()))
    page.rows = _rows(conn, q, limit, after, fetch, page, statement)
    return page


def _rows(conn: db.Connection, q: Query, limit: int | None, after: After | None, fetch: int,
          page: Page, forced: str | None) -> Iterator[Row]:
    vessels: list[int] | None = None
    if q.ids:
        vessels = _vessels(conn, q.ids)
        if not vessels:
            return
    lo, hi = q.start or MIN_T, q.end or MAX_T
    if after is not None:
        floor = _bucket_start(after.t, q.sample_seconds) if q.sample_seconds else after.t
        lo = max(lo, floor)
    if lo > hi:
        return
    params = params_for(q, vessels, after)
    statement = db.query(forced or statement_for(q, vessels))
    idents = _Identities(conn)
    left = None if limit is None else limit + 1  # one more: is there a next page?
    last: Row | None = None
    for span_lo, span_hi in _chunks(conn, q, lo, hi, by_day=vessels is None):
        with conn.cursor(name="tracks_query", row_factory=db.tuple_row) as cur:
            cur.execute(statement, {**params, "lo": span_lo, "hi": span_hi, "limit": left,
                                    "narrow": narrow(span_lo, span_hi)})
            size = min(fetch, FIRST_FETCH) if last is None else fetch
            while batch := cur.fetchmany(size):
                idents.fill({r[1] for r in batch})
                for r in batch:
                    if left is not None and page.count == limit:
                        assert last is not None
                        page.next_token = encode_token(q, After(
                            last["time"], last["vessel"], last["lat"], last["lon"]))
                        return
                    last = _row(r, idents.known)
                    page.count += 1
                    if left is not None:
                        left -= 1
                    yield last
                if len(batch) < size:
                    break  # the span is done: no round trip for an empty fetch
                size = fetch
        if left == 0:
            return


def sample_first(reports: list[tuple[int, datetime, float, float]],
                 seconds: int) -> list[tuple[int, datetime, float, float]]:
    """The pure-Python twin of the sampling rule, for tests: of (vessel, t, lat, lon) rows,
    each vessel's first row (by t, lat, lon) in each interval counted from the epoch, in
    (t, vessel, lat, lon) order."""
    first: dict[tuple[int, int], tuple[int, datetime, float, float]] = {}
    for row in sorted(reports, key=lambda r: (r[1], r[2], r[3])):
        epoch = row[1].timestamp()
        first.setdefault((row[0], int(epoch // seconds)), row)
    return sorted(first.values(), key=lambda r: (r[1], r[0], r[2], r[3]))

