"""Map tiles over HTTP: ``GET /tiles/{z}/{x}/{y}.json`` and the map page ``GET /map``.

A tile is read with its statistics merged at that moment (``renderer.maptiles_tile_body``), so a
statistics import shows on the next request with no tile rendered again: one statement in
autocommit (no BEGIN/COMMIT round trips), prepared by the driver after its fifth run on a
connection (not behind PgBouncer), its body fetched as bytes in binary and sent as they
come. Responses carry
an ETag of the body (``If-None-Match`` answers 304) and are gzipped when the client accepts
it; ``Cache-Control: no-cache`` makes caches revalidate, since statistics can change. The
map page draws the GeoJSON tiles on a canvas and names the region under the pointer from
the tiles' UTFGrids; its script and style are served from ``/static`` (no CDN).

Like the other routers, it takes its pooled connection from :mod:`.deps` and answers errors
as :class:`~renderer.web.deps.WebError` (the service's one error shape).
"""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from renderer.maptiles.features import tile_bytes
from renderer.web.deps import WebError, state

__all__ = ["router"]

router = APIRouter()
PAGE = Path(__file__).resolve().parent / "static" / "maptiles.html"
MIN_GZIP = 512  # bytes: smaller bodies gain nothing
GZIP_LEVEL = 1  # as the export's (renderer.maptiles.export.GZIP_LEVEL says why)


@router.get("/tiles/{z}/{x}/{y}.json", include_in_schema=True)
def tile(z: int, x: int, y: int, request: Request) -> Response:
    """One tile's GeoJSON FeatureCollection with its ``utfgrids``, statistics merged."""
    if not 0 <= z <= 24 or not 0 <= x < 2**z or not 0 <= y < 2**z:
        raise WebError(404, f"no tile {z}/{x}/{y}: outside the grid")
    with state(request).connection() as conn:
        # One statement alone needs no transaction: in autocommit there is no BEGIN and no
        # COMMIT, two round trips (and two backend wake-ups) of the three a tile took.
        conn.autocommit = True
        try:
            data = tile_bytes(conn, z, x, y)
        finally:
            conn.autocommit = False
    if data is None:
        raise WebError(404, f"no tile {z}/{x}/{y}: not rendered or no region in it")
    etag = '"' + hashlib.blake2b(data, digest_size=16).hexdigest() + '"'
    headers = {"ETag": etag, "Cache-Control": "no-cache", "Vary": "Accept-Encoding"}
    if etag in (t.strip() for t in request.headers.get("if-none-match", "").split(",")):
        return Response(status_code=304, headers=headers)
    if len(data) >= MIN_GZIP and "gzip" in request.headers.get("accept-encoding", ""):
        data = gzip.compress(data, compresslevel=GZIP_LEVEL)
        headers["Content-Encoding"] = "gzip"
    return Response(data, media_type="application/geo+json", headers=headers)


@router.get("/map", response_class=HTMLResponse, include_in_schema=False)
def map_page() -> HTMLResponse:
    """The map: tiles drawn on a canvas, the region under the pointer from the UTFGrids."""
    return HTMLResponse(PAGE.read_text())
