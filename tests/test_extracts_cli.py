"""``renderer extracts list`` and ``collect`` end to end, as a user runs them: against the
test database and a folder store."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from renderer.storage import FileStore, open_store
from tests.test_extracts import REGIONS, fill_traffic


def renderer(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RENDERER_EXTRACTS_REGIONS": REGIONS, "RENDERER_EXTRACTS_WEEKS": "2",
           "RENDERER_POLL_SECONDS": "0.2"}
    return subprocess.run([sys.executable, "-m", "renderer", *args], capture_output=True,
                          text=True, env=env, timeout=300)


@pytest.fixture
def store(renderer_env: dict[str, str]) -> FileStore:
    found = open_store(renderer_env["RENDERER_STORAGE"])
    assert isinstance(found, FileStore)
    return found


def test_list_on_an_empty_store_is_an_empty_result(store: FileStore) -> None:
    listed = renderer("extracts", "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == ["name\tregion\tfile\tsize\tgenerated_at\tfiles"]
    assert "no extracts published" in listed.stderr
    as_json = renderer("extracts", "list", "--format", "json")
    assert as_json.returncode == 0 and json.loads(as_json.stdout) == []


def test_collect_writes_list_shows_and_a_second_collect_skips(store: FileStore) -> None:
    fill_traffic(store)
    first = renderer("extracts", "collect", "--region", "europe", "--wait", "--json")
    assert first.returncode == 0, first.stderr
    written = json.loads(first.stdout)
    assert [(r["name"], r["action"]) for r in written] == [("traffic/europe", "written")]
    manifest = json.loads(store.get("extracts/traffic/europe.json"))
    assert written[0]["file"] == manifest["download"]["key"]
    assert written[0]["size"] == manifest["download"]["size"]
    assert store.exists(written[0]["file"])
    assert not store.exists("extracts/traffic/south-america.json")  # not asked for

    listed = json.loads(renderer("extracts", "list", "--format", "json").stdout)
    assert listed == [{"name": "traffic/europe", "region": "europe",
                       "file": manifest["download"]["key"],
                       "size": manifest["download"]["size"],
                       "generated_at": manifest["generated_at"],
                       "files": len(manifest["files"])}]
    csv = renderer("extracts", "list", "--format", "csv").stdout.splitlines()
    assert csv[0] == "name,region,file,size,generated_at,files"
    assert csv[1].startswith("traffic/europe,europe,extracts/traffic/europe/")

    second = renderer("extracts", "collect", "--wait", "--format", "tsv")
    assert second.returncode == 0, second.stderr
    actions = dict(line.split("\t")[:2] for line in second.stdout.splitlines()[1:])
    assert actions == {"traffic/europe": "skipped", "traffic/south-america": "written"}
    assert json.loads(store.get("extracts/traffic/europe.json")) == manifest  # untouched

    forced = json.loads(renderer("extracts", "collect", "--region", "south-america",
                                 "--force", "--wait", "--json").stdout)
    assert [(r["name"], r["action"]) for r in forced] == [("traffic/south-america",
                                                           "written")]


def test_collect_without_wait_enqueues_for_the_workers(store: FileStore) -> None:
    queued = renderer("extracts", "collect", "--region", "europe", "--region", "europe")
    assert queued.returncode == 0, queued.stderr
    assert queued.stdout.splitlines() == ["kind\tkey\taction", "collect\tregion/europe\tinserted"]
    assert "renderer work" in queued.stderr
    assert not store.exists("extracts/traffic/europe.json")


def test_an_unknown_region_is_a_one_line_usage_error(store: FileStore) -> None:
    bad = renderer("extracts", "collect", "--region", "europe", "--region", "mars")
    assert bad.returncode == 2, bad.stderr
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown region 'mars'" in lines[0], bad.stderr
    assert "europe" in lines[0]  # the configured ones are named
    status = json.loads(renderer("queue", "status", "--json").stdout)
    assert "collect" not in status["kinds"]  # nothing enqueued
