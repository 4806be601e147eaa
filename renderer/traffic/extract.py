"""What traffic contributes to the downloadable extracts: per region, the level-0 tiles inside
its box: the speed tiles (``.spd`` and ``.nex``, every mode) of the latest ``[extracts] weeks``
weeks that have any, the reference tiles, and the coverage GeoJSON, as they are in the store
(OpenTraffic's layout kept as the paths in the archive).

Example
-------
>>> [e.name for e in extracts(store, settings)]     # the continents by default
['traffic/africa', 'traffic/europe', ...]
"""

from __future__ import annotations

import re
from calendar import timegm
from collections.abc import Iterable

from renderer.config import Settings
from renderer.extracts.model import Extract, Member
from renderer.extracts.regions import Region, parse_regions
from renderer.storage import ObjectInfo, Store
from renderer.traffic import coverage, weeks

__all__ = ["extracts"]

# AUTO at the root, other modes in a folder of their own (renderer.traffic.export.mode_prefix)
_SPEED = re.compile(r"(?:[A-Z][A-Z0-9_]*/)?(\d{4})/(\d{2})/0/(\d{3})/(\d{3})\.(?:spd|nex)\.\d+\.gz")
_REFERENCE = re.compile(r"(?:[A-Z][A-Z0-9_]*/)?0/(\d{3})/(\d{3})\.ref\.gz")
WEEK_SECONDS = 7 * 24 * 3600


def _week_range(year: int, week: int) -> tuple[int, int]:
    start = timegm(weeks.monday_of_week(f"{year:04d}-W{week:02d}").timetuple())
    return start, start + WEEK_SECONDS


def _member(info: ObjectInfo, group: str, span: tuple[int, int] | None = None) -> Member:
    return Member(info.key, info.key, info.size, info.etag, info.modified, group, span,
                  range_from_metadata=group == "reference")


def _index(a: str, b: str) -> int:
    """The tile index of a path's two 3-digit folders: ``002``, ``140`` -> 2140."""
    return int(a) * 1000 + int(b)


def _region(region: Region, speed: list[tuple[ObjectInfo, int, tuple[int, int]]],
            references: list[tuple[ObjectInfo, int]], cover: ObjectInfo | None,
            week_names: list[str]) -> Extract | None:
    inside = {t.index for t in region.bbox.tiles(0)}
    members = [_member(i, "speed", span) for i, tile, span in speed if tile in inside]
    members += [_member(i, "reference") for i, tile in references if tile in inside]
    if not members:
        return None
    if cover is not None:
        members.append(_member(cover, "coverage"))
    return Extract(f"traffic/{region.name}", tuple(members),
                   info={"region": region.name, "bbox": list(region.bbox), "level": 0,
                         "weeks": week_names})


def extracts(store: Store, settings: Settings) -> list[Extract]:
    """One extract per region holding traffic tiles (regions without any are left out)."""
    listed: Iterable[ObjectInfo] = store.list("", checksums=False)
    speed_all: list[tuple[ObjectInfo, int, tuple[int, int]]] = []
    references: list[tuple[ObjectInfo, int]] = []
    cover = None
    for info in listed:
        if (m := _SPEED.fullmatch(info.key)) is not None:
            week = (int(m.group(1)), int(m.group(2)))
            speed_all.append((info, _index(m.group(3), m.group(4)), week))
        elif (m := _REFERENCE.fullmatch(info.key)) is not None:
            references.append((info, _index(m.group(1), m.group(2))))
        elif info.key == coverage.OBJECT_KEY:
            cover = info
    latest = sorted({w for _, _, w in speed_all})[-settings.extracts_weeks:]
    chosen = set(latest)
    speed = [(i, tile, _week_range(*w)) for i, tile, w in speed_all if w in chosen]
    names = [f"{y:04d}-W{w:02d}" for y, w in latest]
    found = (_region(r, speed, references, cover, names)
             for r in parse_regions(settings.extracts_regions))
    return [e for e in found if e is not None]
