"""Reading histograms back: one (tile, hour) as JSON, and the FlatBuffers export."""

from __future__ import annotations

from pathlib import Path

from renderer import tiles
from renderer.binning import duration_code
from renderer.db import Database
from renderer.formats.histograms import HistogramRow, decode_histogram
from renderer.storage import open_store
from renderer.traffic.histogram_export import export_histograms, export_key, hour_histogram
from renderer.traffic.ingest import submit
from renderer.traffic.layout import Prefix
from tests.test_traffic_histogram import HOUR, SEG, TILE, reporter_csv, work

NEXT = (9 << 25) | (TILE << 3)
OTHER = (4 << 25) | (TILE << 3)


def _ingest(db: Database, root: Path) -> None:
    start = HOUR * 3600
    rows = [
        f"{SEG},,600,2,100,20,{start + 5},{start + 605},r,AUTO",
        f"{SEG},70368744177663,600,1,100,20,{start + 5},{start + 605},r,AUTO",
        f"{SEG},{NEXT},30,1,100,0,{start + 5},{start + 35},r,AUTO",
        f"{SEG},{NEXT},31,4,100,0,{start + 5},{start + 36},r,AUTO",
        f"{OTHER},{NEXT},12,1,50,0,{start + 5},{start + 17},r,BUS",
    ]
    folder = root / Prefix(0, TILE, HOUR).folder
    folder.mkdir(parents=True)
    (folder / "a.csv").write_bytes(reporter_csv(*rows))
    later = root / Prefix(0, TILE, HOUR + 30).folder
    later.mkdir(parents=True)
    (later / "b.csv").write_bytes(reporter_csv(
        f"{SEG},,45,1,100,0,{(HOUR + 30) * 3600},{(HOUR + 30) * 3600 + 45},r,AUTO"))
    with db.connect() as conn:
        submit(conn, str(root), after="keep")
        conn.commit()
    assert work(db.url).failed == 0


def test_one_hour_as_json(db: Database, tmp_path: Path) -> None:
    _ingest(db, tmp_path)
    with db.connect() as conn:
        auto = hour_histogram(conn, tiles.Tile(0, TILE), HOUR, "auto")
        every = hour_histogram(conn, tiles.Tile(0, TILE), HOUR)
    assert (auto["tile"], auto["hour"], auto["mode"]) == ("0/3105", "2016-11-01T18", "AUTO")
    assert auto["observations"] == 8
    [segment] = auto["segments"]
    assert (segment["segment_id"], segment["segment_index"]) == (SEG, 7)
    none, nxt = segment["nexts"]
    assert none["next_segment_id"] is None  # an empty field and 2**46-1 are the same bin
    assert none["bins"] == [{"duration_code": 200, "duration_seconds": 592, "duration_step": 10,
                             "queue_code": 51, "count": 3}]
    assert nxt["next_segment_id"] == NEXT
    assert [(b["duration_code"], b["count"]) for b in nxt["bins"]] == [(30, 1), (31, 4)]
    assert every["mode"] is None and every["observations"] == 9
    assert [s["mode"] for s in every["segments"]] == ["AUTO", "BUS"]
    assert duration_code(600) == 200


def test_export_round_trip(db: Database, tmp_path: Path) -> None:
    _ingest(db, tmp_path / "src")
    store = open_store(str(tmp_path / "out"))
    with db.connect() as conn:
        result = export_histograms(conn, store)
        one_tile = export_histograms(conn, open_store(str(tmp_path / "one")),
                                     tile=tiles.Tile(1, 49862))
        week = export_histograms(conn, open_store(str(tmp_path / "week")),
                                 first_hour=HOUR, end_hour=HOUR + 1)
    assert (result.files, result.rows, result.observations) == (2, 5, 10)
    assert (one_tile.files, week.files) == (0, 1)
    assert [o.key for o in store.list()] == ["2016/11/01/18/0/3105.fb", "2016/11/03/00/0/3105.fb"]
    decoded = decode_histogram(store.get(export_key(tiles.Tile(0, TILE), HOUR)))
    assert (decoded.level, decoded.index, decoded.hour) == (0, TILE, HOUR)
    assert decoded.rows == (
        HistogramRow("AUTO", SEG, None, 200, 51, 3),
        HistogramRow("AUTO", SEG, NEXT, 30, 0, 1),
        HistogramRow("AUTO", SEG, NEXT, 31, 0, 4),
        HistogramRow("BUS", OTHER, NEXT, 12, 0, 1),
    )
