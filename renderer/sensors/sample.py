"""A sample of loop-detector files, so that a new user can try the sensor pipeline
(``renderer sensors sample``; ``make run`` shows it after the traffic run).

One gzip CSV per UTC day (``sensors-YYYY-MM-DD.csv.gz``), one row a minute per detector in
the columns ingest reads: speeds that dip at the morning and evening peaks (so the jam
indicator turns on), occupancy that rises with them, five class counts, and a few rows the
validation rejects (an empty speed, a negative count, a bad timestamp) so ``sensors rejects``
has something to show. The same seed gives the same files.
"""

from __future__ import annotations

import gzip
import math
import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

HEADER = ("uniqueid", "recordtimestamp", "currentspeed", "bezettingsgraad",
          "trafficintensityclass1", "trafficintensityclass2", "trafficintensityclass3",
          "trafficintensityclass4", "trafficintensityclass5")
FIRST_DETECTOR = 1053  # the help examples query detector 1053 on 2026-01-05
MAX_DETECTORS = 10_000
MAX_DAYS = 366


@dataclass
class SampleStats:
    files: list[Path] = field(default_factory=list)
    rows: int = 0
    bad_rows: int = 0
    detectors: list[int] = field(default_factory=list)


def _peak(minute_of_day: int) -> float:
    """0..1: how congested the road is (peaks at 08:00 and 17:30 UTC)."""
    hours = minute_of_day / 60
    return max(math.exp(-((hours - 8.0) / 0.9) ** 2), math.exp(-((hours - 17.5) / 1.1) ** 2))


def _day_rows(rng: random.Random, day: date, detector: int, free_speed: int,
              stats: SampleStats) -> list[str]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    lines = []
    for minute in range(24 * 60):
        t = int((start + timedelta(minutes=minute)).timestamp())
        jam = _peak(minute) * rng.uniform(0.6, 1.0)
        speed = max(5, round(free_speed * (1 - 0.8 * jam) + rng.gauss(0, 4)))
        occupancy = round(min(99.0, 4 + 60 * jam + rng.uniform(0, 3)), 1)
        counts = [max(0, round(c * (0.3 + jam) + rng.gauss(0, 1))) for c in (2, 14, 3, 1, 0)]
        fields = [str(detector), str(t), str(speed), str(occupancy), *map(str, counts)]
        roll = rng.random()
        if roll < 0.0005:
            fields[2] = ""  # no reading this minute: kept, speed NULL
        elif roll < 0.0008:
            fields[1] = "yesterday"  # rejected: bad timestamp
            stats.bad_rows += 1
        elif roll < 0.0010:
            fields[5] = "3x"  # rejected: not a whole number (a negative one reads as NULL)
            stats.bad_rows += 1
        lines.append(",".join(fields))
    return lines


def generate(out: Path, *, detectors: int = 3, days: int = 2, seed: int = 1,
             start: date = date(2026, 1, 5)) -> SampleStats:
    """Write the sample under ``out`` (created); ValueError for counts out of range."""
    if not 1 <= detectors <= MAX_DETECTORS:
        raise ValueError(f"--detectors {detectors}: give 1 to {MAX_DETECTORS}")
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"--days {days}: give 1 to {MAX_DAYS}")
    rng = random.Random(seed)
    stats = SampleStats(detectors=[FIRST_DETECTOR + i for i in range(detectors)])
    free = {d: rng.choice((50, 70, 90, 120)) for d in stats.detectors}
    out.mkdir(parents=True, exist_ok=True)
    for offset in range(days):
        day = start + timedelta(days=offset)
        lines = [",".join(HEADER)]
        for detector in stats.detectors:
            lines.extend(_day_rows(rng, day, detector, free[detector], stats))
        path = out / f"sensors-{day.isoformat()}.csv.gz"
        # mtime=0: the same seed gives byte-identical files (the ledger sees them as known).
        path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0))
        stats.files.append(path)
        stats.rows += len(lines) - 1
    return stats
