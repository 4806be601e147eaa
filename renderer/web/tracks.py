"""Vessel tracks over HTTP: ``GET /api/tracks`` streamed and paged, and the ``/tracks`` page.

``GET /api/tracks?id=mmsi:503000001&bbox=-50,135,-20,150&from=2026-12-01&to=2026-12-31
&sample=1h&format=json&limit=10000&cursor=TOKEN``: every parameter optional, any mix, as
``renderer tracks query``. The body is streamed (chunked) as the server-side cursor yields
rows, so the first bytes leave before the query has finished; a page holds at most ``limit``
rows (default 10,000, at most 100,000) and names the next page's ``cursor`` at its end
(``json``/``geojson``: the ``next`` member; ``ndjson``: a last line ``{"next": ...}``;
``csv``: a last line ``# next=TOKEN``). Bad parameters answer 400 in the one error shape
before anything is streamed.

The page draws the tracks of the same parameters as SVG lines, one per vessel, reading the
NDJSON stream as it arrives (``/static/tracks.js``).

The application includes :data:`router`; the pool and templates come from the shared state
(:func:`renderer.web.deps.state`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi import Query as Param
from fastapi.responses import HTMLResponse, StreamingResponse

from renderer.errors import InputError
from renderer.tracks import output
from renderer.tracks.query import SAMPLES, Query, decode_token, run
from renderer.web.deps import state

__all__ = ["router"]

log = logging.getLogger(__name__)
router = APIRouter()
DEFAULT_LIMIT = 10_000
MAX_LIMIT = 100_000


def _query(ids: list[str], bbox: str | None, start: str | None, end: str | None,
           sample: str | None) -> Query:
    return Query.parse(ids=[i for i in ids if i.strip()], bbox=bbox or None,
                       start=start or None, end=end or None, sample=sample or None)


@router.get("/api/tracks")
def tracks_api(request: Request, id: list[str] = Param(default=[]),  # noqa: B008
               bbox: str | None = None, start: str | None = Param(None, alias="from"),
               end: str | None = Param(None, alias="to"), sample: str | None = None,
               format: str = "json", limit: int = DEFAULT_LIMIT,
               cursor: str | None = None) -> StreamingResponse:
    """Position reports of any mix of identifiers, box, time range and sampling, in time
    order, streamed and paged (see the module)."""
    if format not in output.FORMATS:
        raise InputError(f"format {format!r} is not offered", f"use {'|'.join(output.FORMATS)}")
    if not 1 <= limit <= MAX_LIMIT:
        raise InputError(f"limit {limit} is out of range", f"use 1 to {MAX_LIMIT}")
    q = _query(id, bbox, start, end, sample)
    if cursor:
        decode_token(q, cursor)  # a bad token is a 400 now, not a cut stream later
    pool = state(request).pool

    def body() -> Iterator[bytes]:
        with pool.connection(timeout=10) as conn:
            page = run(conn, q, limit=limit, token=cursor)
            for chunk in output.chunks(page, format):
                yield chunk.encode()

    return StreamingResponse(body(), media_type=output.CONTENT_TYPES[format],
                             headers={"Cache-Control": "no-store"})


@router.get("/tracks", response_class=HTMLResponse)
def tracks_page(request: Request, id: str = "", bbox: str = "",
                start: str = Param("", alias="from"), end: str = Param("", alias="to"),
                sample: str = "") -> HTMLResponse:
    """The tracks of some parameters drawn as lines (the page fetches the stream)."""
    form = {"id": id, "bbox": bbox, "from": start, "to": end, "sample": sample}
    error = None
    try:
        _query(id.replace(",", " ").split(), bbox, start, end, sample)
    except InputError as exc:
        error = str(exc)
    html = state(request).templates.get_template("tracks.html").render(
        title="Tracks", api_url="/api/tracks", now=datetime.now(UTC), form=form,
        samples=list(SAMPLES), error=error)
    return HTMLResponse(html)
