"""The histogram stage: new files of a (tile, hour) -> summed bins, ledger and rejects in one
transaction; archiving after commit; exactly once across crashes, retries and re-submits.

The helpers at the top are shared with the other traffic ingest tests.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
import pytest

from renderer import _binning_py, queue
from renderer.db import Database
from renderer.storage import FileStore
from renderer.tiles import Tile
from renderer.traffic import histogram
from renderer.traffic.histogram_export import hour_histogram
from renderer.traffic.ingest import rejects, submit
from renderer.traffic.layout import Prefix, parse_key, source_store
from renderer.traffic.sample import SampleStats, generate
from renderer.worker import WorkerStats, run_worker
from tests.factories import backdate

HEADER = _binning_py.HEADER.decode()
INGEST_KINDS = ["histogram", "histogram-archive"]


def work(url: str, kinds: list[str] | None = None, **options: Any) -> WorkerStats:
    """Work the ingest kinds in this process until none is pending (speed tiles wait)."""
    return run_worker(url, kinds=kinds or INGEST_KINDS, until_empty=True, **options)


def expected_bins(root: Path) -> Counter[tuple[str, int, int | None, int, int, int]]:
    """(mode, segment, next, duration, queue, hour) -> count over every file in the layout
    under ``root`` (archive excluded), by the pure-Python twin."""
    found: Counter[tuple[str, int, int | None, int, int, int]] = Counter()
    for path in root.rglob("*"):
        key = path.relative_to(root).as_posix()
        prefix = parse_key(key)
        if prefix is None or not path.is_file():
            continue
        data = path.read_bytes()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        result = _binning_py.bin_file(data, prefix.level, prefix.index, prefix.hour)
        for mode, segment, nxt, d, q, count in result.bins:
            found[(mode, segment, nxt, d, q, prefix.hour)] += count
    return found


def stored_bins(conn: psycopg.Connection[Any]) -> Counter[tuple[str, int, int | None, int, int,
                                                                 int]]:
    """Counts per bin (rows of the same bin summed: the histograms are append-only)."""
    rows = conn.execute("SELECT mode, segment_id, next_segment_id, duration_code, queue_code,"
                        " hour, sum(count)::bigint AS count FROM traffic_histograms"
                        " GROUP BY 1, 2, 3, 4, 5, 6").fetchall()
    return Counter({(r["mode"], r["segment_id"], r["next_segment_id"], r["duration_code"],
                     r["queue_code"], r["hour"]): r["count"] for r in rows})


def totals(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """Observations in the histograms and what the ledger and reject tables hold."""
    row = conn.execute(
        "SELECT (SELECT coalesce(sum(count), 0) FROM traffic_histograms)::bigint AS observations,"
        " (SELECT count(*) FROM traffic_histograms) AS bins,"
        " (SELECT count(*) FROM traffic_files) AS files,"
        " (SELECT count(*) FROM traffic_rejects) AS rejects,"
        " (SELECT coalesce(sum(observations), 0) FROM traffic_segment_lengths)::bigint"
        "   AS length_observations").fetchone()
    assert row is not None
    return dict(row)


def reporter_csv(*rows: str, newline: bool = True) -> bytes:
    return ("\n".join([HEADER, *rows]) + ("\n" if newline else "")).encode()


def files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


# --- tests ---------------------------------------------------------------------------------------

TILE = 3105  # level 0, Paris
HOUR = 410562  # 2016-11-01T18
START = HOUR * 3600
SEG = (7 << 25) | (TILE << 3)  # segment 7 of tile 0/3105
FOLDER = Prefix(0, TILE, HOUR).folder


@pytest.fixture
def day(tmp_path: Path) -> SampleStats:
    """One day of two tiles (48 prefixes, 144 files)."""
    return generate(tmp_path / "src", tiles=2, days=1, seed=11)


def _submit(db: Database, root: Path | str, **options: Any) -> Any:
    with db.connect() as conn:
        result = submit(conn, str(root), **options)
        conn.commit()
    return result


def test_every_observation_once_with_rejects_and_lengths(db: Database, day: SampleStats) -> None:
    root = day.root
    expected = expected_bins(root)
    result = _submit(db, root)
    assert (result.files_new, result.prefixes, result.enqueued) == (144, 48, 48)
    stats = work(db.url)
    assert stats.failed == 0
    with db.connect() as conn:
        assert stored_bins(conn) == expected
        t = totals(conn)
        assert t["observations"] == day.observations
        assert t["files"] == day.files
        assert t["rejects"] == day.bad_rows
        ledger = conn.execute(
            "SELECT sum(rows_read) AS r, sum(rows_accepted) AS a, sum(rows_rejected) AS j,"
            " sum(observations) AS o, bool_and(status = 'consumed') AS ok"
            " FROM traffic_files").fetchone()
        assert (ledger["r"], ledger["j"], ledger["o"]) == (day.rows, day.bad_rows,
                                                           day.observations)
        assert ledger["r"] == ledger["a"] + ledger["j"] and ledger["ok"]
        assert t["length_observations"] == day.observations
        lengths = conn.execute("SELECT count(DISTINCT segment_id) AS n, min(length) AS lo,"
                               " max(length) AS hi FROM traffic_segment_lengths").fetchone()
        assert lengths["n"] > 100 and lengths["hi"] > 20 * lengths["lo"]
        listed = rejects(conn)
    assert len(listed) == day.bad_rows
    assert all(r["line"] >= 2 and r["raw"] and r["reason"] for r in listed)
    # each reject names its own file, the raw line is that file's line
    sources = {r["file_key"] for r in listed}
    assert sources <= {k.removeprefix("_archive/") for k in files_under(root)}
    # consumed inputs moved under _archive/ after the commit, nothing else left
    assert all(k.startswith("_archive/") for k in files_under(root))
    assert len(files_under(root)) == day.files


def test_identical_bins_are_summed_across_files(db: Database, tmp_path: Path) -> None:
    folder = tmp_path / FOLDER
    folder.mkdir(parents=True)
    row = f"{SEG},,600,2,100,0,{START + 10},{START + 610},r,AUTO"
    (folder / "a.csv").write_bytes(reporter_csv(row, row))
    (folder / "b.csv.gz").write_bytes(gzip.compress(reporter_csv(row, newline=False)))
    _submit(db, tmp_path, after="keep")
    work(db.url)
    with db.connect() as conn:
        rows = conn.execute("SELECT mode, duration_code, queue_code, count, next_segment_id"
                            " FROM traffic_histograms").fetchall()
    # 600 s is code 200 (class 3, index 8): read back as 592..601 s, not OpenTraffic's 56 s
    assert rows == [{"mode": "AUTO", "duration_code": 200, "queue_code": 0, "count": 6,
                     "next_segment_id": None}]
    assert len(files_under(tmp_path)) == 2  # --after keep


def test_late_files_add_to_the_stored_bins(db: Database, tmp_path: Path) -> None:
    """The first run of a prefix writes its bins; a later one (late data) appends rows beside
    them, which the readers sum, and the ledger keeps the first files from counting again."""
    folder = tmp_path / FOLDER
    folder.mkdir(parents=True)
    row = f"{SEG},,600,{{}},100,0,{START + 10},{START + 610},r,AUTO"
    other = f"{SEG},,30,1,100,0,{START + 10},{START + 40},r,AUTO"
    (folder / "a.csv").write_bytes(reporter_csv(row.format(2)))
    _submit(db, tmp_path, after="keep")
    work(db.url)
    (folder / "b.csv").write_bytes(reporter_csv(row.format(3), other))
    assert _submit(db, tmp_path, after="keep").enqueued == 1
    work(db.url)
    with db.connect() as conn:
        rows = conn.execute("SELECT duration_code, count FROM traffic_histograms"
                            " ORDER BY duration_code, count").fetchall()
        lengths = conn.execute("SELECT * FROM traffic_segment_lengths").fetchall()
        histogram_json = hour_histogram(conn, Tile(0, TILE), HOUR)
    assert [(r["duration_code"], r["count"]) for r in rows] == [(30, 1), (200, 2), (200, 3)]
    bins = histogram_json["segments"][0]["nexts"][0]["bins"]
    assert [(b["duration_code"], b["count"]) for b in bins] == [(30, 1), (200, 5)]
    assert histogram_json["observations"] == 6
    assert [(r["segment_id"], r["length"], r["observations"]) for r in lengths] == [
        (SEG, 100, 6)]


def test_files_rejected_whole_with_the_reason(db: Database, tmp_path: Path) -> None:
    folder = tmp_path / FOLDER
    folder.mkdir(parents=True)
    good = f"{SEG},,30,1,100,0,{START + 10},{START + 40},r,AUTO"
    (folder / "good.csv").write_bytes(reporter_csv(good))
    (folder / "notes.txt").write_text("these are my notes\n")
    (folder / "broken.csv.gz").write_bytes(gzip.compress(reporter_csv(good))[:30])
    (folder / "empty.csv").write_bytes(b"")
    _submit(db, tmp_path, after="delete")
    assert work(db.url).failed == 0
    with db.connect() as conn:
        ledger = {r["key"].rsplit("/", 1)[1]: r for r in conn.execute(
            "SELECT key, status, reason, rows_read FROM traffic_files")}
        listed = rejects(conn)
        assert totals(conn)["observations"] == 1
    assert ledger["good.csv"]["status"] == "consumed"
    assert "header" in ledger["notes.txt"]["reason"]
    assert "gzip" in ledger["broken.csv.gz"]["reason"]
    assert ledger["empty.csv"]["reason"] == "empty file"
    assert {r["status"] for n, r in ledger.items() if n != "good.csv"} == {"rejected"}
    assert {(r["line"], r["raw"]) for r in listed} == {(None, None)}
    assert len(listed) == 3
    assert files_under(tmp_path) == []  # --after delete: every consumed file, rejected too


def test_crash_after_the_upsert_before_commit(db: Database, day: SampleStats,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The attempt fails after writing: nothing is visible, nothing archived, and the retry
    counts every row once."""
    real_write = histogram.histogram_write.write
    crashes = []

    def write_then_crash(*args: Any, **kwargs: Any) -> Any:
        refused = real_write(*args, **kwargs)
        if not crashes:
            crashes.append(1)
            raise RuntimeError("worker crashed after the upsert")
        return refused

    monkeypatch.setattr(histogram.histogram_write, "write", write_then_crash)
    _submit(db, day.root)
    first = work(db.url, max_items=1)
    assert (first.done, first.failed) == (0, 1)
    with db.connect() as conn:
        assert totals(conn)["files"] == 0 and totals(conn)["observations"] == 0
        item = queue.item_history(conn, "histogram", f"0/{TILE}/{day.first_hour}")
        assert item is not None
        backdate(conn, run_after=0)  # skip the backoff
        conn.commit()
    assert not any(k.startswith("_archive/") for k in files_under(day.root))
    assert work(db.url).failed == 0
    with db.connect() as conn:
        assert totals(conn)["observations"] == day.observations
        assert stored_bins(conn) == expected_bins(day.root / "_archive")


def test_a_failure_inside_a_batch_costs_the_others_nothing(
        db: Database, day: SampleStats, monkeypatch: pytest.MonkeyPatch) -> None:
    """Items are claimed many at a time and written together by the stage's end-of-batch
    hook: when that write fails after writing, it is rolled back and each item is written
    alone; the bad one fails with its own error, the others commit once, and the retry
    counts the last one."""
    assert queue.KINDS["histogram"].batch_size > 1
    real_write = histogram.histogram_write.write
    victim = Prefix(0, TILE, day.first_hour + 5)
    seen: list[list[Prefix]] = []

    def write_or_crash(conn: Any, batch: Any) -> Any:
        refused = real_write(conn, batch)
        prefixes = [p.prefix for p in batch]
        seen.append(prefixes)
        if victim in prefixes and sum(victim in s for s in seen) <= 2:
            raise RuntimeError("the write of one item of the batch crashed after writing")
        return refused

    monkeypatch.setattr(histogram.histogram_write, "write", write_or_crash)
    _submit(db, day.root, after="keep")
    stats = work(db.url, kinds=["histogram"])  # until empty: the victim's retry included
    assert (stats.done, stats.failed) == (48, 1)
    with_victim = [s for s in seen if victim in s]
    assert len(with_victim[0]) > 1 and with_victim[1:] == [[victim], [victim]]
    # the batch, then each of its items alone, then the other batches, then the retry
    assert sum(len(s) for s in seen) == len(with_victim[0]) + 48 + 1
    with db.connect() as conn:
        item = queue.item_history(conn, "histogram", victim.key)
        assert item is not None
        assert [(a["attempt"], a["error_type"], a["message"]) for a in item["attempts"]] == [
            (1, "RuntimeError", "the write of one item of the batch crashed after writing")]
        assert stored_bins(conn) == expected_bins(day.root)
        assert totals(conn)["observations"] == day.observations
        assert totals(conn)["length_observations"] == day.observations


def test_crash_after_commit_before_archive(db: Database, day: SampleStats) -> None:
    """Committed, then the worker died before archiving: a retry and a re-submit change
    nothing, and the archive step still runs later."""
    _submit(db, day.root)
    work(db.url, kinds=["histogram"])  # the archive items never ran
    assert len([k for k in files_under(day.root) if not k.startswith("_")]) == day.files
    with db.connect() as conn:
        before = stored_bins(conn)
        store = source_store(str(day.root))
        again = histogram.consume_prefix(conn, store, Prefix(0, TILE, day.first_hour))
        assert again.files == 0
        conn.commit()
    resubmit = _submit(db, day.root)
    assert (resubmit.files_new, resubmit.enqueued) == (0, 0)
    work(db.url)
    with db.connect() as conn:
        assert stored_bins(conn) == before
        assert totals(conn)["observations"] == day.observations
    assert all(k.startswith("_archive/") for k in files_under(day.root))


def test_resubmitting_consumed_files_changes_nothing(db: Database, day: SampleStats) -> None:
    _submit(db, day.root)
    work(db.url)
    # an operator copies the archive back where it came from
    shutil.copytree(day.root / "_archive", day.root, dirs_exist_ok=True)
    result = _submit(db, day.root)
    assert (result.files_listed, result.files_new, result.enqueued) == (day.files, 0, 0)
    assert work(db.url).done == 0
    with db.connect() as conn:
        assert totals(conn)["observations"] == day.observations


def test_new_files_reopen_a_done_prefix(db: Database, day: SampleStats) -> None:
    _submit(db, day.root, after="keep")
    work(db.url)
    assert _submit(db, day.root, after="keep").enqueued == 0
    folder = day.root / Prefix(0, TILE, day.first_hour).folder
    seg = (3 << 25) | (TILE << 3)
    start = day.first_hour * 3600
    (folder / "late.csv").write_bytes(reporter_csv(
        f"{seg},,45,3,120,0,{start + 5},{start + 50},late,BUS"))
    result = _submit(db, day.root, after="keep")
    assert (result.files_new, result.prefixes, result.enqueued) == (1, 1, 1)
    assert work(db.url).done == 1
    with db.connect() as conn:
        assert totals(conn)["observations"] == day.observations + 3
        assert conn.execute(
            "SELECT count FROM traffic_histograms WHERE segment_id = %s AND mode = 'BUS'"
            " AND hour = %s AND duration_code = 45", [seg, day.first_hour]
        ).fetchone()["count"] >= 3


def test_the_stage_lists_a_folder_without_reading_every_file(tmp_path: Path) -> None:
    """The histogram stage reads each new file once: its listing skips the MD5 of files
    dropped by hand, which the stage computes from the bytes it reads."""
    store = FileStore(tmp_path)
    store.put("a/put.csv", b"written through the store")  # etag in the sidecar
    (tmp_path / "a" / "dropped.csv").write_bytes(b"dropped by a reporter")
    cheap = {i.key: i.etag for i in store.list("a/", checksums=False)}
    full = {i.key: i.etag for i in store.list("a/")}
    assert cheap == {"a/put.csv": full["a/put.csv"], "a/dropped.csv": ""}
    assert full["a/dropped.csv"] == hashlib.md5(b"dropped by a reporter").hexdigest()


def test_a_concurrent_second_attempt_fails_instead_of_counting_twice(
        db: Database, day: SampleStats) -> None:
    """A zombie attempt on the same files collides on the ledger's primary key."""
    store = source_store(str(day.root))
    prefix = Prefix(0, TILE, day.first_hour)
    outcome: dict[str, Any] = {}
    with db.connect() as first:
        histogram.consume_prefix(first, store, prefix)  # uncommitted

        def second() -> None:
            with db.connect() as conn:
                try:
                    histogram.consume_prefix(conn, store, prefix)
                    conn.commit()
                    outcome["second"] = "committed"
                except Exception as exc:
                    outcome["second"] = type(exc).__name__

        thread = threading.Thread(target=second)
        thread.start()
        thread.join(timeout=1.0)
        assert thread.is_alive()  # blocked on the first attempt's ledger rows
        first.commit()
    thread.join(timeout=30)
    assert outcome["second"] == "AlreadyExists"  # the ledger's primary key, translated
    with db.connect() as conn:
        files = conn.execute("SELECT count(*) AS n, sum(observations) AS o FROM traffic_files"
                             ).fetchone()
        assert files["o"] == totals(conn)["observations"]
        assert files["n"] == 3


def test_speed_tiles_fan_in_per_mode_and_week(db: Database, day: SampleStats) -> None:
    _submit(db, day.root)
    work(db.url)
    with db.connect() as conn:
        rows = conn.execute("SELECT key, payload FROM work_queue WHERE kind = 'speedtile'"
                            " ORDER BY key").fetchall()
        groups = {r["grp"] for r in conn.execute(
            "SELECT DISTINCT grp FROM work_queue WHERE kind = 'histogram'")}
    assert groups == {"3105/2016-W44"}  # level 1 tile 49862 lies in level 0 tile 3105
    assert [r["key"] for r in rows] == [f"{m}/0/3105/2016-W44" for m in day.modes]
    assert rows[0]["payload"] == {"mode": day.modes[0], "tile": 3105, "week": "2016-W44"}


def test_s3_source(db: Database, s3_endpoint: str, tmp_path: Path) -> None:
    import boto3

    local = generate(tmp_path / "src", tiles=1, days=1, seed=5)
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket="reporters")
    for key in files_under(local.root):
        s3.put_object(Bucket="reporters", Key=f"traffic/{key}",
                      Body=(local.root / key).read_bytes())
    s3.put_object(Bucket="reporters", Key="traffic/README.txt", Body=b"not a reporter file")
    s3.put_object(Bucket="reporters", Key="traffic/1477872000_1477875599/notes.txt", Body=b"")
    result = _submit(db, "s3://reporters/traffic")
    assert (result.files_new, result.files_ignored, result.prefixes) == (local.files, 1, 24)
    assert work(db.url).failed == 0
    with db.connect() as conn:
        assert totals(conn)["observations"] == local.observations
        assert stored_bins(conn) == expected_bins(local.root)
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket="reporters") for o in page.get("Contents", [])]
    assert sorted(keys) == sorted(
        ["traffic/README.txt", "traffic/1477872000_1477875599/notes.txt",
         *(f"traffic/_archive/{k}" for k in files_under(local.root))])
    assert _submit(db, "s3://reporters/traffic").enqueued == 0
