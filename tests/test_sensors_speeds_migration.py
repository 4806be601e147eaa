"""Migration 0014 on a database with sensor data: whole km/h become exact hundredths in
sensors_raw and doubles in sensors_enriched, in every existing day partition, and back."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from renderer import db, schema
from renderer.errors import ConstraintViolation
from tests.test_schema import empty_database  # noqa: F401  (fixture)

DAY = "2026-01-05"


def _fill_at_0011(url: str) -> None:
    with db.connect(url) as conn:
        conn.execute("SELECT renderer.sensors_raw_partition(%s)", [DAY])
        conn.execute("INSERT INTO sensors_raw (uniqueid, recordtimestamp, currentspeed, file_id)"
                     " VALUES (1, %s::date + time '08:00', 81, 0),"
                     " (1, %s::date + time '08:01', NULL, 0)", [DAY, DAY])
        conn.execute("SELECT renderer.sensors_enrich_day(%s)", [DAY])
        conn.commit()


def test_existing_partitions_are_converted_and_back(
        empty_database: Callable[[], str]) -> None:  # noqa: F811
    url = empty_database()
    schema.upgrade(url, "0011")
    _fill_at_0011(url)
    schema.upgrade(url)
    with db.connect(url) as conn:
        raw = conn.execute("SELECT currentspeed_hundredths AS s FROM sensors_raw"
                           " ORDER BY recordtimestamp").fetchall()
        assert [r["s"] for r in raw] == [8100, None]
        enriched = conn.execute("SELECT currentspeed, previousspeed FROM sensors_enriched"
                                " ORDER BY recordtimestamp").fetchall()
        assert [(r["currentspeed"], r["previousspeed"]) for r in enriched] == [
            (81.0, None), (None, 81.0)]
        # the day partition keeps the CHECK, under the parent's new name
        names = conn.execute("SELECT conname FROM pg_constraint"
                             " WHERE conrelid = 'sensors_raw_20260105'::regclass"
                             " AND contype = 'c'").fetchall()
        assert [r["conname"] for r in names] == ["sensors_raw_currentspeed_hundredths_check"]
        with pytest.raises(ConstraintViolation):
            conn.execute("UPDATE sensors_raw SET currentspeed_hundredths = -1")
        conn.rollback()
        conn.execute("UPDATE sensors_raw SET currentspeed_hundredths = 8125"
                     " WHERE currentspeed_hundredths = 8100")
        conn.commit()
    with pytest.raises(Exception, match="fractional speeds"):
        schema.downgrade(url, "0011")
    with db.connect(url) as conn:
        conn.execute("UPDATE sensors_raw SET currentspeed_hundredths = 8100"
                     " WHERE currentspeed_hundredths = 8125")
        conn.commit()
    schema.downgrade(url, "0011")
    with db.connect(url) as conn:
        raw = conn.execute("SELECT currentspeed AS s FROM sensors_raw"
                           " ORDER BY recordtimestamp").fetchall()
        assert [r["s"] for r in raw] == [81, None]
