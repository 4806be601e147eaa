"""Profiles on the engine: a test pipeline declared in one place, run through the engine's
generic submit / work until idle / summarise; adding a stage is one handler plus one line.

The base profile ``t_demo`` has two stages: ``t_split`` items (grouped) fan into one
``t_total``. The extended profile adds the stage ``t_echo`` after ``t_split``: the handler
:func:`echo` below and the ``Stage``/``Then`` lines in ``EXTENDED``, nothing else.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from renderer import pipelines, queue, runner
from renderer.config import Settings
from renderer.db import Connection, Database
from renderer.errors import InputError, QueueError
from renderer.profile import (
    Batch,
    DefaultSchedule,
    Finished,
    Next,
    Offer,
    Profile,
    Stage,
    Submitted,
    Then,
)
from renderer.queue import NewItem, create_set, enqueue_many
from renderer.web import runs

SEEN: list[tuple[str, str]] = []


@pytest.fixture(autouse=True)
def _clear() -> Iterator[None]:
    SEEN.clear()
    yield
    SEEN.clear()


# -- the pipeline's stages ------------------------------------------------------------------

def split(job: queue.Job) -> str:
    SEEN.append((job.item.kind, job.item.key))
    return job.item.key.upper()


def total(job: queue.Job) -> None:
    SEEN.append((job.item.kind, job.item.key))


def echo(job: queue.Job) -> None:  # the added stage
    assert job.settings.queue_retention_days == 3  # the worker's settings, not config.load()
    SEEN.append((job.item.kind, job.item.key))


# -- its batch, offered run and schedule ----------------------------------------------------

def submit(conn: Connection, options: dict[str, Any], settings: Settings) -> Submitted:
    set_id = create_set(conn, f"t_demo {options['name']}")
    enqueue_many(conn, [NewItem("t_split", key, set_id=set_id, group=options["name"])
                        for key in options["keys"]])
    return Submitted(set_id, True, options["name"])


def summarize(conn: Connection, finished: Finished) -> dict[str, Any]:
    return {"name": finished.submitted.detail, "done": finished.stats.done,
            "failed": finished.stats.failed}


def start(conn: Connection, spec: dict[str, Any], settings: Settings) -> str:
    return create_set(conn, f"t_demo web {spec.get('name', '')}")


def _total_of(job: queue.Job, outcome: str) -> list[Next]:
    assert job.item.group is not None
    return [Next(job.item.group)]


BASE = Profile(
    "t_demo",
    stages=(
        Stage("t_split", split, batch_size=10, then=(
            Then("t_total", _total_of, fan_in=True, when="the group's items are done"),)),
        Stage("t_total", total),
    ),
    schedules=(DefaultSchedule("t-demo-nightly", "0 1 * * *", "t_total", "nightly"),),
    runs=(Offer("go", frozenset({"name"}), start),),
    batch=Batch(submit, summarize),
)

EXTENDED = dataclasses.replace(BASE, stages=(
    Stage("t_split", split, batch_size=10, then=(
        Then("t_total", _total_of, fan_in=True, when="the group's items are done"),
        Then("t_echo", lambda job, out: [Next(out)], force=True),)),  # <- the added stage,
    Stage("t_total", total),
    Stage("t_echo", echo),                                            # <- and here
))


@pytest.fixture
def extended() -> Iterator[Profile]:
    pipelines.load_all()
    yield pipelines.add(EXTENDED)
    pipelines.PROFILES.pop(EXTENDED.name)


def test_a_profile_runs_until_idle_with_its_added_stage(
        db: Database, extended: Profile, caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(database_url=db.url, queue_retention_days=3)
    with caplog.at_level(logging.INFO, logger="renderer.worker"):
        summary = runner.run_until_idle(db.url, extended, {"name": "g1", "keys": ["a", "b"]},
                                        settings=settings, processes=None)
    assert summary == {"name": "g1", "done": 5, "failed": 0}
    assert sorted(SEEN) == [("t_echo", "A"), ("t_echo", "B"), ("t_split", "a"),
                            ("t_split", "b"), ("t_total", "g1")]
    with db.connect() as conn:
        echo_item = queue.item_history(conn, "t_echo", "A")
    assert echo_item is not None and echo_item["set_id"] == "t_demo g1"  # set inherited
    plan = [r.getMessage() for r in caplog.records if r.getMessage().startswith("plan: t_demo")]
    assert plan == [
        "plan: t_demo: t_split: 600 s, 5 attempts, batch 10 -> t_total (fan-in: the group's "
        "items are done), t_echo (forced)",
        "plan: t_demo: t_total: 600 s, 5 attempts, batch 1 -> nothing",
        "plan: t_demo: t_echo: 600 s, 5 attempts, batch 1 -> nothing",
        "plan: t_demo: schedules t-demo-nightly '0 1 * * *' -> t_total",
    ]


def test_the_engine_reads_schedules_and_runs_from_the_profiles(extended: Profile) -> None:
    assert ("t-demo-nightly", "t_total") in [(d.name, d.kind)
                                            for d in pipelines.default_schedules()]
    assert "t_demo/go" in runs.available()
    assert runs.lookup({"pipeline": "t_demo", "stage": "go", "name": "x"}).name == "go"


def test_a_handler_without_a_worker_has_no_context() -> None:
    item = queue.Item(1, "t_echo", "A", {}, 1, None, None, "t", 0)
    job = queue.Job(item, None, 0.0)  # type: ignore[arg-type]
    with pytest.raises(QueueError, match="without a context"):
        _ = job.settings


def test_a_stages_key_type_refuses_malformed_keys() -> None:
    pipelines.check_key("speedtile", "AUTO/0/2140/2016-W44")
    pipelines.check_key("t_record_unknown_kind", "anything")  # no stage: no key type
    with pytest.raises(InputError, match="bad speed tile key"):
        pipelines.check_key("speedtile", "AUTO/0/2140")
    with pytest.raises(InputError, match="bad histogram key"):
        pipelines.check_key("histogram", "0/2140")
