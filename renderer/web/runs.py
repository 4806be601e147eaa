"""Named runs that ``POST /api/runs`` may start: (pipeline, stage) -> a function.

A run validates its own fields, enqueues its items at on-demand priority inside the
caller's transaction and returns the set id (None when there was nothing to do). Unknown
names are a 400 listing the known ones; a pipeline whose module is not installed answers
"unknown" too, never a traceback.

Example
-------
>>> start(conn, {"pipeline": "traffic", "stage": "speedtiles", "week": "2026-W47"}, context)
{'set_id': '...', 'pipeline': 'traffic', 'stage': 'speedtiles', ...}
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import quote

import psycopg

from renderer.config import Settings
from renderer.errors import InputError

WEEK = re.compile(r"\d{4}-W(0[1-9]|[1-4]\d|5[0-3])")
Conn = psycopg.Connection[Any]


@dataclass(frozen=True)
class Context:
    settings: Settings
    traffic_source: str | None


@dataclass(frozen=True)
class Run:
    fields: frozenset[str]
    start: Callable[[Conn, dict[str, Any], Context], str | None]
    needs: str | None = None  # module that must import for the run to exist


def _week(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not WEEK.fullmatch(value):
        raise InputError(f"invalid week {value!r}", "write an ISO week like 2026-W47")
    return value


def _bbox(value: Any) -> tuple[float, float, float, float] | None:
    if value is None:
        return None
    numbers = (isinstance(value, list | tuple) and len(value) == 4
               and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value))
    box = tuple(float(v) for v in value) if numbers else ()
    if not (box and -180 <= box[0] < box[2] <= 180 and -90 <= box[1] < box[3] <= 90):
        raise InputError(f"invalid bbox {value!r}",
                         "give [minlon, minlat, maxlon, maxlat] in degrees, min < max")
    return box[0], box[1], box[2], box[3]


def _level(value: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 2:
        raise InputError(f"invalid level {value!r}", "use 0, 1 or 2")
    return value


def _modes(value: Any) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(m, str) and m for m in value):
        raise InputError(f"invalid modes {value!r}", 'give a list like ["auto"]')
    return value


def _date(value: Any, name: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(str(value))
    except ValueError as exc:
        raise InputError(f"invalid {name} {value!r}", "write a UTC day like 2026-01-31") from exc


def _traffic_speedtiles(conn: Conn, spec: dict[str, Any], ctx: Context) -> str:
    from renderer.queue import PRIORITY_ON_DEMAND
    from renderer.traffic import schedule

    return schedule.enqueue_weeks(
        conn, week=_week(spec.get("week")), bbox=_bbox(spec.get("bbox")),
        level=_level(spec.get("level")), modes=_modes(spec.get("modes")),
        priority=PRIORITY_ON_DEMAND)


def _traffic_submit(conn: Conn, spec: dict[str, Any], ctx: Context) -> str:
    from renderer.queue import PRIORITY_ON_DEMAND, create_set
    from renderer.traffic import ingest

    source = spec.get("source") or ctx.traffic_source
    if not source:
        raise InputError("no traffic source", "pass \"source\" or set RENDERER_TRAFFIC_SOURCE")
    set_id = create_set(conn, f"traffic submit {source}")
    ingest.submit(conn, source, priority=PRIORITY_ON_DEMAND, set_id=set_id)
    return set_id


def _sensors_etl(conn: Conn, spec: dict[str, Any], ctx: Context) -> str | None:
    from renderer.queue import PRIORITY_ON_DEMAND
    from renderer.sensors.day import default_export, plan_etl
    from renderer.sensors.enrich import pending_days

    start, end = _date(spec.get("from"), "from"), _date(spec.get("to"), "to")
    if start and end and start > end:
        raise InputError(f"from {start} is after to {end}", "swap them")
    force = spec.get("force", False)
    if not isinstance(force, bool) or not isinstance(spec.get("export", True), bool):
        raise InputError("force and export are true or false", 'e.g. "force": true')
    export = None
    if spec.get("export", True):
        export = default_export(ctx.settings, spec.get("format", "parquet"))
    explicit = start is not None or end is not None
    days = pending_days(conn, start, end, every=explicit or force)
    run = plan_etl(conn, days, export=export, force=explicit or force,
                   priority=PRIORITY_ON_DEMAND)
    return run.run or None


RUNS: dict[tuple[str, str], Run] = {
    ("traffic", "speedtiles"): Run(frozenset({"week", "bbox", "level", "modes"}),
                                   _traffic_speedtiles, "renderer.traffic.schedule"),
    ("traffic", "submit"): Run(frozenset({"source"}), _traffic_submit,
                               "renderer.traffic.ingest"),
    ("sensors", "etl"): Run(frozenset({"from", "to", "format", "export", "force"}),
                            _sensors_etl, "renderer.sensors.day"),
}


def available() -> list[str]:
    """``pipeline/stage`` names whose modules are installed."""
    names = []
    for (pipeline, stage), run in sorted(RUNS.items()):
        if run.needs is not None:
            try:
                importlib.import_module(run.needs)
            except ModuleNotFoundError as exc:
                if exc.name != run.needs:  # installed, but one of its imports is missing
                    raise
                continue
        names.append(f"{pipeline}/{stage}")
    return names


def lookup(spec: dict[str, Any]) -> Run:
    """The run ``spec`` names, its fields checked; InputError when unknown or malformed."""
    pipeline, stage = spec.get("pipeline"), spec.get("stage")
    name = f"{pipeline}/{stage}"
    run = RUNS.get((str(pipeline), str(stage)))
    if run is None or name not in available():
        raise InputError(f"unknown pipeline/stage {name!r}",
                         "known: " + (", ".join(available()) or "none installed"))
    extra = sorted(set(spec) - run.fields - {"pipeline", "stage"})
    if extra:
        raise InputError(f"unknown field(s) {', '.join(extra)} for {name}",
                         "allowed: " + ", ".join(sorted(run.fields)))
    return run


def start(conn: Conn, spec: dict[str, Any], context: Context) -> dict[str, Any]:
    """Start the run ``spec`` names; return its set id and where to watch it."""
    set_id = lookup(spec).start(conn, spec, context)
    links = ({"page": f"/sets/{quote(set_id)}", "api": f"/api/sets/{quote(set_id)}"}
             if set_id else None)
    return {"set_id": set_id, "pipeline": spec["pipeline"], "stage": spec["stage"],
            "links": links}
