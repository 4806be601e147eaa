"""The engine's operations, as a profile: downloadable extracts (``collect``, nightly). See
:mod:`renderer.extracts`."""

from __future__ import annotations

from renderer.extracts.stage import COLLECT_KIND, collect
from renderer.profile import DefaultSchedule, Profile, Stage

PROFILE = Profile(
    "ops",
    stages=(
        Stage(COLLECT_KIND, collect, time_limit=6 * 3600, max_attempts=3,
              backoff_seconds=600, until_idle=False, progress=False),
    ),
    schedules=(
        DefaultSchedule("extracts-nightly", "15 2 * * *", COLLECT_KIND, "all"),
    ),
)
