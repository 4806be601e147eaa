"""The regions extracts are cut by: named bounding boxes, the continents by default.

The setting ``[extracts] regions`` (``RENDERER_EXTRACTS_REGIONS``) lists them as
``name=minlon,minlat,maxlon,maxlat`` entries separated by ``;`` (a box may cross the
antimeridian, as :mod:`renderer.bbox` says); empty means :data:`CONTINENTS`.

Example
-------
>>> [r.name for r in parse_regions("alps=5,43,17,48; iceland=-25,63,-13,67")]
['alps', 'iceland']
"""

from __future__ import annotations

import re
from typing import NamedTuple

from renderer.bbox import BBox, parse_bbox
from renderer.errors import InputError

__all__ = ["CONTINENTS", "Region", "parse_regions", "regions_ok"]

_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
_HINT = ("write name=minlon,minlat,maxlon,maxlat entries separated by ';' "
         "(names: lowercase letters, digits, '-', '_')")


class Region(NamedTuple):
    """A named box."""

    name: str
    bbox: BBox


CONTINENTS: tuple[Region, ...] = tuple(Region(n, parse_bbox(b)) for n, b in (
    ("africa", "-26,-35,60,38"),
    ("antarctica", "-180,-90,180,-60"),
    ("asia", "25,-11,180,82"),
    ("europe", "-32,34,45,72"),
    ("north-america", "-170,5,-50,84"),
    ("oceania", "110,-50,-150,0"),
    ("south-america", "-92,-56,-34,13"),
))
"""Rough continental boxes (they overlap where continents meet; oceania crosses 180)."""


def parse_regions(text: str) -> tuple[Region, ...]:
    """The regions of the setting's text (empty: the continents); InputError if malformed."""
    if not text.strip():
        return CONTINENTS
    regions: list[Region] = []
    for entry in (e.strip() for e in text.split(";")):
        if not entry:
            continue
        name, sep, box = entry.partition("=")
        name = name.strip()
        if not sep or not _NAME.fullmatch(name):
            raise InputError(f"invalid region {entry!r}", _HINT)
        if any(r.name == name for r in regions):
            raise InputError(f"region {name!r} is named twice", "give each region one name")
        regions.append(Region(name, parse_bbox(box.strip())))
    if not regions:
        raise InputError(f"no region in {text!r}", _HINT)
    return tuple(regions)


def regions_ok(text: str) -> bool:
    """Whether the setting's text parses (the config rule)."""
    try:
        parse_regions(text)
    except InputError:
        return False
    return True
