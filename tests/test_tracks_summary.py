"""The hourly summary (tracks_summary) against the reports it summarises: sampled queries at
1 h and coarser read it (``tracks.reports_summarised``) and must return what reading every
report does (``tracks.reports_sampled``), for every such interval and filter mix, after
late reports land in a summarised day and after two vessels are merged."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from renderer.db import Database
from renderer.db import query as db_query
from renderer.tracks import sample
from renderer.tracks.formats import Report
from renderer.tracks.ingest import ingest
from renderer.tracks.query import (
    SAMPLES,
    SUMMARY_SECONDS,
    Query,
    narrow,
    params_for,
    run,
    statement_for,
)
from tests.conftest import truncate_all

START = datetime(2026, 12, 1, tzinfo=UTC)
COARSE = [name for name, seconds in SAMPLES.items() if seconds % SUMMARY_SECONDS == 0]
Key = tuple[int, datetime, float, float]


def _routes(db: Database, q: Query, **kwargs: Any) -> tuple[list[Key], list[Key]]:
    """The rows of ``q`` through the summary and through every report, in streamed order."""
    got = []
    for statement in ("tracks.reports_summarised", "tracks.reports_sampled"):
        with db.connect() as conn:
            got.append([(r["vessel"], r["time"], r["lat"], r["lon"])
                        for r in run(conn, q, statement=statement, **kwargs).rows])
    return got[0], got[1]


def _summary_is_fresh(db: Database) -> None:
    """The kept summary equals one computed now from every report."""
    with db.connect() as conn:
        kept = conn.execute("SELECT hour, vessel_id, t, t_last, area::text, lat, lon"
                            " FROM tracks_summary ORDER BY 1, 2").fetchall()
        fresh = conn.execute("""
            SELECT DISTINCT ON (vessel_id, h) h AS hour, vessel_id, t,
                   max(t) OVER w AS t_last,
                   box(point(min(lon) OVER w, min(lat) OVER w),
                       point(max(lon) OVER w, max(lat) OVER w))::text AS area, lat, lon
            FROM (SELECT *, date_bin('1 hour', t, timestamptz 'epoch') AS h
                  FROM tracks_reports) r
            WINDOW w AS (PARTITION BY vessel_id, h)
            ORDER BY vessel_id, h, t, lat, lon""").fetchall()
    assert kept == sorted(fresh, key=lambda r: (r["hour"], r["vessel_id"]))


@pytest.fixture(scope="module")
def dataset(database_url: str, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Database]:
    """Generated reports of 12 vessels over 3 days in files of 3,000, in arrival order:
    a day's first file is loaded bare, the next ones go through the live path."""
    reports = sample.generate(vessels=12, days=3, seed=5)
    folder = tmp_path_factory.mktemp("tracks-summary")
    sample.write(reports, folder, "csv", per_file=3000)
    db = Database(database_url)
    truncate_all(database_url)
    ingest(db, [str(folder)])
    yield db
    truncate_all(database_url)


MIXES: list[dict[str, Any]] = [
    {},
    {"bbox": "-45,110,-10,160"},
    {"bbox": "-28,152,-27.38,153.17"},  # a corner at a port: hours in, out and across
    {"start": "2026-12-01T05:17:00Z", "end": "2026-12-02T19:41:30Z"},  # cut hours
    {"bbox": "-45,110,-10,160", "start": "2026-12-02T00:30:00Z", "end": "2026-12-02"},
    {"bbox": "-10,170,10,-170"},  # across the antimeridian
    {"ids": ["mmsi=503000001", "mmsi=503000002"], "bbox": "-50,100,0,180"},
]


@pytest.mark.parametrize("sample_name", COARSE)
@pytest.mark.parametrize("mix", MIXES, ids=lambda m: ",".join(sorted(m)) or "all")
def test_the_summary_route_equals_reading_every_report(
        dataset: Database, mix: dict[str, Any], sample_name: str) -> None:
    q = Query.parse(sample=sample_name, **mix)
    summarised, every = _routes(dataset, q)
    assert summarised == every
    assert every or mix.get("bbox") == "-10,170,10,-170"


def test_the_kept_summary_is_the_summary_of_the_reports(dataset: Database) -> None:
    _summary_is_fresh(dataset)


def test_area_queries_at_whole_hours_take_the_summary() -> None:
    assert statement_for(Query.parse(bbox="0,0,1,1", sample="1h"), None) \
        == "tracks.reports_summarised"
    assert statement_for(Query.parse(sample="1d"), list(range(20))) \
        == "tracks.reports_summarised"
    assert statement_for(Query.parse(sample="30m"), None) == "tracks.reports_sampled"
    assert statement_for(Query.parse(ids=["mmsi=1"], sample="1h"), [1]) \
        == "tracks.reports_probed"
    # a few vessels in a box: the summary skips the hours outside it, a probe walks them
    assert statement_for(Query.parse(ids=["mmsi=1"], bbox="0,0,1,1", sample="1h"), [1]) \
        == "tracks.reports_summarised"
    assert statement_for(Query.parse(ids=["mmsi=1"], bbox="0,0,1,1", sample="30m"), [1]) \
        == "tracks.reports_probed"


def test_pages_through_the_summary_add_up(dataset: Database) -> None:
    q = Query.parse(bbox="-45,110,-10,160", sample="2h")
    whole, _ = _routes(dataset, q)
    pages: list[Key] = []
    token = None
    with dataset.connect() as conn:
        while True:
            page = run(conn, q, limit=13, token=token)
            pages.extend((r["vessel"], r["time"], r["lat"], r["lon"]) for r in page.rows)
            if (token := page.next_token) is None:
                break
    assert pages == whole and len(whole) > 26


def _plan(conn: Any, statement: str, q: Query, vessels: list[int] | None) -> str:
    return "\n".join(r["QUERY PLAN"] for r in conn.execute(
        "EXPLAIN (COSTS OFF) " + db_query(statement),
        {**params_for(q, vessels), "lo": START, "hi": START + timedelta(days=3),
         "limit": None}).fetchall())


def test_the_summary_of_a_few_vessels_is_read_by_their_key(dataset: Database) -> None:
    """With vessels, the summary's rows are found by its key (vessel_id, hour) and the box
    tested on them; the GiST on the hours' boxes, which finds every vessel's hours in the
    box (24k rows a day at 100M reports for one vessel's 24), is for area queries only."""
    box = "-45,110,-10,160"
    with dataset.connect() as conn:
        conn.execute("SET enable_seqscan = off")
        by_id = _plan(conn, "tracks.reports_summarised",
                      Query.parse(ids=["mmsi=503000001"], bbox=box, sample="1h"), [1])
        by_area = _plan(conn, "tracks.reports_summarised", Query.parse(bbox=box, sample="1h"),
                        None)
    assert "_area_idx" in by_area, by_area
    assert "_area_idx" not in by_id and "_pkey" in by_id, by_id


def _report(mmsi: int, t: datetime, lat: float, lon: float) -> Report:
    return Report(ids=(("mmsi", str(mmsi)),), time_ms=int(t.timestamp() * 1000), lat=lat,
                  lon=lon)


def _ingest(db: Database, tmp_path: Path, name: str, reports: list[Report]) -> None:
    path = tmp_path / f"{name}.ndjson"
    sample.write_ndjson(reports, path)
    ingest(db, [str(path)])


def test_late_reports_into_a_summarised_day_keep_it_right(db: Database,
                                                          tmp_path: Path) -> None:
    truncate_all(db.url)
    hour = START + timedelta(hours=5)
    _ingest(db, tmp_path, "first", [_report(503000001, hour + timedelta(minutes=m), -33.0,
                                            151.0 + m / 100) for m in range(10, 50, 5)])
    box = Query.parse(bbox="-34,150,-32,151.05", sample="1h")
    before = _routes(db, box)
    # late: earlier in the hour and outside the box (the stored first is no longer first,
    # the hour's box widens past the query's), and a report into an hour that had none
    _ingest(db, tmp_path, "late", [
        _report(503000001, hour + timedelta(minutes=2), -20.0, 160.0),
        _report(503000001, hour + timedelta(minutes=7), -33.5, 151.04),
        _report(503000001, hour + timedelta(hours=3), -33.5, 151.0)])
    _summary_is_fresh(db)
    after = _routes(db, box)
    assert after[0] == after[1] != before[1]
    assert [k[1] for k in after[0]] == [hour + timedelta(minutes=7), hour + timedelta(hours=3)]
    for name in COARSE:
        q = Query.parse(sample=name)
        assert _routes(db, q)[0] == _routes(db, q)[1]


def test_merged_vessels_keep_the_summary_right(db: Database, tmp_path: Path) -> None:
    truncate_all(db.url)
    _ingest(db, tmp_path, "a", [_report(503000001, START + timedelta(minutes=10 * i), -33.0,
                                        151.0) for i in range(12)])
    _ingest(db, tmp_path, "b", [
        Report(ids=(("imo", "9300001"),),
               time_ms=int((START + timedelta(hours=1, minutes=5 + 10 * i)).timestamp() * 1000),
               lat=-34.0, lon=152.0) for i in range(12)])
    link = Report(ids=(("mmsi", "503000001"), ("imo", "9300001")),
                  time_ms=int((START + timedelta(hours=9)).timestamp() * 1000), lat=-35.0,
                  lon=153.0)
    _ingest(db, tmp_path, "link", [link])
    _summary_is_fresh(db)
    summarised, every = _routes(db, Query.parse(sample="1h"))
    assert summarised == every and {k[0] for k in every} == {1}
    assert [(k[1].hour, k[1].minute) for k in every] == [(0, 0), (1, 0), (2, 5), (9, 0)]


# Times near hour edges: whole hours, plus and minus a millisecond, and mid-hour.
edge_times = st.tuples(st.integers(0, 47), st.sampled_from([-1, 0, 1, 1799_999, 1800_000])
                       ).map(lambda p: START + timedelta(hours=p[0], milliseconds=p[1] + 1))
points = st.lists(st.tuples(st.integers(1, 3), edge_times, st.integers(0, 4),
                            st.integers(0, 4)), min_size=1, max_size=30)


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture],
          deadline=None)
@given(first=points, late=points, sample_name=st.sampled_from(COARSE),
       box=st.none() | st.tuples(st.integers(0, 4), st.integers(0, 4), st.integers(0, 4),
                                 st.integers(0, 4)),
       start=st.none() | edge_times, end=st.none() | edge_times)
def test_random_reports_and_late_ones_give_the_same_rows_both_ways(
        db: Database, tmp_path: Path, first: list[tuple[int, datetime, int, int]],
        late: list[tuple[int, datetime, int, int]], sample_name: str,
        box: tuple[int, int, int, int] | None, start: datetime | None,
        end: datetime | None) -> None:
    truncate_all(db.url)
    for name, batch in (("first", first), ("late", late)):
        _ingest(db, tmp_path, f"{name}{abs(hash((tuple(first), tuple(late))))}",
                [_report(503000000 + m, t, -33 + la / 10, 151 + lo / 10)
                 for m, t, la, lo in batch])
    _summary_is_fresh(db)
    bbox = None
    if box is not None:
        lat0, lat1 = sorted((box[0], box[1]))
        lon0, lon1 = sorted((box[2], box[3]))
        bbox = f"{-33 + lat0 / 10},{151 + lon0 / 10},{-33 + lat1 / 10},{151 + lon1 / 10}"
    if start and end and start > end:
        start, end = end, start
    q = Query.parse(sample=sample_name, bbox=bbox, start=start and start.isoformat(),
                    end=end and end.isoformat())
    summarised, every = _routes(db, q)
    assert summarised == every


def test_an_hour_a_hair_outside_the_box_is_probed(db: Database, tmp_path: Path) -> None:
    """PostgreSQL compares boxes with a tolerance of 1e-6 (box <@ box) but a point in a box
    exactly: an hour whose box pokes 1e-7 degrees out of the query's must be probed, not
    answered with its stored first report."""
    truncate_all(db.url)
    hour = START + timedelta(hours=3)
    _ingest(db, tmp_path, "hair", [_report(503000001, hour + timedelta(minutes=1), -33.0,
                                           151.0000001),
                                   _report(503000001, hour + timedelta(minutes=2), -33.0,
                                           150.9)])
    q = Query.parse(bbox="-34,150,-32,151", sample="1h")
    summarised, every = _routes(db, q)
    assert [k[3] for k in every] == [150.9]
    assert summarised == every


def _three_days(db: Database, tmp_path: Path) -> None:
    """Two vessels reporting every 20 minutes for three days (a partition a day)."""
    truncate_all(db.url)
    _ingest(db, tmp_path, "three-days", [
        _report(503000001 + v, START + timedelta(minutes=20 * i), -33.0 + v, 151.0 + i / 100)
        for v in range(2) for i in range(3 * 72)])


@pytest.mark.parametrize("statement", ["tracks.reports_summarised", "tracks.reports_probed"])
def test_a_span_plans_only_the_partitions_of_its_days(db: Database, tmp_path: Path,
                                                      statement: str) -> None:
    """The reports probed inside the summary's (or the probes') join are bounded by the
    span's constants as well as by the outer row, so a span of the second day plans the
    second day's partition alone, not every day before it (planning time grows with the
    partitions planned: 30 days x 3 indexes on a month)."""
    _three_days(db, tmp_path)
    q = Query.parse(ids=["mmsi=503000001"], bbox="-45,110,-10,160", sample="1h")
    with db.connect() as conn:
        vessels = [r["vessel_id"] for r in conn.execute(
            "SELECT vessel_id FROM tracks_identifiers WHERE value = '503000001'").fetchall()]
        lo = START + timedelta(days=1, hours=2)
        plan = "\n".join(r["QUERY PLAN"] for r in conn.execute(
            "EXPLAIN (COSTS OFF) " + db_query(statement),
            {**params_for(q, vessels), "lo": lo, "hi": lo + timedelta(hours=5),
             "limit": None}).fetchall())
    assert "tracks_reports_20261202" in plan
    assert "tracks_reports_20261201" not in plan and "tracks_reports_20261203" not in plan



@pytest.mark.parametrize(("statement", "spatial"), [
    ("tracks.reports", "_point_idx"), ("tracks.reports_sampled", "_point_idx"),
    ("tracks.reports_summarised", "_area_idx")])
def test_an_area_query_s_first_hour_is_found_by_time(db: Database, tmp_path: Path,
                                                     statement: str, spatial: str) -> None:
    """A narrow span (an area query's first hour) finds its rows by time (the BRIN indexes
    on the 100M benchmark; on these few rows the planner takes the key) and tests the box
    on each; a day span keeps the spatial index. Through the spatial index the first hour
    gathered the box's rows of the whole day first (BENCHMARKS.md)."""
    _three_days(db, tmp_path)
    q = Query.parse(bbox="-45,110,-10,160", sample=None if statement == "tracks.reports"
                    else ("30m" if statement == "tracks.reports_sampled" else "1h"))
    lo = START + timedelta(days=1)
    plans = {}
    with db.connect() as conn:
        conn.execute("SET enable_seqscan = off")
        for span, hi in (("hour", lo + timedelta(hours=1, microseconds=-1)),
                         ("day", lo + timedelta(days=1, microseconds=-1))):
            assert narrow(lo, hi) is (span == "hour")
            plans[span] = "\n".join(r["QUERY PLAN"] for r in conn.execute(
                "EXPLAIN (COSTS OFF) " + db_query(statement),
                {**params_for(q, None), "lo": lo, "hi": hi, "narrow": narrow(lo, hi),
                 "limit": None}).fetchall())
    assert spatial not in plans["hour"], plans["hour"]
    assert spatial in plans["day"], plans["day"]
