"""Run a profile's batch until idle: submit, work its stages until nothing is left, summarise.

The one implementation behind ``renderer traffic run`` and ``renderer sensors etl --wait``
(any profile with a :class:`~renderer.profile.Batch`):

1. the profile's ``submit(conn, options, settings)`` in one committed transaction (it
   creates the run's set and enqueues the first items);
2. the profile's stages are worked until idle: a pool of ``processes`` workers, or one
   worker in this process when ``processes`` is None; ``progress`` gets, twice a second,
   ``{stage: (done since the start, remaining)}`` for the profile's progress stages;
3. the profile's ``summarize(conn, finished)``, returned as it is.

Example
-------
>>> run_until_idle(url, traffic_profile, {"source": "./sample"}, processes=4,
...                settings=settings)  # doctest: +SKIP
RunSummary(source='file:///.../sample', ...)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from renderer import db
from renderer.config import Settings
from renderer.db import Connection
from renderer.errors import InputError
from renderer.pool import run_pool, warm_up
from renderer.profile import Batch, Finished, Profile, Submitted
from renderer.queue import OPEN_STATES, status
from renderer.worker import run_worker

__all__ = ["Progress", "run_until_idle", "stage_counts", "submit"]

Progress = Callable[[dict[str, tuple[int, int]]], None]


def _batch(profile: Profile) -> Batch:
    if profile.batch is None:
        raise InputError(f"the {profile.name} pipeline has no run-until-idle batch",
                         "enqueue its items and run `renderer work`")
    return profile.batch


def stage_counts(conn: Connection, stages: tuple[str, ...]) -> dict[str, tuple[int, int]]:
    """``{stage: (done, remaining)}`` from the queue's counters (remaining: pending, held or
    running)."""
    kinds = status(conn)["kinds"]
    counts = {}
    for stage in stages:
        entry = kinds.get(stage, {})
        counts[stage] = (int(entry.get("done", 0)),
                         sum(int(entry.get(s, 0)) for s in OPEN_STATES))
    return counts


def submit(url: str, profile: Profile, options: dict[str, Any],
           settings: Settings) -> Submitted:
    """Only step 1: the profile's submit, committed."""
    with db.transaction(url) as conn:
        return _batch(profile).submit(conn, options, settings)


def run_until_idle(url: str, profile: Profile, options: dict[str, Any], *,
                   settings: Settings, processes: int | None,
                   progress: Progress | None = None) -> Any:
    """Submit, work the profile's stages until idle, and return the profile's summary (see
    the module docstring)."""
    batch = _batch(profile)
    started = time.monotonic()
    if processes is not None:
        warm_up()  # the pool's imports run beside the submit, not after it
    submitted = submit(url, profile, options, settings)
    kinds = list(profile.run_kinds)
    stages = profile.progress_kinds
    with db.connect(url, autocommit=True) as watcher:
        stats: Any = None
        if submitted.work and processes is None:
            stats = run_worker(url, kinds=kinds, until_empty=True, settings=settings)
        elif submitted.work and processes is not None:
            base = stage_counts(watcher, stages) if progress is not None else {}

            def report(done: int, remaining: int | None) -> None:
                assert progress is not None
                now = stage_counts(watcher, stages)
                progress({s: (max(0, now[s][0] - base[s][0]), now[s][1]) for s in stages})

            stats = run_pool(url, processes=processes, kinds=kinds, until_empty=True,
                             progress=report if progress is not None else None,
                             settings=settings)
        finished = Finished(submitted, stats, settings, time.monotonic() - started)
        return batch.summarize(watcher, finished)
