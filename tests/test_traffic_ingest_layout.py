"""Pure functions of the ingest stage: ISO weeks, epoch hours, the source layout, item keys."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from renderer import tiles
from renderer.traffic.layout import Prefix, fingerprint, parse_key
from renderer.traffic.weeks import (
    format_hour,
    hour_of_week,
    hour_range_of_week,
    hour_start,
    monday_of_week,
    parse_hour,
    parse_week,
    week_of_hour,
)

HOURS = st.integers(min_value=0, max_value=24 * 366 * 200)  # 1970 .. 2170


@given(HOURS)
def test_an_hour_lies_in_the_range_of_its_week(hour: int) -> None:
    first, end = hour_range_of_week(week_of_hour(hour))
    assert first <= hour < end
    assert end - first == 168
    assert hour_of_week(hour) == hour - first
    assert hour_start(first).weekday() == 0 and hour_start(first).hour == 0


@given(HOURS)
def test_week_matches_the_standard_library(hour: int) -> None:
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(hours=hour)
    year, week, _ = moment.isocalendar()
    assert week_of_hour(hour) == f"{year}-W{week:02d}"


@given(HOURS)
def test_format_and_parse_hour_round_trip(hour: int) -> None:
    assert parse_hour(format_hour(hour)) == hour


def test_iso_weeks_at_new_year() -> None:
    # ISO years differ from calendar years here; OpenTraffic mixed %W with ISO.
    assert week_of_hour(parse_hour("2016-01-01T12")) == "2015-W53"
    assert week_of_hour(parse_hour("2018-12-31T00")) == "2019-W01"
    assert monday_of_week("2020-W53") == date(2020, 12, 28)
    assert hour_range_of_week("2016-W44") == (410520, 410688)


@pytest.mark.parametrize("text", ["2016-W54", "2015-W00", "16-W01", "2016-44", "W44"])
def test_bad_weeks(text: str) -> None:
    with pytest.raises(ValueError):
        parse_week(text)


def test_hour_spellings() -> None:
    for text in ("2016-11-01T18", "2016-11-01T18:00", "2016-11-01T18:00:00Z", "410562"):
        assert parse_hour(text) == 410562
    for bad in ("2016-11-01", "2016-13-01T18", "yesterday", "2016-11-01T18:30"):
        with pytest.raises(ValueError):
            parse_hour(bad)


TILES = st.one_of(
    st.builds(tiles.Tile, st.sampled_from([0, 1, 2]), st.integers(0, 4049)),
    st.builds(tiles.Tile, st.just(1), st.integers(0, 64799)),
    st.builds(tiles.Tile, st.just(2), st.integers(0, 1036799)),
)
NAMES = st.text(st.sampled_from("abcxyz019-_."), min_size=1, max_size=20).filter(
    lambda s: s not in (".", ".."))


@given(TILES, st.integers(0, 10**7), NAMES)
def test_layout_round_trip(tile: tiles.Tile, hour: int, name: str) -> None:
    prefix = Prefix(tile.level, tile.index, hour)
    assert parse_key(prefix.folder + name) == prefix
    assert Prefix.from_item_key(prefix.key) == prefix
    level0 = tile
    while level0.level:
        level0 = tiles.parent(level0)
    assert prefix.group == f"{level0.index}/{week_of_hour(hour)}"


@pytest.mark.parametrize("key", [
    "1477872000_1477875599/0/3105",  # no file name
    "1477872000_1477875599/0/3105/",  # empty file name
    "1477872000_1477875600/0/3105/a.csv",  # end is not start + 3599
    "1477872001_1477875600/0/3105/a.csv",  # start is not on the hour
    "1477872000_1477875599/3/3105/a.csv",  # no level 3
    "1477872000_1477875599/0/4050/a.csv",  # level 0 ends at 4049
    "1477872000_1477875599/0/31x5/a.csv",
    "_archive/1477872000_1477875599/0/3105/a.csv",
    "README.md",
    "1477872000-1477875599/0/3105/a.csv",
])
def test_keys_outside_the_layout(key: str) -> None:
    assert parse_key(key) is None


def test_fingerprint_is_order_free_and_content_sensitive() -> None:
    a = [("k1", 10, "c1"), ("k2", 20, "c2")]
    assert fingerprint(a) == fingerprint(reversed(a))
    assert fingerprint(a) != fingerprint([("k1", 10, "c1"), ("k2", 20, "c3")])
    assert fingerprint(a) != fingerprint(a[:1])


def test_item_key_errors() -> None:
    for bad in ("0/3105", "0/3105/x", "3/1/2", "0/4050/1"):
        with pytest.raises(ValueError):
            Prefix.from_item_key(bad)
