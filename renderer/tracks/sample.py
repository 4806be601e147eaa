"""Realistic generated tracks, and writers for every input format.

Vessels sail great-circle legs between real ports at 8-22 knots and stay in port for hours
(at anchor, a report every 3 minutes); near land (within ``coast_km`` of a port) terrestrial
AIS hears every report, further out only satellites do: a report every 10-30 minutes, which
arrives minutes to hours late (``latency``). Legs have AIS gaps (an hour or more without any
report). A few vessels carry two identifiers: some of their reports name an IMO number
beside the MMSI (and their NMEA has static messages, type 5, linking the two).

Deterministic for a seed. Times are whole seconds, positions as the receivers give them.

Example
-------
>>> reports = generate(vessels=3, days=1, seed=7)
>>> len({r.ids[0] for r in reports}) <= 3
True
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from pyais.encode import encode_dict

from renderer.tracks.formats import Report, encode_fixes

__all__ = ["PORTS", "generate", "write", "write_csv", "write_fixes", "write_ndjson",
           "write_nmea"]

PORTS = [  # (name, lat, lon)
    ("Sydney", -33.85, 151.25), ("Melbourne", -37.85, 144.90), ("Brisbane", -27.38, 153.17),
    ("Fremantle", -32.05, 115.73), ("Darwin", -12.47, 130.85), ("Hobart", -42.88, 147.34),
    ("Newcastle", -32.92, 151.79), ("Port Hedland", -20.31, 118.58),
    ("Auckland", -36.84, 174.77), ("Singapore", 1.26, 103.84), ("Jakarta", -6.10, 106.88),
    ("Manila", 14.58, 120.96), ("Hong Kong", 22.29, 114.16), ("Shanghai", 31.23, 121.50),
    ("Busan", 35.10, 129.04), ("Yokohama", 35.45, 139.65), ("Noumea", -22.27, 166.44),
    ("Suva", -18.13, 178.42), ("Port Moresby", -9.48, 147.15), ("Townsville", -19.25, 146.83),
    ("Gladstone", -23.84, 151.26), ("Adelaide", -34.78, 138.48), ("Dampier", -20.66, 116.71),
    ("Colombo", 6.95, 79.85),
]
EARTH_KM = 6371.0
KNOT_KMH = 1.852
PORT_INTERVAL = 180


def _vec(lat: float, lon: float) -> tuple[float, float, float]:
    la, lo = math.radians(lat), math.radians(lon)
    return (math.cos(la) * math.cos(lo), math.cos(la) * math.sin(lo), math.sin(la))


def _latlon(v: tuple[float, float, float]) -> tuple[float, float]:
    x, y, z = v
    return (math.degrees(math.atan2(z, math.hypot(x, y))), math.degrees(math.atan2(y, x)))


def _course(a: tuple[float, float], b: tuple[float, float]) -> float:
    la1, lo1, la2, lo2 = map(math.radians, (*a, *b))
    y = math.sin(lo2 - lo1) * math.cos(la2)
    x = math.cos(la1) * math.sin(la2) - math.sin(la1) * math.cos(la2) * math.cos(lo2 - lo1)
    return (math.degrees(math.atan2(y, x)) + 360) % 360


class _Vessel:
    def __init__(self, rng: random.Random, number: int, interval: float) -> None:
        self.rng = rng
        self.mmsi = str(503000000 + number)
        self.imo = str(9300000 + number) if number % 20 == 7 else None  # 1 in 20: two ids
        self.cls = "B" if number % 5 == 4 else "A"
        self.interval = interval * (3 if self.cls == "B" else 1)
        self.port = rng.randrange(len(PORTS))
        self.t = 0.0

    def ids(self) -> tuple[tuple[str, str], ...]:
        if self.imo and self.rng.random() < 0.1:
            return (("imo", self.imo), ("mmsi", self.mmsi))
        return (("mmsi", self.mmsi),)

    def report(self, t: float, lat: float, lon: float, sog: float | None, cog: float | None,
               status: int, latency: int | None = None) -> Report:
        return Report(ids=self.ids(), time_ms=int(t) * 1000, lat=round(lat, 6),
                      lon=round(((lon + 180) % 360) - 180, 6),
                      sog=None if sog is None else round(sog, 1),
                      cog=None if cog is None else round(cog, 1) % 360,
                      heading=None if cog is None else float(round(cog) % 360),
                      nav_status=status, latency=latency, source=1 if latency is None else 2,
                      ais_class=self.cls)

    def stay(self, t: float, end: float) -> Iterator[Report]:
        _, lat, lon = PORTS[self.port]
        hours = self.rng.uniform(2, 30)
        stop = min(end, t + hours * 3600)
        while t < stop:
            yield self.report(t, lat + self.rng.gauss(0, 0.002), lon + self.rng.gauss(0, 0.002),
                              0.0, None, 5)
            t += PORT_INTERVAL * self.rng.uniform(0.8, 1.2)
        self.t = stop

    def leg(self, t: float, end: float, coast_km: float) -> Iterator[Report]:
        target = self.rng.choice([i for i in range(len(PORTS)) if i != self.port])
        a, b = PORTS[self.port][1:], PORTS[target][1:]
        va, vb = _vec(*a), _vec(*b)
        angle = math.acos(max(-1.0, min(1.0, sum(p * q for p, q in zip(va, vb, strict=True)))))
        km = angle * EARTH_KM
        knots = self.rng.uniform(8, 22)
        hours = km / (knots * KNOT_KMH)
        start, arrive = t, t + hours * 3600
        gap_at = start + self.rng.uniform(0.2, 0.8) * (arrive - start) \
            if self.rng.random() < 0.5 else None
        gap_len = self.rng.uniform(1, 4) * 3600
        heading = _course(a, b)
        while t < min(arrive, end):
            if gap_at is not None and gap_at <= t < gap_at + gap_len:  # AIS gap: nothing heard
                t = gap_at + gap_len
                continue
            f = (t - start) / (arrive - start)
            s = math.sin(angle) or 1e-12
            wa, wb = math.sin((1 - f) * angle) / s, math.sin(f * angle) / s
            x, y, z = (wa * p + wb * q for p, q in zip(va, vb, strict=True))
            lat, lon = _latlon((x, y, z))
            offshore = min(f, 1 - f) * km > coast_km
            latency = int(self.rng.expovariate(1 / 3600)) + 60 if offshore else None
            yield self.report(t, lat, lon, knots + self.rng.gauss(0, 0.3),
                              (heading + self.rng.gauss(0, 1)) % 360, 0, latency)
            t += (self.rng.uniform(600, 1800) if offshore
                  else self.interval * self.rng.uniform(0.8, 1.2))
        self.port = target
        self.t = min(arrive, end)


def generate(*, vessels: int = 50, days: int = 2, start: datetime | None = None,
             interval: float = 30.0, coast_km: float = 150.0, seed: int = 1) -> list[Report]:
    """Reports of ``vessels`` vessels over ``days`` UTC days from ``start`` (default
    2026-12-01), in arrival order (time + latency). ``interval`` is the seconds between
    terrestrial reports of a class A vessel under way (class B: three times that)."""
    rng = random.Random(seed)
    t0 = (start or datetime(2026, 12, 1, tzinfo=UTC)).timestamp()
    end = t0 + days * 86400
    out: list[Report] = []
    for number in range(vessels):
        v = _Vessel(random.Random(rng.random()), number, interval)
        v.t = t0 + v.rng.uniform(0, 3600)
        if v.rng.random() < 0.5:
            out.extend(v.stay(v.t, end))
        while v.t < end:
            out.extend(v.leg(v.t, end, coast_km))
            if v.t < end:
                out.extend(v.stay(v.t, end))
    out.sort(key=lambda r: (r.time_ms + (r.latency or 0) * 1000, r.ids))
    return out


# -- writers ---------------------------------------------------------------------------------

def _iso(ms: int) -> str:
    t = datetime.fromtimestamp(ms / 1000, UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def _blank(v: object) -> str:
    return "" if v is None else str(v)


CSV_HEADER = "time,mmsi,imo,callsign,lat,lon,sog,cog,heading,nav_status,rot,latency,source," \
             "ais_class\n"


def write_csv(reports: Iterable[Report], path: Path) -> int:
    n = 0
    with open(path, "w") as f:
        f.write(CSV_HEADER)
        for r in reports:
            ids = dict(r.ids)
            f.write(",".join([_iso(r.time_ms), ids.get("mmsi", ""), ids.get("imo", ""),
                              ids.get("callsign", ""), repr(r.lat), repr(r.lon)]
                             + [_blank(v) for v in (r.sog, r.cog, r.heading, r.nav_status,
                                                    r.rot, r.latency, r.source, r.ais_class)])
                    + "\n")
            n += 1
    return n


def write_ndjson(reports: Iterable[Report], path: Path) -> int:
    n = 0
    with open(path, "w") as f:
        for r in reports:
            obj = {"ids": dict(r.ids), "time": _iso(r.time_ms), "lat": r.lat, "lon": r.lon}
            obj.update({k: getattr(r, k) for k in ("sog", "cog", "heading", "nav_status", "rot",
                                                   "latency", "source", "ais_class")
                        if getattr(r, k) is not None})
            f.write(json.dumps(obj, separators=(",", ":")) + "\n")
            n += 1
    return n


def _tag(ms: int) -> str:
    body = f"c:{ms // 1000}"
    check = 0
    for ch in body:
        check ^= ord(ch)
    return f"\\{body}*{check:02X}\\"


def nmea_lines(reports: Iterable[Report]) -> Iterator[str]:
    """AIVDM sentences with a tag block time: type 1 (class A) or 18 (class B) positions,
    and a type 5 static message (two sentences) whenever a report names an IMO number."""
    seq = 0
    for r in reports:
        ids = dict(r.ids)
        mmsi = int(ids["mmsi"])
        if "imo" in ids:
            seq = seq % 9 + 1
            for s in encode_dict({"type": 5, "mmsi": mmsi, "imo": int(ids["imo"]),
                                  "callsign": ids.get("callsign", ""), "shipname": "SAMPLE"},
                                 sentence_type="VDM", seq_id=seq):
                yield _tag(r.time_ms) + s
        msg: dict[str, str | int | float | bytes | bool] = {
            "type": 1 if r.ais_class != "B" else 18, "mmsi": mmsi, "lat": r.lat, "lon": r.lon,
            "speed": 102.3 if r.sog is None else r.sog,
            "course": 360 if r.cog is None else r.cog,
            "heading": 511 if r.heading is None else int(r.heading)}
        if r.ais_class != "B":
            msg["status"] = 15 if r.nav_status is None else r.nav_status
        for s in encode_dict(msg, sentence_type="VDM", radio_channel="A"):
            yield _tag(r.time_ms) + s


def write_nmea(reports: Iterable[Report], path: Path) -> int:
    n = 0
    with open(path, "w") as f:
        for line in nmea_lines(reports):
            f.write(line + "\n")
            n += 1
    return n


def write_fixes(reports: Iterable[Report], path: Path) -> int:
    data = encode_fixes(reports)
    path.write_bytes(data)
    return len(data) // 35


WRITERS = {"csv": (write_csv, ".csv"), "ndjson": (write_ndjson, ".ndjson"),
           "nmea": (write_nmea, ".nmea"), "fixes": (write_fixes, ".fixes")}


def write(reports: list[Report], out: Path, fmt: str, *, per_file: int = 0) -> list[Path]:
    """Write reports as files of ``fmt`` under ``out`` (``per_file`` reports a file, all in
    one when 0), named by their order; the paths written."""
    writer, suffix = WRITERS[fmt]
    out.mkdir(parents=True, exist_ok=True)
    size = per_file or max(1, len(reports))
    paths = []
    for i in range(0, max(1, len(reports)), size):
        path = out / f"reports-{i // size:05d}{suffix}"
        writer(reports[i:i + size], path)
        paths.append(path)
    return paths
