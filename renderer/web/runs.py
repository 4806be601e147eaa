"""Named runs that ``POST /api/runs`` may start: the runs the installed profiles offer.

A run is ``{"pipeline": profile, "stage": offer, ...fields}`` (see
:class:`renderer.profile.Offer`): only the offer's fields are allowed; the offer checks their
values with the shared parsers (weeks, bounding boxes, days), enqueues its items at
on-demand priority inside the caller's transaction and returns the set id (None when there
was nothing to do). Unknown names are a 400 listing the known ones; a pipeline whose module
is not installed answers "unknown" too, never a traceback.

Example
-------
>>> start(conn, {"pipeline": "traffic", "stage": "speedtiles", "week": "2026-W47"}, context)
{'set_id': '...', 'pipeline': 'traffic', 'stage': 'speedtiles', ...}
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from renderer import callbacks, pipelines, queue
from renderer.config import Settings
from renderer.db import Connection
from renderer.errors import InputError
from renderer.profile import Offer
from renderer.web.deps import WebError


@dataclass(frozen=True)
class Context:
    """What a run gets from the service: its settings and the traffic source it serves
    (which may differ from the setting's)."""

    settings: Settings
    traffic_source: str | None

    def run_settings(self) -> Settings:
        return dataclasses.replace(self.settings, traffic_source=self.traffic_source or "")


def available() -> list[str]:
    """``pipeline/stage`` names of the runs the installed profiles offer."""
    return [f"{pipeline}/{stage}" for pipeline, stage in sorted(pipelines.offers())]


def lookup(spec: dict[str, Any]) -> Offer:
    """The run ``spec`` names, its fields checked; InputError when unknown or malformed."""
    pipeline, stage = spec.get("pipeline"), spec.get("stage")
    name = f"{pipeline}/{stage}"
    run = pipelines.offers().get((str(pipeline), str(stage)))
    if run is None:
        raise InputError(f"unknown pipeline/stage {name!r}",
                         "known: " + (", ".join(available()) or "none installed"))
    extra = sorted(set(spec) - run.fields - {"pipeline", "stage"})
    if extra:
        raise InputError(f"unknown field(s) {', '.join(extra)} for {name}",
                         "allowed: " + ", ".join(sorted(run.fields)))
    return run


def check_callback(url: object, settings: Settings) -> str:
    """A callback URL the service may post to, else a 422 saying why."""
    try:
        return callbacks.check_url(url, settings)
    except callbacks.CallbackRefused as exc:
        raise WebError(422, str(exc)) from exc


def start(conn: Connection, spec: dict[str, Any], context: Context,
          requested_by: str = "") -> dict[str, Any]:
    """Start the run ``spec`` names; return its set id and where to watch it. A
    ``"callback"`` URL is posted the set's status when it ends (:mod:`renderer.callbacks`)."""
    spec = dict(spec)
    callback = spec.pop("callback", None)
    url = None if callback is None else check_callback(callback, context.settings)
    limits = {k: spec.pop(k) for k in ("in_flight", "per_hour") if k in spec}  # dribbled
    set_id = lookup(spec).start(conn, spec, context.run_settings())
    if set_id and limits:
        queue.throttle(conn, set_id, **limits)
    links = ({"page": f"/sets/{quote(set_id)}", "api": f"/api/sets/{quote(set_id)}"}
             if set_id else None)
    if set_id and url:
        callbacks.register(conn, set_id, url, requested_by)
    return {"set_id": set_id, "pipeline": spec["pipeline"], "stage": spec["stage"],
            "links": links, "callback": url if set_id else None}
