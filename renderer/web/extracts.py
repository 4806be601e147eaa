"""The downloadable extracts: ``/extracts`` (a table with sizes, dates and links), its JSON
twin ``/api/extracts``, and the downloads themselves under ``/extracts/files/``.

Everything comes from the manifests the ``collect`` stage publishes under ``extracts/`` in the
store (:mod:`renderer.extracts.archive`); a download is served from the store with the name
and length its manifest gives, so a client checks it against the manifest's SHA-256.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from renderer.errors import ObjectNotFound
from renderer.extracts.archive import PREFIX, read_manifests
from renderer.storage import open_store
from renderer.web.deps import WebError, state

__all__ = ["router"]

router = APIRouter()
FILES = "/extracts/files/"


def _row(manifest: dict[str, Any]) -> dict[str, Any]:
    download = manifest["download"]
    key = str(download["key"])
    name = str(manifest["name"])
    return {"name": name, "generated_at": manifest.get("generated_at"),
            "format": manifest.get("format"), "size": download.get("size"),
            "sha256": download.get("sha256"), "files": len(manifest.get("files") or []),
            "time_ranges": manifest.get("time_ranges") or {},
            "info": manifest.get("info") or {},
            "download": FILES + quote(key[len(PREFIX):], safe="/"),
            "manifest": FILES + quote(f"{name}.json", safe="/")}


def extracts_data(request: Request) -> dict[str, Any]:
    store = open_store(state(request).settings.store_url)
    return {"extracts": [_row(m) for m in read_manifests(store)]}


@router.get("/extracts", response_class=HTMLResponse)
def extracts_page(request: Request) -> HTMLResponse:
    html = state(request).templates.get_template("extracts.html").render(
        title="Extracts", api_url="/api/extracts", now=datetime.now(UTC),
        **extracts_data(request))
    return HTMLResponse(html)


@router.get("/api/extracts")
def extracts_api(request: Request) -> dict[str, Any]:
    return extracts_data(request)


@router.get("/extracts/files/{path:path}")
def extract_file(request: Request, path: str) -> Response:
    """A download or a manifest, as the store has it."""
    if not path.endswith((".zip", ".parquet", ".json")):
        raise WebError(404, f"no extract file {path!r}")
    store = open_store(state(request).settings.store_url)
    try:
        body = store.get(PREFIX + path)
    except ObjectNotFound as exc:
        raise WebError(404, f"no extract file {path!r}") from exc
    media = {".zip": "application/zip", ".parquet": "application/vnd.apache.parquet",
             ".json": "application/json"}[path[path.rindex("."):]]
    filename = path.replace("/", "-")
    return Response(body, media_type=media,
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})
