"""The connector's own adapters (renderer.db): the fast paths a worker takes a batch at a
time must give what the driver's general ones give, on a real server."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from renderer import db

TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"))
INT8 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10**18), max_value=10**18)
    | st.floats(allow_nan=False, allow_infinity=False, width=32) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12)
ONCE = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture
def conn(database_url: str) -> Iterator[db.Connection]:
    with db.connect(database_url, autocommit=True) as c:
        yield c


@ONCE
@given(st.lists(INT8, max_size=600))
def test_an_id_array_reaches_the_server_as_the_same_bigint_array(
        conn: db.Connection, ids: list[int]) -> None:
    row = conn.execute("SELECT %(ids)s AS a, pg_typeof(%(ids)s)::text AS t",
                       {"ids": db.IdArray(ids)}).fetchone()
    assert row == {"a": ids, "t": "bigint[]"}


@ONCE
@given(JSON)
def test_json_values_load_as_the_standard_parser_reads_the_server_text(
        conn: db.Connection, value: object) -> None:
    row = conn.execute("SELECT %(v)s::jsonb AS j, %(v)s::json AS p, %(v)s::jsonb::text AS t",
                       {"v": db.Jsonb(value)}).fetchone()
    assert row["j"] == row["p"] == json.loads(row["t"])


def test_an_empty_object_loads_as_a_new_dict_each_time(conn: db.Connection) -> None:
    rows = conn.execute("SELECT '{}'::jsonb AS j FROM generate_series(1, 2)").fetchall()
    first, second = rows[0]["j"], rows[1]["j"]
    first["mutated"] = True  # a handler may change its payload
    assert second == {} and first is not second
    assert conn.execute("SELECT '{}'::jsonb AS j").fetchone()["j"] == {}
