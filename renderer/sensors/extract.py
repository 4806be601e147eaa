"""What sensors contribute to the downloadable extracts: one Parquet file per month, made of
the month's daily export objects (:mod:`renderer.sensors.export`, where runs export by
default: ``[sensors] export`` or the store under ``sensors/``), with the export's schema.

Example
-------
>>> [e.name for e in extracts(store, settings)]
['sensors/2026-01', 'sensors/2026-02']
"""

from __future__ import annotations

import io
import re
from calendar import monthrange, timegm
from datetime import date

import pyarrow as pa
import pyarrow.parquet as pq

from renderer.config import Settings
from renderer.extracts.model import Extract, Member
from renderer.sensors.day import default_export
from renderer.sensors.export import CONTENT_TYPES, SCHEMA
from renderer.storage import Store, open_store

__all__ = ["combine", "extracts"]

_DAY = re.compile(r"(?:.*/)?year=(\d{4})/month=(\d{1,2})/day=(\d{1,2})/"
                  r"sensors-(\d{4}-\d{2}-\d{2})\.parquet")


def combine(bodies: list[bytes]) -> bytes:
    """The days' Parquet files as one (same schema, rows in day order), zstd-compressed."""
    tables = [pq.read_table(io.BytesIO(b)).cast(SCHEMA) for b in bodies]
    out = io.BytesIO()
    pq.write_table(pa.concat_tables(tables) if tables else SCHEMA.empty_table(), out,
                   compression="zstd")
    return out.getvalue()


def _month_range(year: int, month: int) -> tuple[int, int]:
    start = timegm(date(year, month, 1).timetuple())
    return start, start + monthrange(year, month)[1] * 86400


def extracts(store: Store, settings: Settings) -> list[Extract]:
    """One extract per month with exported days (Parquet exports only)."""
    spec = default_export(settings)
    source = store if spec.out == store.url or spec.out == settings.store_url else open_store(
        spec.out)
    prefix = f"{spec.prefix.strip('/')}/" if spec.prefix.strip("/") else ""
    months: dict[tuple[int, int], list[Member]] = {}
    for info in source.list(prefix, checksums=False):
        m = _DAY.fullmatch(info.key)
        if m is None:
            continue
        day = date.fromisoformat(m.group(4))
        months.setdefault((day.year, day.month), []).append(Member(
            info.key[len(prefix):], info.key, info.size, info.etag, info.modified, "data",
            _month_range(day.year, day.month)))
    return [Extract(f"sensors/{y:04d}-{mo:02d}", tuple(sorted(members, key=lambda x: x.path)),
                    info={"month": f"{y:04d}-{mo:02d}", "days": len(members)},
                    combine=combine, suffix=".parquet", content_type=CONTENT_TYPES["parquet"],
                    source=None if source is store else source)
            for (y, mo), members in sorted(months.items())]
