"""The modules that register work-queue kinds; the worker imports them all.

A pipeline plugs in by adding its module here; the queue itself never names a pipeline.
Extra modules (tests, plugins) come from ``RENDERER_PLUGINS`` (comma-separated).
"""

from __future__ import annotations

import importlib
import os

MODULES = [
    "renderer.traffic.histogram",
    "renderer.traffic.speedtile",
    "renderer.traffic.reftile",
    "renderer.traffic.coverage",
    "renderer.sensors.day",
    "renderer.tracks.profile",
    "renderer.schedules",
]


def load_all() -> list[str]:
    """Import every pipeline module that exists; return the names imported."""
    loaded = []
    extra = [m for m in os.environ.get("RENDERER_PLUGINS", "").split(",") if m]
    for name in [*MODULES, *extra]:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # the module exists but one of its imports is missing
                raise
            continue
        loaded.append(name)
    return loaded
