"""The registry of profiles: the modules that declare one, plus ``RENDERER_PLUGINS``.

A pipeline plugs in by adding its profile module here (a module with a module-level
``PROFILE``, see :mod:`renderer.profile`); the engine imports them by name, so it imports no
pipeline. Extra modules (tests, plugins) come from ``RENDERER_PLUGINS`` (comma-separated):
one may declare a ``PROFILE`` or register kinds with :func:`renderer.queue.register`.
"""

from __future__ import annotations

import importlib
import os

from renderer.errors import InputError
from renderer.profile import DefaultSchedule, Offer, Profile, Stage

MODULES = [
    "renderer.schedules",  # the engine's own stages: schedule ticks, queue pruning
    "renderer.ops",  # the engine's operations: extracts, callbacks
    "renderer.traffic.profile",
    "renderer.sensors.profile",
    "renderer.maptiles.profile",
    "renderer.tracks.profile",
]

PROFILES: dict[str, Profile] = {}
"""The profiles loaded so far, by name."""
_LOADED: dict[str, Profile | None] = {}
"""Modules imported so far, with their profile (a plugin may have none)."""


def add(profile: Profile) -> Profile:
    """Register a profile's stages with the queue and list it (idempotent)."""
    profile.register()
    PROFILES[profile.name] = profile
    return profile


def load_all() -> list[str]:
    """Import every profile module that exists (and the plugins) and register their
    profiles; return the names of the modules imported."""
    loaded = []
    extra = [m for m in os.environ.get("RENDERER_PLUGINS", "").split(",") if m]
    for name in [*MODULES, *extra]:
        if name in _LOADED:
            known = _LOADED[name]
            if known is not None:
                PROFILES.setdefault(known.name, known)
            loaded.append(name)
            continue
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # the module exists but one of its imports is missing
                raise
            continue
        profile = getattr(module, "PROFILE", None)
        if not isinstance(profile, Profile):
            profile = None
        else:
            add(profile)
        _LOADED[name] = profile
        loaded.append(name)
    return loaded


def profiles() -> list[Profile]:
    """Every installed profile, after :func:`load_all`."""
    load_all()
    return list(PROFILES.values())


def get(name: str) -> Profile:
    """The profile ``name`` (KeyError if it is not installed)."""
    load_all()
    return PROFILES[name]


def plan(kinds: list[str] | None = None) -> list[str]:
    """The plan of every loaded profile with a stage among ``kinds`` (all: None), one line
    per stage and one for its schedules."""
    wanted = None if kinds is None else set(kinds)
    lines: list[str] = []
    for profile in PROFILES.values():
        if wanted is None or wanted & set(profile.kinds):
            lines.extend(profile.plan())
    return lines


def stage(kind: str) -> Stage | None:
    """The stage of a kind in the installed profiles (None: a plugin's bare kind, or none)."""
    load_all()
    return next((s for p in PROFILES.values() for s in p.stages if s.kind == kind), None)


def check_key(kind: str, key: str) -> None:
    """Refuse a key its stage's key type cannot parse (InputError naming the format)."""
    found = stage(kind)
    if found is None or found.key is None:
        return
    try:
        found.key.parse(key)
    except ValueError as exc:  # key types that raise InputError already say why
        raise InputError(f"bad {kind} key {key!r}: {exc}",
                         f"write it as a {found.key.__name__} key") from exc


def default_schedules() -> list[DefaultSchedule]:
    """The default schedules of every installed profile, the engine's included."""
    return [d for p in profiles() for d in p.schedules]


def offers() -> dict[tuple[str, str], Offer]:
    """The runs ``POST /api/runs`` offers, by (pipeline, stage)."""
    return {(p.name, o.name): o for p in profiles() for o in p.runs}
