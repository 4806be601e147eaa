"""Submitting reporter files (listing, ledger, fingerprints), S3 notifications, and the
ingest commands end to end in subprocesses (once with the pure-Python binning twin)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from renderer import config, queue, runner
from renderer.db import Database
from renderer.errors import InputError
from renderer.formats.histograms import decode_histogram
from renderer.profile import Batch, Submitted
from renderer.storage import open_store
from renderer.traffic import ingest
from renderer.traffic.ingest import enqueue_objects, submit
from renderer.traffic.layout import Prefix
from renderer.traffic.profile import PROFILE
from renderer.traffic.sample import generate
from tests.test_traffic_histogram import (
    HOUR,
    SEG,
    START,
    TILE,
    files_under,
    reporter_csv,
    totals,
    work,
)


def _items(db: Database, kind: str = "histogram") -> dict[str, dict[str, Any]]:
    with db.connect() as conn:
        return {r["key"]: r for r in conn.execute(
            "SELECT key, state, fingerprint, grp, priority, set_id, payload FROM work_queue"
            " WHERE kind = %s", [kind])}


def _write(root: Path, hour: int, name: str, *rows: str, tile: int = TILE) -> None:
    folder = root / Prefix(0, tile, hour).folder
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(reporter_csv(*rows))


def _row(hour: int, duration: int = 30) -> str:
    start = hour * 3600
    return f"{SEG},,{duration},1,100,0,{start + 10},{start + 10 + duration},r,AUTO"


def test_submit_enqueues_one_item_per_prefix_with_new_files(db: Database, tmp_path: Path) -> None:
    _write(tmp_path, HOUR, "a.csv", _row(HOUR))
    _write(tmp_path, HOUR, "b.csv", _row(HOUR, 40))
    _write(tmp_path, HOUR + 1, "a.csv", _row(HOUR + 1))
    (tmp_path / "README.md").write_text("not listed")
    with db.connect() as conn:
        result = submit(conn, str(tmp_path), after="keep", set_id="batch 1")
        again = submit(conn, str(tmp_path), after="keep")  # still pending: left as it is
        conn.commit()
    assert (result.files_listed, result.files_new, result.prefixes, result.enqueued) == (3, 3, 2, 2)
    assert result.weeks == ["2016-W44"]
    assert again.enqueued == 0
    items = _items(db)
    assert set(items) == {f"0/{TILE}/{HOUR}", f"0/{TILE}/{HOUR + 1}"}
    item = items[f"0/{TILE}/{HOUR}"]
    assert item["grp"] == "3105/2016-W44"
    assert item["set_id"] == "batch 1"
    assert item["payload"] == {"source": tmp_path.as_uri(), "after": "keep"}
    assert item["fingerprint"] != items[f"0/{TILE}/{HOUR + 1}"]["fingerprint"]


def test_a_changed_file_is_new_again(db: Database, tmp_path: Path) -> None:
    _write(tmp_path, HOUR, "a.csv", _row(HOUR))
    with db.connect() as conn:
        submit(conn, str(tmp_path), after="keep")
        conn.commit()
    work(db.url)
    _write(tmp_path, HOUR, "a.csv", _row(HOUR), _row(HOUR, 50))  # the reporter rewrote it
    with db.connect() as conn:
        result = submit(conn, str(tmp_path), after="keep")
        conn.commit()
    assert (result.files_new, result.enqueued) == (1, 1)
    work(db.url)
    with db.connect() as conn:
        # both versions were consumed, each once: 1 + 2 observations
        assert totals(conn)["observations"] == 3
        assert totals(conn)["files"] == 2


def test_the_submit_checksums_only_the_files_the_ledger_knows(
        db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh source is enqueued from its listing alone (the histogram stage computes each
    file's MD5 from the bytes it reads); a file whose key and size the ledger holds is read
    to tell a consumed file from one rewritten in place with the same size."""
    _write(tmp_path, HOUR, "a.csv", _row(HOUR, 30))
    _write(tmp_path, HOUR + 1, "b.csv", _row(HOUR + 1))
    hashed: list[int] = []
    md5 = hashlib.md5

    def counting(*args: Any, **kwargs: Any) -> Any:
        hashed.append(1)
        return md5(*args, **kwargs)

    def submitted() -> tuple[int, int, int]:
        hashed.clear()
        monkeypatch.setattr(hashlib, "md5", counting)
        try:
            with db.connect() as conn:
                result = submit(conn, str(tmp_path), after="keep")
                conn.commit()
        finally:
            monkeypatch.setattr(hashlib, "md5", md5)
        return result.files_new, result.enqueued, len(hashed)

    assert submitted() == (2, 2, 0)
    work(db.url)
    assert submitted() == (0, 0, 2)  # consumed: each known file read once to compare
    _write(tmp_path, HOUR, "a.csv", _row(HOUR, 31))  # rewritten, same size
    assert submitted() == (1, 1, 2)
    work(db.url)
    with db.connect() as conn:
        assert totals(conn)["observations"] == 3
        assert totals(conn)["files"] == 3


def test_a_run_starts_its_pool_beside_its_submit(db: Database,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """`renderer traffic run` starts its pool's fork server, which imports the pipelines,
    before the submit lists the source: the two overlap instead of following each other."""
    calls: list[str] = []

    def submitted(conn: Any, options: dict[str, Any], settings: Any) -> Submitted:
        calls.append("submit")
        return Submitted(None, work=False)

    monkeypatch.setattr(runner, "warm_up", lambda: calls.append("fork server"))
    profile = dataclasses.replace(PROFILE, batch=Batch(submitted, lambda conn, done: None))
    runner.run_until_idle(db.url, profile, {}, settings=config.load(), processes=2)
    assert calls == ["fork server", "submit"]
    calls.clear()
    runner.run_until_idle(db.url, profile, {}, settings=config.load(), processes=None)
    assert calls == ["submit"]  # one worker in this process: no pool


def test_a_submit_commits_as_it_lists(db: Database, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``commit_every`` the items of the first prefixes are committed, and workable,
    while the rest is still being listed; a submit cut short there loses nothing and counts
    nothing twice: the next one enqueues the rest and leaves the first items as they are."""
    for n in range(3):
        _write(tmp_path, HOUR + n, "a.csv", _row(HOUR + n))
    listing = ingest.list_source
    seen: list[set[str]] = []

    def watched(store: Any) -> Any:
        for prefix, info in listing(store):
            seen.append(set(_items(db)))  # what another session sees before each file
            if prefix is not None and prefix.hour == HOUR + 2 and len(seen) < 4:
                raise RuntimeError("the submit was killed")
            yield prefix, info

    monkeypatch.setattr(ingest, "list_source", watched)
    with pytest.raises(RuntimeError, match="killed"), db.connect() as conn:
        submit(conn, str(tmp_path), after="keep", commit_every=1)
    # the first hour committed once the listing reached the next one; the second was not
    assert seen == [set(), set(), {f"0/{TILE}/{HOUR}"}]
    first = _items(db)
    with db.connect() as conn:
        result = submit(conn, str(tmp_path), after="keep", commit_every=2)
    assert (result.files_new, result.prefixes, result.enqueued) == (3, 3, 2)
    items = _items(db)
    assert set(items) == {f"0/{TILE}/{HOUR + n}" for n in range(3)}
    assert all(items[k] == first[k] for k in first)  # pending, as they were
    assert work(db.url).done == 3
    with db.connect() as conn:
        assert totals(conn)["observations"] == 3


def test_submit_errors(db: Database, tmp_path: Path) -> None:
    with db.connect() as conn:
        with pytest.raises(InputError, match="does not exist"):
            submit(conn, str(tmp_path / "missing"))
        with pytest.raises(InputError, match="--after"):
            submit(conn, str(tmp_path), after="shred")


def test_enqueue_objects_from_notifications(db: Database, tmp_path: Path) -> None:
    _write(tmp_path, HOUR, "a.csv", _row(HOUR))
    _write(tmp_path, HOUR + 1, "a.csv", _row(HOUR + 1))
    keys = [
        str(tmp_path / Prefix(0, TILE, HOUR).folder / "a.csv"),  # an absolute path
        f"{Prefix(0, TILE, HOUR).folder}a.csv",  # the same, relative
        "README.md", "_archive/" + Prefix(0, TILE, HOUR + 1).folder + "a.csv",
    ]
    with db.connect() as conn:
        assert enqueue_objects(conn, str(tmp_path), keys, priority=queue.PRIORITY_ON_DEMAND) == 1
        assert enqueue_objects(conn, str(tmp_path), keys, priority=queue.PRIORITY_ON_DEMAND) == 0
        conn.commit()
    items = _items(db)
    assert list(items) == [f"0/{TILE}/{HOUR}"]
    assert items[f"0/{TILE}/{HOUR}"]["priority"] == queue.PRIORITY_ON_DEMAND
    work(db.url)
    with db.connect() as conn:  # consumed files are not enqueued again
        assert enqueue_objects(conn, str(tmp_path), keys, priority=0) == 0


def test_enqueue_objects_with_s3_bucket_keys(db: Database, s3_endpoint: str) -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket="reporters")
    key = f"incoming/{Prefix(0, TILE, HOUR).folder}r.csv"
    s3.put_object(Bucket="reporters", Key=key, Body=reporter_csv(_row(HOUR)))
    with db.connect() as conn:
        n = enqueue_objects(conn, "s3://reporters/incoming", [key, "incoming/other"],
                            priority=queue.PRIORITY_ON_DEMAND)
        conn.commit()
    assert n == 1
    assert work(db.url).done == 2  # the histogram item, then its archive item
    with db.connect() as conn:
        assert totals(conn)["observations"] == 1
    assert s3.list_objects_v2(Bucket="reporters")["Contents"][0]["Key"] == (
        f"incoming/_archive/{Prefix(0, TILE, HOUR).folder}r.csv")


# --- the commands, end to end ---------------------------------------------------------------

def _run(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "renderer", *args], capture_output=True,
                            text=True, env={**os.environ, **(env or {})}, timeout=300)
    return result


def _ok(args: list[str], env: dict[str, str] | None = None) -> str:
    result = _run(args, env)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.slow
@pytest.mark.acceptance
def test_commands_end_to_end_with_the_python_twin(renderer_env: dict[str, str],
                                                  tmp_path: Path) -> None:
    """sample -> submit -> work (2 processes, RENDERER_NO_EXT=1) -> histogram, rejects,
    export-histograms."""
    src, out = tmp_path / "src", tmp_path / "out"
    stats = generate(src, tiles=2, days=1, seed=3)
    shown = _ok(["traffic", "sample", "--out", str(tmp_path / "again"), "--tiles", "2",
                 "--days", "1", "--seed", "3"])
    assert f"{stats.files} files" in shown
    assert files_under(tmp_path / "again") == files_under(src)

    submitted = json.loads(_ok(["traffic", "submit", "--source", str(src), "--json"]))
    assert (submitted["files_new"], submitted["enqueued"]) == (stats.files, 48)
    twin = {"RENDERER_NO_EXT": "1"}
    _ok(["work", "--processes", "2", "--kinds", "histogram,histogram-archive",
         "--until-empty"], twin)
    assert all(k.startswith("_archive/") for k in files_under(src))

    db = Database(renderer_env["RENDERER_DATABASE_URL"])
    with db.connect() as conn:
        assert totals(conn)["observations"] == stats.observations
        busiest = conn.execute(
            "SELECT hour, sum(count) AS n FROM traffic_histograms"
            " WHERE segment_id & 33554431 = %s AND mode = 'AUTO' GROUP BY hour"
            " ORDER BY n DESC LIMIT 1", [TILE << 3]).fetchone()
    hour = f"{busiest['hour']}"
    found = json.loads(_ok(["traffic", "histogram", "--tile", f"0/{TILE}", "--hour", hour,
                            "--mode", "auto", "--json"]))
    assert found["tile"] == f"0/{TILE}" and found["mode"] == "AUTO"
    assert found["observations"] == busiest["n"]
    assert sum(s["observations"] for s in found["segments"]) == busiest["n"]
    assert any(len(s["nexts"]) > 1 for s in found["segments"])

    rejected = json.loads(_ok(["traffic", "rejects", "--json"]))
    assert len(rejected) == stats.bad_rows
    one = rejected[0]["file_key"]
    assert {r["file_key"] for r in json.loads(
        _ok(["traffic", "rejects", "--file", one, "--json"]))} == {one}

    exported = _ok(["traffic", "export-histograms", "--out", str(out), "--week", "2016-W44"])
    assert "wrote 48 histograms" in exported
    store = open_store(str(out))
    files = [o.key for o in store.list()]
    assert len(files) == 48 and files[0] == "2016/10/31/00/0/3105.fb"
    decoded = [decode_histogram(store.get(f)) for f in files]
    assert sum(r.count for h in decoded for r in h.rows) == stats.observations

    again = json.loads(_ok(["traffic", "submit", "--source", str(src), "--json"]))
    assert (again["files_listed"], again["enqueued"]) == (0, 0)


@pytest.mark.parametrize("args,needle", [
    (["traffic", "submit", "--source", "/nonexistent/reporters"], "does not exist"),
    (["traffic", "histogram", "--tile", "9/1", "--hour", "2016-11-01T18"], "--tile"),
    (["traffic", "histogram", "--tile", "0/3105", "--hour", "tomorrow"], "--hour"),
    (["traffic", "export-histograms", "--out", "/tmp/x", "--week", "2016-W99"], "--week"),
    (["traffic", "sample", "--out", "/tmp/x", "--tiles", "99"], "tiles"),
])
def test_command_errors_are_one_line(renderer_env: dict[str, str], args: list[str],
                                     needle: str) -> None:
    result = _run(args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], result.stderr


def test_histogram_of_an_empty_hour(renderer_env: dict[str, str]) -> None:
    found = json.loads(_ok(["traffic", "histogram", "--tile", "1/49862", "--hour",
                            "2016-11-01T18", "--json"]))
    assert found == {"tile": "1/49862", "hour": "2016-11-01T18", "epoch_hour": HOUR,
                     "mode": None, "observations": 0, "bins": 0, "segments": []}
    assert START == HOUR * 3600
