"""The engine's batch hooks (``Stage.start_batch``, ``Stage.finish_batch``): a stage reads
for, and writes, a whole claimed batch at once, and every guarantee of a plain batch holds:
the output of each item commits exactly once with its completion, a refused or bad item fails
alone with its own error, and its successors are not declared.

The stages write into ``queue_test_output`` (``n == 1`` for every key: "done exactly once").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import psycopg

from renderer import queue
from renderer.errors import InputError
from renderer.profile import Next, Profile, Stage, Then
from renderer.queue import Job, NewItem
from renderer.worker import WorkerStats, run_worker
from tests.queue_kinds import item, outputs, qconn, states

__all__ = ["qconn"]  # fixtures used by this module

calls: list[tuple[str, list[str]]] = []
"""(hook, keys of its batch) of every hook call, in order."""


def _write(jobs: Sequence[Job]) -> None:
    """One statement for the output of a whole batch."""
    jobs[0].conn.execute(
        "INSERT INTO queue_test_output (kind, key) SELECT %s, unnest(%s::text[])"
        " ON CONFLICT (kind, key) DO UPDATE SET n = queue_test_output.n + 1",
        [jobs[0].item.kind, [j.item.key for j in jobs]])


def prepare(job: Job) -> str:
    """The handler: computes, writes nothing; fails on payload "handler"."""
    if job.payload.get("handler"):
        raise ValueError(f"{job.item.key}: cannot prepare")
    return f"{job.item.key}:{job.prefetched}"


def start(jobs: Sequence[Job]) -> Mapping[int, Any]:
    calls.append(("start", [j.item.key for j in jobs]))
    bad = any(j.payload.get("start") for j in jobs)  # 1 / 0 spoils the transaction: rolled
    jobs[0].conn.execute("SELECT 1 / %s", [0 if bad else 1])  # back to before the hook
    return {j.item.id: f"pre-{j.item.key}" for j in jobs}


def finish(done: Sequence[tuple[Job, Any]]) -> Mapping[int, BaseException]:
    calls.append(("finish", [j.item.key for j, _ in done]))
    assert all(out == f"{j.item.key}:pre-{j.item.key}" or out == f"{j.item.key}:None"
               for j, out in done)
    refused = {j.item.id: InputError(f"{j.item.key} refused", "by the hook")
               for j, _ in done if j.payload.get("refuse")}
    _write([j for j, _ in done if j.item.id not in refused])
    if any(j.payload.get("raise") for j, _ in done):
        raise ValueError("the batch write failed after writing")
    return refused


def successors(job: Job, outcome: str) -> list[Next]:
    if job.payload.get("successor"):
        raise RuntimeError(f"{job.item.key}: no successor")
    return [Next(job.item.key)]


def after(job: Job) -> None:
    """The successor stage: one row each."""
    _write([job])


PROFILE = Profile("t_hooks", stages=(
    Stage("t_hooked", prepare, batch_size=10, max_attempts=1, start_batch=start,
          finish_batch=finish, then=(Then("t_after", successors),)),
    Stage("t_after", after, batch_size=50),
))
PROFILE.register()


def _run(database_url: str, qconn: psycopg.Connection[Any],
         payloads: dict[int, dict[str, Any]], n: int = 25) -> WorkerStats:
    calls.clear()
    queue.enqueue_many(qconn, [NewItem("t_hooked", f"k{i:02d}", payloads.get(i))
                               for i in range(n)])
    queue.sync_kinds(qconn)
    return run_worker(database_url, kinds=["t_hooked", "t_after"], until_empty=True,
                      poll_seconds=0.05)


def test_the_hooks_read_and_write_a_whole_batch_once(database_url: str,
                                                     qconn: psycopg.Connection[Any]) -> None:
    stats = _run(database_url, qconn, {})
    assert (stats.done, stats.failed) == (50, 0)
    finishes = [keys for hook, keys in calls if hook == "finish"]
    starts = [keys for hook, keys in calls if hook == "start"]
    assert [len(keys) for keys in finishes] == [10, 10, 5]  # one call per claimed batch
    assert starts == finishes  # each handler had its prefetched value (asserted in finish)
    assert outputs(qconn, "t_hooked") == {f"k{i:02d}": 1 for i in range(25)}
    assert outputs(qconn, "t_after") == {f"k{i:02d}": 1 for i in range(25)}


def test_a_refused_item_fails_alone_with_its_reason(database_url: str,
                                                    qconn: psycopg.Connection[Any]) -> None:
    stats = _run(database_url, qconn, {3: {"refuse": True}, 14: {"refuse": True}})
    assert (stats.done, stats.failed) == (46, 2)
    good = {f"k{i:02d}": 1 for i in range(25) if i not in (3, 14)}
    assert outputs(qconn, "t_hooked") == good
    assert outputs(qconn, "t_after") == good  # no successor for the refused
    assert item(qconn, "t_hooked", "k03")["state"] == "failed"
    assert item(qconn, "t_hooked", "k03")["last_error"] == "InputError k03 refused (by the hook)"
    assert [len(keys) for hook, keys in calls if hook == "finish"] == [10, 10, 5]  # no rerun


def test_a_hook_that_raises_is_called_again_item_by_item(
        database_url: str, qconn: psycopg.Connection[Any]) -> None:
    """The batch's write is rolled back (not counted twice) and each item is written alone:
    only the bad one fails, with its own error."""
    stats = _run(database_url, qconn, {12: {"raise": True}})
    assert (stats.done, stats.failed) == (48, 1)
    good = {f"k{i:02d}": 1 for i in range(25) if i != 12}
    assert outputs(qconn, "t_hooked") == good
    assert outputs(qconn, "t_after") == good
    finishes = [keys for hook, keys in calls if hook == "finish"]
    second = [f"k{i:02d}" for i in range(10, 20)]
    assert finishes == [[f"k{i:02d}" for i in range(10)], second, *([k] for k in second),
                        [f"k{i:02d}" for i in range(20, 25)]]
    assert item(qconn, "t_hooked", "k12")["last_error"] == (
        "ValueError the batch write failed after writing")


def test_a_start_hook_that_fails_leaves_the_handlers_to_read(
        database_url: str, qconn: psycopg.Connection[Any]) -> None:
    stats = _run(database_url, qconn, {4: {"start": True}})
    assert (stats.done, stats.failed) == (50, 0)  # its failed statement is rolled back
    assert outputs(qconn, "t_hooked") == {f"k{i:02d}": 1 for i in range(25)}


def test_a_failing_handler_or_successor_costs_the_others_nothing(
        database_url: str, qconn: psycopg.Connection[Any]) -> None:
    """A handler that fails before the hook (and wrote nothing: the start hook's reads are
    not its own) is left out of it, with no rerun; a successor that fails after the hook
    wrote makes the batch run again without its item."""
    stats = _run(database_url, qconn, {10: {"handler": True}, 17: {"successor": True}})
    assert (stats.done, stats.failed) == (46, 2)
    good = {f"k{i:02d}": 1 for i in range(25) if i not in (10, 17)}
    assert outputs(qconn, "t_hooked") == good
    assert outputs(qconn, "t_after") == good
    assert states(qconn, "t_hooked") == {"done": 23, "failed": 2}
    assert item(qconn, "t_hooked", "k17")["last_error"] == "RuntimeError k17: no successor"
    assert item(qconn, "t_hooked", "k10")["last_error"] == "ValueError k10: cannot prepare"
    keys = [f"k{i:02d}" for i in range(25)]
    assert calls == [
        ("start", keys[:10]), ("finish", keys[:10]),
        ("start", keys[10:20]), ("finish", keys[11:20]),  # k10 left out, no rerun for it
        ("start", keys[11:17] + keys[18:20]), ("finish", keys[11:17] + keys[18:20]),
        ("start", keys[20:]), ("finish", keys[20:])]


def test_the_plan_says_a_stage_reads_and_writes_its_batch_at_once() -> None:
    assert PROFILE.plan()[0] == (
        "t_hooks: t_hooked: 600 s, 5 attempts, batch 10 read and written at once -> t_after "
        "(enqueue)").replace("5 attempts", "1 attempts")
