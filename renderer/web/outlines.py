"""Country outlines for the coverage map, as SVG path data (x = lon, y = -lat).

The page reads :data:`OUTLINES`, a compact file in the package's static folder (about
95 KB), generated from Natural Earth's 1:110m countries as the ``pyogrio`` wheel ships them
in its test fixtures, simplified to 0.1° and rounded to 0.1°::

    python -m renderer.web.outlines   # rewrites renderer/web/static/countries.json

So the page needs neither GDAL nor pyogrio's fixtures at runtime (an installed wheel of
pyogrio built without them still works), and the file ships in the wheel as package data
(``web/static/*``). A missing or unreadable file draws no outlines and logs why: the map
still shows its tiles and graticule.

Example
-------
>>> [c.name for c in load()][:2]
['Fiji', 'Tanzania']
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["OUTLINES", "Outline", "generate", "load"]

log = logging.getLogger(__name__)

OUTLINES = Path(__file__).resolve().parent / "static" / "countries.json"
TOLERANCE = 0.1  # degrees: simplification (Douglas-Peucker, topology kept)
DIGITS = 1  # decimals kept; 0.1° is about 11 km, under a pixel of a continent-wide map


@dataclass(frozen=True)
class Outline:
    name: str
    bbox: tuple[float, float, float, float]  # west, south, east, north
    d: str  # SVG path data

    def meets(self, box: tuple[float, float, float, float]) -> bool:
        """Whether the outline's box meets ``box`` (west, south, east, north)."""
        return not (self.bbox[2] < box[0] or self.bbox[0] > box[2]
                    or self.bbox[3] < box[1] or self.bbox[1] > box[3])


@functools.cache
def load(path: Path = OUTLINES) -> tuple[Outline, ...]:
    """The outlines of the packaged file, read once; () with a warning if it is unusable."""
    try:
        document = json.loads(path.read_text())
        return tuple(_outline(c) for c in document["countries"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("no country outlines on the coverage map: %s unusable (%s); "
                    "regenerate it with `python -m renderer.web.outlines`", path, exc)
        return ()


def _outline(c: dict[str, Any]) -> Outline:
    west, south, east, north = (float(v) for v in c["bbox"])
    return Outline(str(c["name"]), (west, south, east, north), str(c["d"]))


def _ring(coords: Any) -> str:
    points: list[tuple[float, float]] = []
    for lon, lat in coords[:-1]:  # closed rings: the last point repeats the first
        p = (round(float(lon), DIGITS), round(-float(lat), DIGITS))
        if not points or points[-1] != p:
            points.append(p)
    if len(points) < 3:
        return ""
    return "M" + "L".join(f"{x:g} {y:g}" for x, y in points) + "Z"


def generate(source: Path | None = None) -> dict[str, Any]:
    """The outline document from Natural Earth's shapefile (pyogrio's copy by default)."""
    # Imported here: only regenerating the file needs GDAL and shapely, never the service.
    import pyogrio
    import shapely
    from pyogrio.raw import read

    source = source or (Path(pyogrio.__file__).parent / "tests" / "fixtures"
                        / "naturalearth_lowres" / "naturalearth_lowres.shp")
    meta, _, geometry, values = read(str(source))
    names = dict(zip(meta["fields"], values, strict=True))["name"]
    countries = []
    for name, shape in zip(names, shapely.from_wkb(geometry), strict=True):
        simple = shapely.simplify(shape, TOLERANCE, preserve_topology=True)
        polygons = getattr(simple, "geoms", [simple])
        d = "".join(_ring(list(ring.coords)) for poly in polygons
                    for ring in (poly.exterior, *poly.interiors))
        if d:
            bbox = [round(float(v), DIGITS) for v in shapely.bounds(simple)]
            countries.append({"name": str(name), "bbox": bbox, "d": d})
    return {"generated": "by `python -m renderer.web.outlines`; do not edit",
            "source": "Natural Earth 1:110m countries (public domain), "
                      "naturalearth_lowres of the pyogrio wheel",
            "tolerance": TOLERANCE, "countries": countries}


def write(path: Path = OUTLINES) -> int:
    """Regenerate the packaged file; its size in bytes."""
    text = json.dumps(generate(), separators=(",", ":"), ensure_ascii=False) + "\n"
    path.write_text(text)
    return len(text.encode())


if __name__ == "__main__":
    print(f"{OUTLINES}: {write():,} bytes")
