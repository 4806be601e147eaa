"""Reporter-row rules where ours differ from OpenTraffic's datastore (MeasurementSource /
MeasurementParser and Measurement): one row per rule, accepted or rejected with our reason,
on both binning loops (C and Python). docs/opentraffic.md lists each rule beside
OpenTraffic's behaviour and our reason; a test below holds the two lists together."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import pytest

from renderer import binning
from renderer._binning_py import HEADER

TILE_INDEX, HOUR = 2140, 2  # rows of tile 0/2140, epoch hour 2 (7200..10799 s)
SEGMENT = TILE_INDEX << 3
DOC = Path(__file__).resolve().parents[1] / "docs" / "opentraffic.md"


class Rule(NamedTuple):
    name: str
    """As in docs/opentraffic.md, in backticks."""
    fields: dict[str, str]
    """Fields that differ from a good row."""
    reason: str | None
    """Our reject reason; None: accepted."""
    next_id: int | None = None
    """For accepted rows: the next segment of the bin."""
    mode: str = "AUTO"


GOOD = {"segment_id": str(SEGMENT), "next_segment_id": "", "duration": "600", "count": "3",
        "length": "100", "queue_length": "0", "minimum_timestamp": "7200",
        "maximum_timestamp": "7260", "source": "x", "vehicle_type": "AUTO"}

RULES = [
    Rule("count-zero", {"count": "0"}, "bad count"),
    Rule("count-negative", {"count": "-1"}, "bad count"),
    Rule("length-zero", {"length": "0"}, "bad length"),
    Rule("mode-other", {"vehicle_type": "BUS"}, None, mode="BUS"),
    Rule("mode-lowercase", {"vehicle_type": "auto"}, None),
    Rule("mode-empty", {"vehicle_type": ""}, "bad vehicle_type"),
    Rule("next-non-numeric", {"next_segment_id": "abc"}, "bad next_segment_id"),
    Rule("next-empty", {"next_segment_id": ""}, None),
    Rule("next-2^42-1", {"next_segment_id": str(2**42 - 1)}, None),
    Rule("next-2^46-1", {"next_segment_id": str(2**46 - 1)}, None),
    Rule("max-before-min", {"minimum_timestamp": "7260", "maximum_timestamp": "7200"},
         "maximum_timestamp before minimum_timestamp"),
    Rule("unparseable-field", {"duration": "abc"}, "bad duration"),
    Rule("decimal-duration", {"duration": "600.5"}, None),
    Rule("plus-sign", {"count": "+3"}, "bad count"),
    Rule("outside-tile", {"segment_id": str(SEGMENT + 8)}, "segment outside tile"),
    Rule("outside-hour", {"minimum_timestamp": "11000", "maximum_timestamp": "11060"},
         "time outside hour"),
    Rule("field-count", {"vehicle_type": "AUTO,extra"}, "expected 10 fields, got 11"),
]


def _csv(*rows: dict[str, str]) -> bytes:
    lines = [HEADER] + [",".join(row[name] for name in GOOD).encode() for row in rows]
    return b"\n".join(lines) + b"\n"


@pytest.mark.parametrize("implementation", sorted(binning.implementations()))
@pytest.mark.parametrize("rule", RULES, ids=[r.name for r in RULES])
def test_row_rule(rule: Rule, implementation: str) -> None:
    bin_file = binning.implementations()[implementation]
    # the rule's row between two good rows: a bad row never costs the rows after it
    result = bin_file(_csv(GOOD, {**GOOD, **rule.fields}, GOOD), 0, TILE_INDEX, HOUR)
    assert result.file_error is None
    assert result.rows_read == 3
    if rule.reason is None:
        assert result.rejects == []
        assert result.rows_accepted == 3
        mode_bins = [b for b in result.bins if b[0] == rule.mode]
        assert [b[2] for b in mode_bins] == [rule.next_id]
    else:
        assert [(line, reason) for line, _, reason in result.rejects] == [(3, rule.reason)]
        assert result.rows_accepted == 2 and result.observations == 6


def test_every_rule_is_documented_and_every_documented_rule_tested() -> None:
    text = DOC.read_text()
    table = text[text.index("## Reporter rows"):text.index("## Other deliberate differences")]
    documented = {line.split("`")[1] for line in table.splitlines()
                  if line.startswith("| `")}
    assert documented == {r.name for r in RULES}
    readme = (DOC.parents[1] / "README.md").read_text()
    assert "docs/opentraffic.md" in readme
