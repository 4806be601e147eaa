"""Fixtures of the map-tiles tests: the sample imported into the test database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from renderer import db
from renderer.db import Database
from renderer.maptiles import sample


@pytest.fixture
def small_sample(db: Database, tmp_path: Path) -> Iterator[list[sample.SampleFile]]:
    """The generated set at 16 x 12 blocks (1 Land, 1 Province, 12 Districts, 4 Wards,
    192 Blocks), imported."""
    files = sample.write_sample(tmp_path / "sample", cols=16, rows=12, natural_earth=False)
    with connect(db) as conn, conn.transaction():
        sample.import_sample(conn, files)
    yield files


@pytest.fixture
def world_sample(db: Database, tmp_path: Path) -> Iterator[list[sample.SampleFile]]:
    """The small generated set and Natural Earth's continents and countries, imported."""
    files = sample.write_sample(tmp_path / "sample", cols=16, rows=12)
    with connect(db) as conn, conn.transaction():
        sample.import_sample(conn, files)
    yield files


def connect(database: Database) -> db.Connection:
    return database.connect()
