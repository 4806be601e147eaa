"""The any-mix query against a brute-force Python filter over the same generated reports:
identifiers, box, time range and sampling alone and together, time order, pages by token;
the sampling rule's pure-Python twin against the SQL on adversarial reports."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from renderer.db import Database
from renderer.errors import InputError
from renderer.tracks import sample
from renderer.tracks import sample as sample_module
from renderer.tracks.formats import Report
from renderer.tracks.ingest import ingest
from renderer.tracks.query import (
    FIRST_FETCH,
    SAMPLES,
    Query,
    _chunks,
    narrow,
    run,
    sample_first,
    statement_for,
)
from tests.conftest import truncate_all

Key = tuple[int, datetime, float, float]  # (mmsi, t, lat, lon)
START = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def dataset(database_url: str, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[tuple[Database, list[Report]]]:
    """Generated reports of 12 vessels over 3 days, ingested once for the module."""
    reports = sample.generate(vessels=12, days=3, seed=21)
    folder = tmp_path_factory.mktemp("tracks-query")
    sample.write(reports, folder, "csv", per_file=4000)
    db = Database(database_url)
    truncate_all(database_url)
    ingest(db, [str(folder)])
    yield db, reports
    truncate_all(database_url)


def _t(r: Report) -> datetime:
    return datetime.fromtimestamp(r.time_ms / 1000, UTC)


def brute(reports: list[Report], q: Query) -> list[Key]:
    """The query by hand: filter, sample with the twin, order by (t, vessel, lat, lon).
    Vessels are numbered by mmsi here, so ties order by mmsi as the vessel numbers do only
    up to a permutation: compare as (t, mmsi, lat, lon) after sorting both the same way."""
    wanted = set(q.ids)
    vessels_of_ids = {dict(r.ids)["mmsi"] for r in reports if wanted & set(r.ids)}
    picked: dict[Key, None] = {}
    for r in reports:
        mmsi = dict(r.ids)["mmsi"]
        t = _t(r)
        if q.ids and mmsi not in vessels_of_ids:
            continue
        if q.bbox and not (q.bbox[0] <= r.lat <= q.bbox[2] and in_lon(q.bbox, r.lon)):
            continue
        if (q.start and t < q.start) or (q.end and t > q.end):
            continue
        picked[(int(mmsi), t, r.lat, r.lon)] = None
    keys = list(picked)
    if q.sample_seconds:
        keys = sample_first(keys, q.sample_seconds)
    return sorted(keys, key=lambda k: (k[1], k[0], k[2], k[3]))


def in_lon(box: tuple[float, float, float, float], lon: float) -> bool:
    """Inside the box's longitudes, which wrap past 180 when min > max."""
    if box[1] <= box[3]:
        return box[1] <= lon <= box[3]
    return lon >= box[1] or lon <= box[3]


def ours(db: Database, q: Query, **kwargs: object) -> list[Key]:
    with db.connect() as conn:
        page = run(conn, q, **kwargs)  # type: ignore[arg-type]
        got = [(int(r["ids"]["mmsi"]), r["time"], r["lat"], r["lon"]) for r in page.rows]
    times = [k[1] for k in got]
    assert times == sorted(times)  # time order as it streams
    return sorted(got, key=lambda k: (k[1], k[0], k[2], k[3]))


def test_the_issue_example_shape(dataset: tuple[Database, list[Report]]) -> None:
    db, reports = dataset
    q = Query.parse(ids=["mmsi=503000003"], bbox="-50,100,40,180", start="2026-12-01",
                    end="2026-12-31", sample="1h")
    expected = brute(reports, q)
    assert expected
    assert ours(db, q) == expected


MIXES = [
    {},
    {"ids": ["mmsi=503000001"]},
    {"ids": ["mmsi=503000001", "mmsi=503000005"]},
    {"ids": ["imo=9300007"]},  # a second identifier reaches the vessel's every report
    {"ids": ["mmsi=999"]},
    {"bbox": "-45,110,-10,160"},
    {"start": "2026-12-02"},
    {"end": "2026-12-01T12:00:00Z"},
    {"start": "2026-12-02T06:00:00Z", "end": "2026-12-02T18:00:00Z"},
    {"sample": "1h"},
    {"sample": "1d"},
    {"bbox": "-45,110,-10,160", "start": "2026-12-02", "end": "2026-12-02", "sample": "15m"},
    {"ids": ["mmsi=503000002"], "bbox": "-45,110,-10,160"},
    {"ids": ["mmsi=503000002"], "start": "2026-12-02", "sample": "30m"},
    {"ids": ["mmsi=503000007"], "bbox": "-90,-180,90,180", "end": "2026-12-03",
     "sample": "4h"},
]


@pytest.mark.parametrize("mix", MIXES, ids=lambda m: ",".join(sorted(m)) or "all")
def test_any_mix_equals_the_brute_force_filter(dataset: tuple[Database, list[Report]],
                                               mix: dict[str, object]) -> None:
    db, reports = dataset
    q = Query.parse(**mix)  # type: ignore[arg-type]
    assert ours(db, q) == brute(reports, q)


boxes = st.tuples(st.floats(-60, 40), st.floats(60, 180), st.floats(1, 60),
                  st.floats(1, 80)).map(
    lambda b: f"{b[0]},{b[1]},{min(90, b[0] + b[2])},{min(180, b[1] + b[3])}")
hours = st.integers(0, 72).map(lambda h: (START + timedelta(hours=h)).isoformat())


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ids=st.lists(st.integers(0, 13).map(lambda n: f"mmsi={503000000 + n}"), max_size=2),
       bbox=st.none() | boxes, start=st.none() | hours, end=st.none() | hours,
       sample=st.none() | st.sampled_from(sorted(SAMPLES)))
def test_random_mixes_equal_the_brute_force_filter(
        dataset: tuple[Database, list[Report]], ids: list[str], bbox: str | None,
        start: str | None, end: str | None, sample: str | None) -> None:
    db, reports = dataset
    if start and end and start > end:
        start, end = end, start
    q = Query.parse(ids=ids, bbox=bbox, start=start, end=end, sample=sample)
    assert ours(db, q) == brute(reports, q)


@pytest.mark.parametrize("mix", [{"bbox": "-45,110,-10,160", "sample": "5m"},
                                 {"ids": ["mmsi=503000004"]}, {}])
def test_pages_by_token_add_up_to_the_whole(dataset: tuple[Database, list[Report]],
                                            mix: dict[str, object]) -> None:
    db, _ = dataset
    q = Query.parse(**mix)  # type: ignore[arg-type]
    whole = ours(db, q)
    pages: list[Key] = []
    token = None
    with db.connect() as conn:
        for _ in range(10_000):
            page = run(conn, q, limit=777, token=token)
            got = [(int(r["ids"]["mmsi"]), r["time"], r["lat"], r["lon"]) for r in page.rows]
            assert len(got) <= 777
            pages.extend(got)
            token = page.next_token
            if token is None:
                break
            assert len(got) == 777
    assert sorted(pages, key=lambda k: (k[1], k[0], k[2], k[3])) == whole


def test_a_token_resumes_only_its_own_query(dataset: tuple[Database, list[Report]]) -> None:
    db, _ = dataset
    q = Query.parse(sample="1h")
    with db.connect() as conn:
        page = run(conn, q, limit=5)
        list(page.rows)
        assert page.next_token
        with pytest.raises(InputError, match="another query"):
            run(conn, Query.parse(sample="2h"), token=page.next_token)
        with pytest.raises(InputError, match="malformed"):
            run(conn, q, token="nonsense")


def test_probed_sampling_pages_by_token(dataset: tuple[Database, list[Report]]) -> None:
    db, reports = dataset
    q = Query.parse(ids=["mmsi=503000004", "mmsi=503000006"], bbox="-90,-180,90,180",
                    sample="30m")
    assert statement_for(q, [1, 2]) == "tracks.reports_probed"
    whole = ours(db, q)
    assert whole == brute(reports, q) and len(whole) > 20
    pages: list[Key] = []
    token = None
    with db.connect() as conn:
        while True:
            page = run(conn, q, limit=7, token=token)
            pages.extend((int(r["ids"]["mmsi"]), r["time"], r["lat"], r["lon"])
                         for r in page.rows)
            token = page.next_token
            if token is None:
                break
    assert sorted(pages, key=lambda k: (k[1], k[0], k[2], k[3])) == whole


class _CountingFetches:
    """A connection whose server-side cursors record (rows asked, rows got) per fetch."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.fetches: list[tuple[int, int]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)

    def cursor(self, *args: Any, **kwargs: Any) -> Any:
        cur = self.conn.cursor(*args, **kwargs)
        fetches = self.fetches

        class Cursor:
            def __enter__(self) -> Cursor:
                cur.__enter__()
                return self

            def __exit__(self, *exc: Any) -> Any:
                return cur.__exit__(*exc)

            def execute(self, *a: Any, **k: Any) -> Any:
                return cur.execute(*a, **k)

            def fetchmany(self, size: int) -> Any:
                rows = cur.fetchmany(size)
                fetches.append((size, len(rows)))
                return rows

        return Cursor()


def test_the_first_fetch_is_small_and_a_short_one_ends_the_span(
        dataset: tuple[Database, list[Report]]) -> None:
    """The first rows come from a small fetch (sent sooner), later ones in big fetches;
    a fetch that returns fewer rows than asked ends its span without another round trip
    (before: a fetch of 2,000 for the first row, and an empty fetch closing every span)."""
    db, _ = dataset
    few = Query.parse(ids=["mmsi=503000004"], sample="1d")  # one span, 3 rows
    many = Query.parse(ids=["mmsi=503000004"])  # one span, thousands of rows
    with db.connect() as conn:
        counting = _CountingFetches(conn)
        rows = list(run(counting, few).rows)  # type: ignore[arg-type]
        assert counting.fetches == [(FIRST_FETCH, len(rows))] and 0 < len(rows) < FIRST_FETCH
        counting.fetches.clear()
        rows = list(run(counting, many, fetch=150).rows)  # type: ignore[arg-type]
    assert len(rows) > 150 + FIRST_FETCH
    assert counting.fetches[0] == (FIRST_FETCH, FIRST_FETCH)
    assert all(asked == 150 for asked, _ in counting.fetches[1:])
    assert sum(got for _, got in counting.fetches) == len(rows)
    assert counting.fetches[-1][1] < 150  # the short fetch was the last


@pytest.mark.parametrize(("sample", "first"), [(None, timedelta(minutes=10)),
                                               ("5m", timedelta(minutes=10)),
                                               ("30m", timedelta(minutes=30)),
                                               ("1h", timedelta(hours=1))])
def test_an_area_query_s_first_span_is_ten_minutes_or_an_interval(
        dataset: tuple[Database, list[Report]], sample: str | None, first: timedelta) -> None:
    """The first statement of an area query reads ten minutes (or one sampling interval,
    whichever is longer, so that no interval is cut), and is narrow: its rows are found by
    time; then a span a day (before: the first span was an hour for every query)."""
    db, _ = dataset
    q = Query.parse(bbox="-45,110,-10,160", sample=sample, start="2026-12-01T00:00:00Z",
                    end="2026-12-02T23:59:59Z")
    assert q.start is not None and q.end is not None
    with db.connect() as conn:
        spans = _chunks(conn, q, q.start, q.end, by_day=True)
    assert spans[0] == (START, START + first - timedelta(microseconds=1))
    assert spans[1][0] == START + first and spans[2][0] == START + timedelta(days=1)
    assert narrow(*spans[0]) and not any(narrow(*s) for s in spans[1:])


def test_bad_parameters_name_the_fix() -> None:
    with pytest.raises(InputError, match="KEY=VALUE"):
        Query.parse(ids=["503000001"])
    with pytest.raises(InputError, match="four numbers"):
        Query.parse(bbox="1,2,3")
    with pytest.raises(InputError, match="MINLAT"):
        Query.parse(bbox="10,170,-10,-170")
    with pytest.raises(InputError, match="not offered"):
        Query.parse(sample="3h")
    with pytest.raises(InputError, match="after"):
        Query.parse(start="2026-12-02", end="2026-12-01")


def _report(mmsi: int, t: datetime, lat: float, lon: float) -> Report:
    return Report(ids=(("mmsi", str(mmsi)),), time_ms=int(t.timestamp() * 1000), lat=lat,
                  lon=lon)


# Times near bucket edges: whole hours and days, plus and minus a millisecond.
edge_times = st.tuples(st.integers(0, 47), st.sampled_from([-1, 0, 1, 1799_999, 1800_000])
                       ).map(lambda p: START + timedelta(hours=p[0], milliseconds=p[1] + 1))


@settings(max_examples=20, suppress_health_check=[HealthCheck.function_scoped_fixture],
          deadline=None)
@given(points=st.lists(st.tuples(st.integers(1, 3), edge_times, st.integers(0, 3),
                                 st.integers(0, 3)), min_size=1, max_size=40),
       sample=st.sampled_from(["1s", "30s", "1m", "15m", "1h", "12h", "1d"]))
def test_sampling_twin_equals_the_sql(db: Database, tmp_path: Path,
                                      points: list[tuple[int, datetime, int, int]],
                                      sample: str) -> None:
    truncate_all(db.url)
    reports = [_report(m, t, -33 + la / 10, 151 + lo / 10) for m, t, la, lo in points]
    path = tmp_path / f"{abs(hash(tuple(points)))}.ndjson"
    sample_module.write_ndjson(reports, path)
    ingest(db, [str(path)])
    q = Query.parse(sample=sample)
    assert ours(db, q) == brute(reports, q)


def test_a_box_crossing_the_antimeridian_is_two_spans(db: Database, tmp_path: Path) -> None:
    truncate_all(db.url)
    lons = [-180.0, -179.5, -170.0, -169.9, 0.0, 169.9, 170.0, 179.5, 180.0]
    reports = [_report(503000001 + i % 3, START + timedelta(minutes=i), 5.0, lon)
               for i, lon in enumerate(lons)]
    path = tmp_path / "antimeridian.ndjson"
    sample_module.write_ndjson(reports, path)
    ingest(db, [str(path)])
    q = Query.parse(bbox="-10,170,10,-170")
    found = ours(db, q)
    assert found == brute(reports, q)
    assert sorted(k[3] for k in found) == [-180.0, -179.5, -170.0, 170.0, 179.5, 180.0]
    for q in (Query.parse(bbox="-10,170,10,-170", sample="1d"),  # reports_summarised
              Query.parse(ids=["mmsi=503000001", "mmsi=503000002"], bbox="-10,170,10,-170",
                          sample="1h"),  # reports_summarised by the vessels' key
              Query.parse(ids=["mmsi=503000001", "mmsi=503000002"], bbox="-10,170,10,-170",
                          sample="30m")):  # reports_probed (a few vessels, coarse)
        assert ours(db, q) == brute(reports, q)


