"""`renderer work` and `renderer queue ...` end to end, as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.queue_kinds import OUTPUT_DDL, PLUGIN


def run(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RENDERER_PLUGINS": PLUGIN, "RENDERER_POLL_SECONDS": "0.2"}
    return subprocess.run([sys.executable, "-m", "renderer", *args], capture_output=True,
                          text=True, env=env, timeout=timeout)


def one_line_error(result: subprocess.CompletedProcess[str], needle: str,
                   code: int = 1) -> None:
    """Exit 1 for a QueueError (a runtime failure), 2 for an InputError (a usage error)."""
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], result.stderr


@pytest.mark.acceptance
def test_enqueue_work_status_history(renderer_env: dict[str, str]) -> None:
    with psycopg.connect(renderer_env["RENDERER_DATABASE_URL"], autocommit=True) as conn:
        conn.execute(OUTPUT_DDL)
    result = run(["queue", "enqueue", "t_record", "a", "b", "--set", "cli set",
                  "--payload", '{"x": 1}'])
    assert result.returncode == 0, result.stderr
    # In a pipe: tab-separated rows with a header; --json for programs.
    assert result.stdout.splitlines() == ["kind\tkey\taction", "t_record\ta\tinserted",
                                          "t_record\tb\tinserted"]
    again = json.loads(run(["queue", "enqueue", "t_record", "a", "--json"]).stdout)
    assert [(r["kind"], r["key"]) for r in again] == [("t_record", "a")], again
    assert isinstance(again[0]["action"], str)
    assert run(["queue", "enqueue", "t_fail", "bad", "--on-demand"]).returncode == 0

    status = json.loads(run(["queue", "status", "--json"]).stdout)
    assert status["total"]["pending"] == 3
    assert status["sets"]["cli set"]["pending"] == 2

    result = run(["work", "--processes", "2", "--kinds", "t_record,t_fail", "--until-empty"])
    assert result.returncode == 0, result.stderr
    assert "done 2 failed 2" in result.stdout  # t_fail: two attempts

    status = json.loads(run(["queue", "status", "--json"]).stdout)
    assert status["kinds"]["t_record"]["done"] == 2 and status["kinds"]["t_fail"]["failed"] == 1
    failed = json.loads(run(["queue", "failed", "--json"]).stdout)
    assert [(f["kind"], f["key"]) for f in failed] == [("t_fail", "bad")]
    history = run(["queue", "history", "t_fail", "bad"])
    assert "ValueError: bad input bad" in history.stdout and "Traceback" in history.stdout
    assert run(["queue", "retry", "--kind", "t_fail"]).stdout.startswith("1 item(s)")
    assert "pruned 0" in run(["queue", "prune"]).stdout


@pytest.mark.acceptance
def test_work_with_notify_off_and_max_items(renderer_env: dict[str, str]) -> None:
    url = renderer_env["RENDERER_DATABASE_URL"]
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        conn.execute(OUTPUT_DDL)
        conn.execute("SELECT renderer.queue_enqueue('t_noop', 'k' || g) FROM"
                     " generate_series(1, 30) g")
        env = {**os.environ, "RENDERER_PLUGINS": PLUGIN, "RENDERER_NOTIFY": "0",
               "RENDERER_POLL_SECONDS": "0.1"}
        result = subprocess.run([sys.executable, "-m", "renderer", "work", "-p", "1",
                                 "--kinds", "t_noop", "--max-items", "10"],
                                capture_output=True, text=True, env=env, timeout=120)
        assert result.returncode == 0, result.stderr
        n = conn.execute("SELECT count(*) AS n FROM queue_items WHERE state = 'done'").fetchone()
        assert n["n"] == 10


def test_user_errors_are_one_line(renderer_env: dict[str, str]) -> None:
    one_line_error(run(["queue", "pause", "no such set"]), "no set 'no such set'")
    one_line_error(run(["work", "--kinds", "nope", "--until-empty"]), "unknown work-queue kind")
    one_line_error(run(["queue", "enqueue", "t_record", "k", "--payload", "[1"]), "not JSON",
                   code=2)
    one_line_error(run(["queue", "history", "t_record", "missing"]), "no item")


def test_sets_from_the_command_line(renderer_env: dict[str, str]) -> None:
    assert run(["queue", "enqueue", "t_record", "x", "y", "--set", "w47"]).returncode == 0
    assert run(["queue", "pause", "w47"]).stdout.strip() == "paused set 'w47': 2 item(s)"
    status = json.loads(run(["queue", "status", "--json"]).stdout)
    assert status["sets"]["w47"]["state"] == "paused" and status["sets"]["w47"]["held"] == 2
    assert run(["queue", "resume", "w47"]).stdout.strip() == "resumed set 'w47': 2 item(s)"
    assert run(["queue", "cancel", "w47"]).stdout.strip() == "cancelled set 'w47': 2 item(s)"
    assert run(["queue", "enqueue", "t_record", "z", "--set", "w48"]).returncode == 0
    paused = json.loads(run(["queue", "pause", "w48", "--json"]).stdout)
    assert paused == {"set": "w48", "action": "paused", "items": 1}, paused
    kinds = json.loads(run(["queue", "kinds", "--json"]).stdout)
    assert {"t_record", "t_noop"} <= {k["kind"] for k in kinds}
