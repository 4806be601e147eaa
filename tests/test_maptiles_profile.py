"""The map-tiles pipeline on the engine: its profile (stages, successor, key types, no
schedules), the render run offered to ``POST /api/runs``, and a worker that loads every
profile without importing pyogrio (GDAL)."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace
from typing import Any

import pytest

from renderer import db as dbm
from renderer import pipelines, queue
from renderer.config import Settings
from renderer.db import Database
from renderer.errors import InputError
from renderer.maptiles.profile import BLOCK_KIND, SHAPES_KIND, blocks_of_zoom, render_options
from renderer.maptiles.slice import Block
from renderer.profile import Next
from renderer.web import runs


def test_the_profile_declares_shapes_then_blocks() -> None:
    profile = pipelines.get("tiles")
    assert profile.kinds == (SHAPES_KIND, BLOCK_KIND)
    assert [t.kind for t in profile.stage(SHAPES_KIND).then] == [BLOCK_KIND]
    assert profile.schedules == ()
    assert profile.batch is not None
    assert pipelines.offers()[("tiles", "render")].fields == {"min_zoom", "max_zoom"}


def test_the_zoom_outcome_asks_for_one_block_item_each() -> None:
    options = {"margin_px": 4.0, "resolution": 4}
    job: Any = SimpleNamespace(payload={**options, "first_zoom": 4})  # a band's item
    found = list(blocks_of_zoom(job, [Block(4, 0, 1), Block(5, 1, 1)]))
    assert found == [Next("4/0/1", options), Next("5/1/1", options)]


@pytest.mark.parametrize("kind,key", [(SHAPES_KIND, "x"), (SHAPES_KIND, "23"),
                                      (SHAPES_KIND, "-1"), (BLOCK_KIND, "7/1")])
def test_malformed_keys_are_refused(kind: str, key: str) -> None:
    pipelines.check_key(SHAPES_KIND, "7")
    pipelines.check_key(BLOCK_KIND, "7/1/2")
    with pytest.raises(InputError, match=f"bad {kind} key"):
        pipelines.check_key(kind, key)


@pytest.mark.parametrize("args,match", [
    ((5, 3), "min zoom 5 is above max zoom 3"),
    ((0, 23), "invalid max zoom 23"),
    (("0", 3), "invalid min zoom '0'"),
    ((True, 3), "invalid min zoom True"),
    ((0, 3, 3), "resolution 3 does not divide 256"),
])
def test_bad_render_options_are_one_line_errors(args: tuple[Any, ...], match: str) -> None:
    with pytest.raises(InputError, match=match):
        render_options(*args)


def test_a_worker_loading_every_profile_does_not_import_gdal() -> None:
    """Every worker imports every profile at start; pyogrio (GDAL) would cost seconds each."""
    code = ("import sys; from renderer import pipelines, worker; pipelines.load_all(); "
            "assert 'tiles' in pipelines.PROFILES; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pyogrio', 'shapely')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=300)
    assert out.stdout.strip() == "[]"


def test_the_render_run_offered_over_http(db: Database) -> None:
    spec = {"pipeline": "tiles", "stage": "render", "min_zoom": 2, "max_zoom": 4}
    with pytest.raises(InputError, match="unknown field"):
        runs.lookup({**spec, "resolution": 4})
    settings = Settings(database_url=db.url)
    with dbm.transaction(db.url) as conn:
        set_id = runs.lookup(spec).start(conn, spec, settings)
        with pytest.raises(InputError, match="invalid max zoom 99"):
            runs.lookup(spec).start(conn, {**spec, "max_zoom": 99}, settings)
    with db.connect() as conn:
        items = conn.execute("SELECT key, payload->>'first_zoom' AS first, priority, set_id"
                             " FROM work_queue WHERE kind = %s ORDER BY key",
                             [SHAPES_KIND]).fetchall()
    # one item per band of two zooms, keyed by its deepest
    assert [(r["key"], r["first"], r["priority"], r["set_id"]) for r in items] == [
        (k, f, queue.PRIORITY_ON_DEMAND, set_id) for k, f in (("2", "2"), ("4", "3"))]
