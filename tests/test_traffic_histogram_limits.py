"""The histogram stage with rows the histogram cannot store and rows holding a NUL byte: each
such row lands in ``traffic rejects`` with its reason, and the rest of its file, and of its
(tile, hour), is counted.

Before: a count of 2^63 failed the whole item five times (OverflowError in the emission, so
nothing of the tile-hour was stored, nor any reject), and one NUL byte rejected its whole file
as binary.
"""

from __future__ import annotations

from pathlib import Path

from renderer.db import Database
from renderer.traffic.ingest import rejects
from tests.test_traffic_histogram import FOLDER, SEG, START, _submit, reporter_csv, totals, work

COUNT_TOO_LARGE = "count too large (max 4294967295)"
LENGTH_TOO_LARGE = "length too large (max 2147483647 m)"


def _row(count: int = 1, length: str = "100", source: str = "r") -> str:
    return f"{SEG},,30,{count},{length},0,{START + 10},{START + 40},{source},AUTO"


def test_bad_rows_are_rejected_and_the_rest_of_the_tile_hour_counted(
    db: Database, tmp_path: Path
) -> None:
    folder = tmp_path / FOLDER
    folder.mkdir(parents=True)
    (folder / "a.csv").write_bytes(reporter_csv(_row(2), _row(1 << 63), _row(3)))
    (folder / "b.csv").write_bytes(reporter_csv(_row(4), _row(length="99999999999"),
                                                _row(5, source="re\0porter"), _row(6)))
    (folder / "c.csv").write_bytes(reporter_csv(_row(4294967295, length="2147483647")))
    _submit(db, tmp_path, after="keep")
    stats = work(db.url)
    assert (stats.done, stats.failed) == (1, 0)
    with db.connect() as conn:
        ledger = {r["key"].rsplit("/", 1)[1]: r for r in conn.execute(
            "SELECT key, status, reason, rows_read, rows_accepted, rows_rejected, observations"
            " FROM traffic_files")}
        listed = sorted((r["file_key"].rsplit("/", 1)[1], r["line"], r["reason"], r["raw"])
                        for r in rejects(conn))
        stored = totals(conn)
        lengths = conn.execute("SELECT length, observations FROM traffic_segment_lengths"
                               " ORDER BY length").fetchall()
    assert {name: (r["status"], r["reason"]) for name, r in ledger.items()} == {
        "a.csv": ("consumed", None), "b.csv": ("consumed", None), "c.csv": ("consumed", None)}
    assert {name: (r["rows_read"], r["rows_accepted"], r["rows_rejected"], r["observations"])
            for name, r in ledger.items()} == {
        "a.csv": (3, 2, 1, 5), "b.csv": (4, 2, 2, 10), "c.csv": (1, 1, 0, 4294967295)}
    assert listed == [
        ("a.csv", 3, COUNT_TOO_LARGE, _row(1 << 63)),
        ("b.csv", 3, LENGTH_TOO_LARGE, _row(length="99999999999")),
        ("b.csv", 4, "NUL byte", _row(5, source="re\ufffdporter")),
    ]
    assert stored["observations"] == 15 + 4294967295
    assert [(r["length"], r["observations"]) for r in lengths] == [
        (100, 15), (2147483647, 4294967295)]


def test_a_binary_file_is_still_rejected_whole(db: Database, tmp_path: Path) -> None:
    folder = tmp_path / FOLDER
    folder.mkdir(parents=True)
    (folder / "good.csv").write_bytes(reporter_csv(_row(2)))
    (folder / "utf16.csv").write_bytes(reporter_csv(_row(2)).decode().encode("utf-16"))
    _submit(db, tmp_path, after="keep")
    assert work(db.url).failed == 0
    with db.connect() as conn:
        ledger = {r["key"].rsplit("/", 1)[1]: (r["status"], r["reason"]) for r in conn.execute(
            "SELECT key, status, reason FROM traffic_files")}
        assert totals(conn)["observations"] == 2
    assert ledger == {"good.csv": ("consumed", None),
                      "utf16.csv": ("rejected", "not a reporter CSV: binary data")}
