"""A reporter file copied under a second name: counted twice by default (as OpenTraffic
did: the ledger keys on name, size and checksum), once with ``traffic_dedupe_by_content``,
the copy recorded as a "duplicate of" the first."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from renderer.config import Settings
from renderer.db import Database
from renderer.worker import run_worker
from tests.test_traffic_histogram import (
    FOLDER,
    INGEST_KINDS,
    SEG,
    START,
    _submit,
    reporter_csv,
    totals,
)


def _work(db: Database, dedupe: bool) -> None:
    settings = dataclasses.replace(Settings(database_url=db.url),
                                   traffic_dedupe_by_content=dedupe)
    run_worker(db.url, kinds=INGEST_KINDS, until_empty=True, settings=settings)


def _ledger(db: Database) -> dict[str, tuple[str, str | None]]:
    with db.connect() as conn:
        return {r["key"].rsplit("/", 1)[1]: (r["status"], r["reason"]) for r in conn.execute(
            "SELECT key, status, reason FROM traffic_files")}


@pytest.mark.parametrize("dedupe", [False, True])
def test_a_copy_under_another_name(db: Database, tmp_path: Path, dedupe: bool) -> None:
    folder = tmp_path / FOLDER
    folder.mkdir(parents=True)
    row = f"{SEG},,600,2,100,0,{START + 10},{START + 610},r,AUTO"
    (folder / "a.csv").write_bytes(reporter_csv(row))
    shutil.copy(folder / "a.csv", folder / "b.csv")  # in the same run
    _submit(db, tmp_path, after="keep")
    _work(db, dedupe)
    shutil.copy(folder / "a.csv", folder / "c.csv")  # in a later run
    _submit(db, tmp_path, after="keep")
    _work(db, dedupe)
    with db.connect() as conn:
        observations = totals(conn)["observations"]
    ledger = _ledger(db)
    if dedupe:
        assert observations == 2
        assert ledger == {"a.csv": ("consumed", None),
                          "b.csv": ("rejected", f"duplicate of {FOLDER}a.csv"),
                          "c.csv": ("rejected", f"duplicate of {FOLDER}a.csv")}
    else:
        assert observations == 6
        assert ledger == {name: ("consumed", None) for name in ("a.csv", "b.csv", "c.csv")}
