"""The sensor pipeline, declared in one place: day items fanning into the export, the run
offered over HTTP and the run-until-idle batch (``renderer sensors etl --wait``).

::

    sensors-day --fan-in: every day of the standing group done--> sensors-export
"""

from __future__ import annotations

from datetime import date
from typing import Any

from renderer.config import Settings
from renderer.db import Connection
from renderer.errors import InputError
from renderer.profile import Batch, Finished, Offer, Profile, Stage, Submitted, Then
from renderer.queue import PRIORITY_ON_DEMAND
from renderer.sensors import day, extract
from renderer.sensors.day import EtlRun, ExportSpec, default_export, plan_days

__all__ = ["PROFILE"]


def _date(value: Any, name: str) -> date | None:
    if value is None or isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError as exc:
        raise InputError(f"invalid {name} {value!r}", "write a UTC day like 2026-01-31") from exc


def start_etl(conn: Connection, spec: dict[str, Any], settings: Settings) -> str | None:
    """Enrich the changed days (or those of ``from``..``to``), then export, on demand."""
    start, end = _date(spec.get("from"), "from"), _date(spec.get("to"), "to")
    if start and end and start > end:
        raise InputError(f"from {start} is after to {end}", "swap them")
    force = spec.get("force", False)
    if not isinstance(force, bool) or not isinstance(spec.get("export", True), bool):
        raise InputError("force and export are true or false", 'e.g. "force": true')
    export = None
    if spec.get("export", True):
        export = default_export(settings, spec.get("format", "parquet"))
    run = plan_days(conn, start, end, export=export, force=force, priority=PRIORITY_ON_DEMAND)
    return run.run or None


def submit(conn: Connection, options: dict[str, Any], settings: Settings) -> Submitted:
    """Plan the run's days (``options``: ``from``, ``to``, ``export`` (a target, default the
    setting), ``no_export``, ``format``, ``force``); work only when there are days."""
    fmt = options.get("format") or "parquet"
    export = None
    if not options.get("no_export"):
        out = options.get("export")
        export = ExportSpec(out, fmt) if out else default_export(settings, fmt)
    run = plan_days(conn, _date(options.get("from"), "from"), _date(options.get("to"), "to"),
                    export=export, force=bool(options.get("force")))
    return Submitted(run.run or None, bool(run.days), run)


def summarize(conn: Connection, finished: Finished) -> tuple[EtlRun, Any]:
    """The run planned and the worker's stats (None when there was nothing to do)."""
    return finished.submitted.detail, finished.stats


PROFILE = Profile(
    "sensors",
    stages=(
        Stage(day.DAY_KIND, day.handle_day, time_limit=1800, max_attempts=3, then=(
            Then(day.EXPORT_KIND, day.export_when_days_done, fan_in=True,
                 when="every day of the run's group is done"),)),
        Stage(day.EXPORT_KIND, day.handle_export, time_limit=3600, max_attempts=3),
    ),
    runs=(Offer("etl", frozenset({"from", "to", "format", "export", "force"}), start_etl),),
    batch=Batch(submit, summarize),
    extracts=extract.extracts,
)
