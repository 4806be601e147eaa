"""Query rows -> text, chunk by chunk, for the CLI and the HTTP endpoint alike.

Formats: ``csv`` (a header, ``ids`` as ``key=value;key=value``), ``ndjson`` (one object a
line), ``geojson`` (a FeatureCollection of Point features in time order) and ``json`` (an
object ``{"reports": [...], "next": token}``). The next-page token is known only once the
rows are consumed: ``json`` and ``geojson`` carry it as their last member ``next``,
``ndjson`` as a last line ``{"next": token}`` when there is one, ``csv`` not at all (the
HTTP endpoint sends it in a trailer-like last comment line ``# next=TOKEN``).

Example
-------
>>> from renderer.tracks.query import Page
>>> "".join(chunks(Page(iter(())), "json"))
'{"reports":[\\n],"next":null}\\n'
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from renderer.tracks.query import Page, Row

__all__ = ["COLUMNS", "CONTENT_TYPES", "FORMATS", "chunks", "iso"]

FORMATS = ("csv", "ndjson", "geojson", "json")
CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "ndjson": "application/x-ndjson",
                 "geojson": "application/geo+json", "json": "application/json"}
COLUMNS = ("time", "vessel", "ids", "lat", "lon", "sog", "cog", "heading", "nav_status", "rot",
           "latency", "source", "ais_class")
BATCH = 500  # rows per chunk: small enough for an early first byte, large enough to be cheap


def iso(t: datetime) -> str:
    """``2026-12-01T06:00:00.123Z`` (milliseconds, as reports carry)."""
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _plain(row: Row) -> dict[str, Any]:
    return {**row, "time": iso(row["time"])}


def _feature(row: Row) -> dict[str, Any]:
    props = {k: v for k, v in _plain(row).items() if k not in ("lat", "lon")}
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": [row["lon"],
                                                                             row["lat"]]},
            "properties": props}


def _csv_line(row: Row) -> str:
    buf = io.StringIO()
    plain = _plain(row)
    plain["ids"] = ";".join(f"{k}={v}" for k, v in sorted(row["ids"].items()))
    csv.writer(buf, lineterminator="\n").writerow(
        ["" if plain[c] is None else plain[c] for c in COLUMNS])
    return buf.getvalue()


def chunks(page: Page, fmt: str) -> Iterator[str]:
    """The page's rows as text in ``fmt``, about :data:`BATCH` rows a chunk."""
    dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    if fmt == "csv":
        yield ",".join(COLUMNS) + "\n"
        line = _csv_line
    elif fmt == "ndjson":
        def line(row: Row) -> str:
            return dumps(_plain(row)) + "\n"
    elif fmt == "geojson":
        yield '{"type":"FeatureCollection","features":[\n'
        first = True

        def line(row: Row) -> str:
            nonlocal first
            text = ("" if first else ",") + dumps(_feature(row)) + "\n"
            first = False
            return text
    elif fmt == "json":
        yield '{"reports":[\n'
        first = True

        def line(row: Row) -> str:
            nonlocal first
            text = ("" if first else ",") + dumps(_plain(row)) + "\n"
            first = False
            return text
    else:
        raise ValueError(f"unknown format {fmt!r}")
    out: list[str] = []
    flush = 1  # the first row goes out alone: the client sees data as soon as there is some
    for row in page.rows:
        out.append(line(row))
        if len(out) >= flush:
            yield "".join(out)
            out, flush = [], BATCH
    if out:
        yield "".join(out)
    if fmt in ("json", "geojson"):
        yield "]," + dumps({"next": page.next_token})[1:] + "\n"
    elif fmt == "ndjson" and page.next_token:
        yield dumps({"next": page.next_token}) + "\n"
    elif fmt == "csv" and page.next_token:
        yield f"# next={page.next_token}\n"
