"""Named runs that ``POST /api/runs`` may start: (pipeline, stage) -> a function.

A run validates its own fields, enqueues its items at on-demand priority inside the
caller's transaction and returns the set id. Unknown names are a 400 listing the known
ones. A pipeline whose module is not installed answers "unknown" too, never a traceback.

Example
-------
>>> start(conn, {"pipeline": "traffic", "stage": "speedtiles", "week": "2026-W47"},
...       traffic_source=None)
{'set_id': '...', 'pipeline': 'traffic', 'stage': 'speedtiles', ...}
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg

from renderer.errors import InputError

WEEK = re.compile(r"\d{4}-W(0[1-9]|[1-4]\d|5[0-3])")
Conn = psycopg.Connection[Any]


@dataclass(frozen=True)
class Run:
    fields: frozenset[str]
    start: Callable[[Conn, dict[str, Any], str | None], str]
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


def _traffic_speedtiles(conn: Conn, spec: dict[str, Any], source: str | None) -> str:
    from renderer.queue import PRIORITY_ON_DEMAND
    from renderer.traffic import schedule

    return schedule.enqueue_weeks(
        conn, week=_week(spec.get("week")), bbox=_bbox(spec.get("bbox")),
        level=_level(spec.get("level")), modes=_modes(spec.get("modes")),
        priority=PRIORITY_ON_DEMAND)


def _traffic_submit(conn: Conn, spec: dict[str, Any], source: str | None) -> str:
    from renderer.queue import PRIORITY_ON_DEMAND, create_set
    from renderer.traffic import ingest

    source = spec.get("source") or source
    if not source:
        raise InputError("no traffic source", "pass \"source\" or set RENDERER_TRAFFIC_SOURCE")
    set_id = create_set(conn, f"traffic submit {source}")
    ingest.submit(conn, source, priority=PRIORITY_ON_DEMAND, set_id=set_id)
    return set_id


RUNS: dict[tuple[str, str], Run] = {
    ("traffic", "speedtiles"): Run(frozenset({"week", "bbox", "level", "modes"}),
                                   _traffic_speedtiles, "renderer.traffic.schedule"),
    ("traffic", "submit"): Run(frozenset({"source"}), _traffic_submit,
                               "renderer.traffic.ingest"),
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


def start(conn: Conn, spec: dict[str, Any], *, traffic_source: str | None) -> dict[str, Any]:
    """Start the run ``spec`` names; return its set id and where to watch it."""
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
    set_id = str(run.start(conn, spec, traffic_source))
    return {"set_id": set_id, "pipeline": pipeline, "stage": stage,
            "links": {"page": f"/sets/{set_id}", "api": f"/api/sets/{set_id}"}}
