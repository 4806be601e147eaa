"""The packed columns of traffic_speeds (renderer/traffic/speedtile_pack.py): packing and
the two ways of unpacking (numpy field by field, struct record by record) agree and invert
each other, at the edges of every field's type."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from renderer.traffic.speedtile_pack import (
    HOUR_COLUMNS,
    NEXT_COLUMNS,
    pack_week,
    unpack_records,
    unpack_row,
)

_INT = {2: st.integers(-2**15, 2**15 - 1), 4: st.integers(-2**31, 2**31 - 1),
        8: st.integers(-2**63, 2**63 - 1)}
_NEXT_WIDTHS = (2, 8, 8, 4, 8, 4, 8)


@st.composite
def weeks(draw: Any) -> dict[str, list[Any]]:
    hours = sorted(draw(st.sets(st.integers(0, 167), max_size=12)))
    nexts = draw(st.lists(st.sampled_from(hours), max_size=20)) if hours else []
    week: dict[str, list[Any]] = {"hours": hours}
    for name, width in zip(HOUR_COLUMNS[:3], (2, 4, 2), strict=True):
        week[name] = [draw(_INT[width]) for _ in hours]
    week["next_hours"] = sorted(nexts)
    for name, width in zip(NEXT_COLUMNS[1:], _NEXT_WIDTHS[1:], strict=True):
        values = _INT[width].filter(lambda v: v != -2**63) if name == "next_ids" else _INT[width]
        week[name] = [draw(st.one_of(st.none(), values) if name == "next_ids" else values)
                      for _ in nexts]
    return week


@settings(max_examples=300, deadline=None)
@given(weeks())
def test_unpacking_inverts_packing_both_ways_alike(week: dict[str, list[Any]]) -> None:
    hour_values, nexts = pack_week(week)
    row = {"segment_id": 1, "hour_values": hour_values, "nexts": nexts}
    fast = unpack_row(row)
    plain = unpack_records(hour_values, nexts)
    assert fast == {"segment_id": 1, **plain}
    for name in (*HOUR_COLUMNS[:3], *NEXT_COLUMNS):
        assert fast[name] == week[name], name
    assert fast["next_segments"] == [week["next_hours"].count(h) for h in week["hours"]]
    assert all(type(v) is int for v in fast["delays"] + fast["speed_variances"])
