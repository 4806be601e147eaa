"""The histogram stage writes a whole claimed batch at once (its start and finish hooks):
one ledger statement, one COPY of bins per week partition, one COPY of segment lengths. A bad
file fails only its own item, with its reason; a zombie attempt that consumed a prefix's
files first makes only that item fail, and counts stay exact (ledger, bins, lengths)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from renderer import queue
from renderer.db import Database
from renderer.errors import StorageError
from renderer.storage import FileStore
from renderer.traffic import histogram, histogram_write
from renderer.traffic.layout import Prefix, source_store
from renderer.traffic.sample import SampleStats, generate
from tests.factories import backdate
from tests.test_traffic_histogram import (
    TILE,
    _submit,
    expected_bins,
    stored_bins,
    totals,
    work,
)


@pytest.fixture
def day(tmp_path: Path) -> SampleStats:
    """One day of two tiles (48 prefixes, 144 files)."""
    return generate(tmp_path / "src", tiles=2, days=1, seed=11)


def _ledger_adds_up(db: Database, day: SampleStats, extra_files: int = 0) -> None:
    with db.connect() as conn:
        ledger = conn.execute(
            "SELECT count(*) AS n, sum(rows_read) AS r, sum(rows_accepted) AS a,"
            " sum(rows_rejected) AS j, sum(observations) AS o FROM traffic_files").fetchone()
        t = totals(conn)
        assert stored_bins(conn) == expected_bins(day.root)
    assert ledger["n"] == day.files + extra_files
    assert ledger["r"] == ledger["a"] + ledger["j"]
    assert ledger["o"] == t["observations"] == t["length_observations"] == day.observations
    assert t["rejects"] == ledger["j"]


def test_a_batch_is_written_with_one_statement_per_table(
        db: Database, day: SampleStats, monkeypatch: pytest.MonkeyPatch) -> None:
    batches: list[int] = []
    real_write = histogram_write.write

    def counting(conn: Any, batch: Any) -> Any:
        batches.append(len(batch))
        return real_write(conn, batch)

    monkeypatch.setattr(histogram_write, "write", counting)
    _submit(db, day.root, after="keep")
    stats = work(db.url, kinds=["histogram"])
    assert (stats.done, stats.failed, stats.batches) == (48, 0, 2)
    assert batches == [32, 16]
    _ledger_adds_up(db, day)


def test_a_batch_writes_a_segment_length_once(db: Database, day: SampleStats) -> None:
    """The lengths a segment reports in every hour of a batch are one row per (segment,
    length) and batch (two batches here), summed over its items; the view's sums hold."""
    _submit(db, day.root, after="keep")
    assert work(db.url, kinds=["histogram"]).batches == 2
    with db.connect() as conn:
        most = conn.execute("SELECT max(n) AS n FROM (SELECT count(*) AS n FROM"
                            " traffic_segment_length_reports GROUP BY segment_id, length) r"
                            ).fetchone()["n"]
    assert most == 2
    _ledger_adds_up(db, day)


def test_a_bad_file_fails_only_its_own_item_with_its_reason(
        db: Database, day: SampleStats, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file that cannot be read (a disk error, an S3 error) fails its item with the
    store's reason; the other items of its batch commit without running again (the handler
    wrote nothing and read the ledger through the start hook), and the retry counts it."""
    victim = Prefix(0, TILE, day.first_hour + 3)
    bad = sorted(p.name for p in (day.root / victim.folder).iterdir())[0]
    real_get = FileStore.get
    calls: list[str] = []

    def get(self: FileStore, key: str) -> bytes:
        calls.append(key)
        if key == f"{victim.folder}{bad}":
            raise StorageError(f"cannot read {key}: Input/output error", "check the disk")
        return real_get(self, key)

    monkeypatch.setattr(FileStore, "get", get)
    _submit(db, day.root, after="keep")
    stats = work(db.url, kinds=["histogram"], max_items=48)  # one attempt each
    assert (stats.done, stats.failed, stats.batches) == (47, 1, 2)
    assert len(calls) == len(set(calls)) > day.files - 3  # no item ran twice
    with db.connect() as conn:
        failed = queue.item_history(conn, "histogram", victim.key)
        assert failed is not None and failed["state"] == "pending"  # its retry waits
        assert [(a["error_type"], a["message"]) for a in failed["attempts"]] == [
            ("StorageError", f"cannot read {victim.folder}{bad}: Input/output error "
                             "(check the disk)")]
        ledger = conn.execute(
            "SELECT count(*) AS n FROM traffic_files WHERE (tile_level, tile_index, hour)"
            " = (%s, %s, %s)", [victim.level, victim.index, victim.hour]).fetchone()
        assert ledger["n"] == 0  # nothing of the failed item
        backdate(conn, run_after=0)
        conn.commit()
    monkeypatch.setattr(FileStore, "get", real_get)  # the disk is mended
    assert work(db.url, kinds=["histogram"]).failed == 0
    _ledger_adds_up(db, day)


def test_a_zombie_that_consumed_a_prefix_first_fails_only_that_item(
        db: Database, day: SampleStats) -> None:
    """An attempt outside the worker (a zombie) records one prefix's files first and commits
    while the worker's batch waits on them: only that item is refused, the rest of its batch
    commits, and the retry finds nothing new. Every file counts once."""
    victim = Prefix(0, TILE, day.first_hour + 7)
    _submit(db, day.root, after="keep")
    done: dict[str, Any] = {}
    with db.connect() as zombie:
        histogram.consume_prefix(zombie, source_store(str(day.root)), victim)  # uncommitted

        def worker() -> None:
            done["first"] = work(db.url, kinds=["histogram"], max_items=48)

        thread = threading.Thread(target=worker)
        thread.start()
        thread.join(timeout=5.0)
        assert thread.is_alive()  # its batch waits on the zombie's ledger rows
        zombie.commit()
    thread.join(timeout=120)
    assert (done["first"].done, done["first"].failed) == (47, 1)
    with db.connect() as conn:
        failed = queue.item_history(conn, "histogram", victim.key)
        assert failed is not None
        assert [a["error_type"] for a in failed["attempts"]] == ["AlreadyExists"]
        assert "consumed it first" in failed["attempts"][0]["message"]
        backdate(conn, run_after=0)
        conn.commit()
    again = work(db.url, kinds=["histogram"])
    assert (again.done, again.failed) == (1, 0)  # the retry finds its files consumed
    _ledger_adds_up(db, day)


def test_the_stage_reads_the_ledger_itself_when_the_start_hook_fails(
        db: Database, day: SampleStats, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the batch's ledger rows (the start hook failed), each handler reads its own:
    files already consumed are still skipped."""
    _submit(db, day.root, after="keep")
    first = Prefix(0, TILE, day.first_hour)
    with db.connect() as conn:
        histogram.consume_prefix(conn, source_store(str(day.root)), first)
        conn.commit()

    def broken(conn: Any, prefixes: Any) -> Any:
        raise RuntimeError("the ledger of the batch could not be read")

    monkeypatch.setattr(histogram, "_consumed_of", broken)
    assert work(db.url, kinds=["histogram"]).failed == 0
    _ledger_adds_up(db, day)
