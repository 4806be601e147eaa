"""The HTTP service: the FastAPI application, assembled from its routers, and its one
error shape.

``create_app(settings)`` builds the application; ``renderer serve`` runs it under uvicorn.
Every error answers ``{"error": {"status": 4xx, "message": "..."}}`` (an HTML page with the
same message when a browser asks for a page). Route handlers are plain ``def`` functions:
FastAPI runs them in its thread pool, each with a pooled connection. The routers
(:mod:`.hooks`, :mod:`.pages`, :mod:`.metrics`, :mod:`.tiles`) share :mod:`.deps` (state,
connections, ``WebError``); this module only assembles them and answers errors.

Example
-------
>>> app = create_app(config.load())
>>> uvicorn.run(app, host="127.0.0.1", port=8080)
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import jinja2
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from renderer import config, db, schedules
from renderer.errors import DatabaseUnavailable, InputError, ObjectNotFound, RendererError
from renderer.sources import SourceLayoutError
from renderer.web import extracts, filters, health, hooks, metrics, pages, tiles, tracks
from renderer.web.auth import AuthFailure, split_secrets
from renderer.web.deps import POOL_WAIT_SECONDS, WebError, WebState, state
from renderer.web.sensor_pages import router as sensor_pages_router
from renderer.web.traffic_pages import router as traffic_pages_router

__all__ = ["create_app", "error_response", "make_templates"]

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
JSON_PREFIXES = ("/api/", "/hooks/", "/metrics", "/healthz", "/readyz", "/static/")
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def make_templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,  # every template, whatever its name: keys and errors are user data
        undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True,
    )
    env.filters.update(filters.FILTERS)
    return env


def create_app(settings: config.Settings | None = None, *, url: str | None = None,
               run_scheduler: bool = False, traffic_source: str | None = None) -> FastAPI:
    """The application; ``run_scheduler`` also fires schedules in a background thread."""
    settings = settings or config.load()
    url = url or db.resolve_url(settings)
    pool = db.pool(url, name="renderer-web")
    web = WebState(settings=settings, url=url, pool=pool, templates=make_templates(),
                   traffic_source=traffic_source or settings.traffic_source or None,
                   secrets=split_secrets(settings.web_secrets), run_scheduler=run_scheduler)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool.open(wait=False)
        web.ready.start()
        if web.run_scheduler:
            _start_scheduler(web)
        try:
            yield
        finally:
            web.ready.close()
            web.scheduler_stop.set()
            if web.scheduler_thread is not None:
                web.scheduler_thread.join(timeout=10)
            pool.close()

    app = FastAPI(title="renderer", lifespan=lifespan, docs_url=None,  # pages.api_docs
                  redoc_url=None, openapi_url="/api/openapi.json")
    app.state.web = web
    _install_errors(app)

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        try:
            response: Response = await call_next(request)
        except Exception as exc:
            # Answered here rather than by Starlette's last-resort handler, which re-raises
            # into the server and can reset the connection before the client reads the 500.
            log.exception("%s %s failed", request.method, request.url.path)
            response = error_response(request, 500, f"internal error ({type(exc).__name__}); "
                                                    "see the server log")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        if response.headers.get("content-type", "").startswith("text/html"):
            response.headers.setdefault("Content-Security-Policy", CSP)
        return response

    app.include_router(extracts.router)
    app.include_router(health.router)
    app.include_router(hooks.router)
    app.include_router(metrics.router)
    app.include_router(pages.router)
    app.include_router(tiles.router)
    app.include_router(tracks.router)
    app.include_router(traffic_pages_router)
    app.include_router(sensor_pages_router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    return app


def _start_scheduler(web: WebState) -> None:
    def loop() -> None:
        schedules.run_scheduler(web.url, stop=web.scheduler_stop)

    web.scheduler_thread = threading.Thread(target=loop, name="renderer-scheduler", daemon=True)
    web.scheduler_thread.start()


def wants_html(request: Request) -> bool:
    path = request.url.path
    if path.startswith(JSON_PREFIXES) or path == "/api":
        return False
    return "text/html" in request.headers.get("accept", "")


def error_response(request: Request, status: int, message: str,
                   headers: dict[str, str] | None = None) -> Response:
    """The one error shape (or its HTML page for a browser asking for a page)."""
    if wants_html(request):
        html = state(request).templates.get_template("error.html").render(
            status=status, message=message, title=f"{status}")
        return HTMLResponse(html, status_code=status, headers=headers)
    return JSONResponse({"error": {"status": status, "message": message}},
                        status_code=status, headers=headers)


def _install_errors(app: FastAPI) -> None:
    @app.exception_handler(WebError)
    async def web_error(request: Request, exc: WebError) -> Response:
        return error_response(request, exc.status, exc.message)

    @app.exception_handler(AuthFailure)
    async def auth_failure(request: Request, exc: AuthFailure) -> Response:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return error_response(request, exc.status, exc.message, headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"no page or endpoint at {request.url.path}"
        return error_response(request, exc.status_code, message,
                              dict(exc.headers) if exc.headers else None)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return error_response(request, 400, f"invalid request: {where}: {first.get('msg')}")

    @app.exception_handler(InputError)
    async def input_error(request: Request, exc: InputError) -> Response:
        return error_response(request, 400, str(exc))

    @app.exception_handler(ObjectNotFound)
    async def not_found(request: Request, exc: ObjectNotFound) -> Response:
        return error_response(request, 404, str(exc))

    @app.exception_handler(RendererError)
    async def renderer_error(request: Request, exc: RendererError) -> Response:
        status = (503 if isinstance(exc, DatabaseUnavailable)
                  else 422 if isinstance(exc, SourceLayoutError) else 500)  # the request's source
        log.warning("%s %s: %s", request.method, request.url.path, exc)
        return error_response(request, status, str(exc))

    @app.exception_handler(db.PoolTimeout)
    async def pool_timeout(request: Request, exc: db.PoolTimeout) -> Response:
        return error_response(request, 503, "database unavailable: no connection within "
                                            f"{POOL_WAIT_SECONDS} s (check that PostgreSQL "
                                            "is running)")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("%s %s failed", request.method, request.url.path)
        return error_response(request, 500, f"internal error ({type(exc).__name__}); "
                                            "see the server log")
