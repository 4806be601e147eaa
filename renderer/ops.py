"""The engine's operations, as a profile: downloadable extracts (``collect``, nightly) and
status posted back to the requesters of runs (``callbacks-sweep`` every minute queues a
``notify`` per ended set; its ticks are skipped while no callback waits). See
:mod:`renderer.extracts` and :mod:`renderer.callbacks`."""

from __future__ import annotations

from renderer import callbacks, schedules
from renderer.extracts.stage import COLLECT_KIND, collect
from renderer.profile import DefaultSchedule, Profile, Stage

PROFILE = Profile(
    "ops",
    stages=(
        Stage(COLLECT_KIND, collect, time_limit=6 * 3600, max_attempts=3,
              backoff_seconds=600, until_idle=False, progress=False),
        Stage(callbacks.SWEEP_KIND, callbacks.sweep_stage, time_limit=60, max_attempts=3,
              until_idle=False, progress=False),
        # Retries 2, 4, 8 ... s apart (with jitter): about 17 minutes over 10 attempts.
        Stage(callbacks.NOTIFY_KIND, callbacks.notify, time_limit=60, max_attempts=10,
              backoff_seconds=2, until_idle=False, progress=False),
    ),
    schedules=(
        DefaultSchedule("extracts-nightly", "15 2 * * *", COLLECT_KIND, "all"),
        DefaultSchedule("callbacks-sweep", "* * * * *", callbacks.SWEEP_KIND,
                        callbacks.SWEEP_KIND),
    ),
)

# An idle system gains no queue items a minute: the sweep's tick waits for a callback.
schedules.SKIP_WHEN_IDLE[callbacks.SWEEP_KIND] = callbacks.waiting
