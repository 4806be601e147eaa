"""A source with files but nothing in its pipeline's layout says so (exit 1) and shows where
the layout matches one or two levels down; an empty source stays a quiet success. Traffic,
sensors and tracks; local folders and S3 prefixes (moto, tests/s3server.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner

from renderer.cli import main
from renderer.db import Database
from renderer.sensors.files import discover
from renderer.sources import Layout, SourceLayoutError, check_layout, source_keys
from renderer.storage import FileStore
from renderer.tracks.ingest import discover as tracks_discover
from renderer.traffic import ingest

BUCKET = "renderer-sources"
HOUR = "1477872000_1477875599"  # 2016-10-31 00:00 UTC
REPORT = f"{HOUR}/0/3105/reporter-0.csv"
CSV = "a.csv"
LAYOUT = Layout("{hour}/{name}.csv", lambda k: k.count("/") == 1 and k.endswith(".csv"),
                lambda k: k.startswith("_archive/"))


def invoke(*args: str) -> Any:
    return CliRunner().invoke(main, list(args))


def put(root: Path, *keys: str) -> Path:
    for key in keys:
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x\n")
    return root


# --- the shared check -------------------------------------------------------------------------

def test_an_empty_or_drained_source_is_fine() -> None:
    check_layout("/in", [], LAYOUT)
    check_layout("/in", ["_archive/05/a.csv"], LAYOUT)
    # drained: its files consumed and archived, a README left beside them
    check_layout("/in", ["README", "_archive/05/a.csv"], LAYOUT)


def test_files_outside_the_layout_are_named_with_where_it_matches() -> None:
    with pytest.raises(SourceLayoutError) as one:
        check_layout("s3://b/in/", ["data/05/a.csv", "data/06/b.csv", "README"], LAYOUT)
    assert str(one.value) == (
        "s3://b/in/ holds 3 files, none in the layout {hour}/{name}.csv (e.g. data/05/a.csv, "
        "data/06/b.csv, README); the layout matches one or two levels down: s3://b/in/data "
        "(2 files) (point the source at s3://b/in/data)")
    with pytest.raises(SourceLayoutError) as two:
        check_layout("/in", ["x/data/05/a.csv", "y/05/a.csv", "x/data/07/a.csv"], LAYOUT)
    assert "matches one or two levels down: /in/x/data (2 files), /in/y (1 files)" in str(
        two.value)
    assert two.value.fix == "point the source at /in/x/data"


def test_deeper_or_unmatched_files_only_say_so() -> None:
    with pytest.raises(SourceLayoutError) as error:
        check_layout("/in", ["a/b/c/05/a.csv", "notes.txt"], LAYOUT)
    assert "levels down" not in str(error.value)
    assert error.value.fix is not None and "put the files in the layout" in error.value.fix


def test_at_most_limit_keys_are_read() -> None:
    read = []

    def keys() -> Any:
        for i in range(100):
            read.append(i)
            yield f"f{i}.txt"

    with pytest.raises(SourceLayoutError, match="holds 10\\+ files"):
        check_layout("/in", keys(), LAYOUT, limit=10)
    assert len(read) == 10


def test_source_keys_skip_hidden_files(tmp_path: Path) -> None:
    put(tmp_path, "b/1.txt", "a.txt", ".hidden/x", "c/.DS_Store")
    assert list(source_keys(tmp_path)) == ["a.txt", "b/1.txt"]
    store = FileStore(tmp_path)
    assert list(source_keys(store)) == ["a.txt", "b/1.txt"]


# --- traffic ----------------------------------------------------------------------------------

@pytest.mark.parametrize("above", ["data", "x/data"])
def test_traffic_submit_above_the_hour_folders_fails_naming_them(
        renderer_env: dict[str, str], tmp_path: Path, above: str) -> None:
    root = put(tmp_path / "src", f"{above}/{REPORT}", f"{above}/{HOUR}/0/3105/reporter-1.csv")
    result = invoke("traffic", "submit", "--source", str(root))
    assert result.exit_code == 1, result.output
    assert result.output.count("\n") == 1
    assert "holds 2 files, none in the layout {start}_{end}/" in result.output
    assert f"(point the source at {root.as_uri()}/{above})" in result.output
    result = invoke("traffic", "run", "--source", str(root), "--processes", "1")
    assert result.exit_code == 1 and "point the source at" in result.output
    # pointed at the right folder, it works
    result = invoke("traffic", "submit", "--source", str(root / above), "--after", "keep")
    assert result.exit_code == 0 and "2 files, 2 new" in result.output


def test_an_empty_traffic_source_stays_a_quiet_success(renderer_env: dict[str, str],
                                                       tmp_path: Path) -> None:
    root = tmp_path / "src"
    root.mkdir()
    result = invoke("traffic", "submit", "--source", str(root))
    assert result.exit_code == 0 and "0 files, 0 new" in result.output
    put(root, f"_archive/{REPORT}")  # everything consumed and archived: still nothing new
    result = invoke("traffic", "submit", "--source", str(root))
    assert result.exit_code == 0 and "0 files, 0 new" in result.output


def test_traffic_on_s3(db: Database, s3_endpoint: str) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    with db.connect() as conn:
        assert ingest.submit(conn, f"s3://{BUCKET}/feed").files_listed == 0  # empty
        s3.put_object(Bucket=BUCKET, Key=f"feed/data/{REPORT}", Body=b"x")
        with pytest.raises(SourceLayoutError) as error:
            ingest.submit(conn, f"s3://{BUCKET}/feed")
        assert error.value.fix == f"point the source at s3://{BUCKET}/feed/data"
        assert ingest.submit(conn, f"s3://{BUCKET}/feed/data", after="keep").files_new == 1


# --- sensors and tracks -----------------------------------------------------------------------

def test_sensors_folder_of_other_files_fails_and_an_empty_one_is_fine(
        renderer_env: dict[str, str], tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = invoke("sensors", "ingest", str(empty))
    assert result.exit_code == 0, result.output
    assert "0 files: 0 consumed" in result.output
    other = put(tmp_path / "other", "day.parquet", "notes/readme.txt")
    result = invoke("sensors", "ingest", str(other))
    assert result.exit_code == 1
    assert result.output == (f"error: {other} holds 2 files, none in the layout *.csv or "
                             f"*.csv.gz (any folder) (e.g. day.parquet, notes/readme.txt) (put "
                             "the files in the layout *.csv or *.csv.gz (any folder), or point "
                             "the source at the folder that holds it)\n")


def test_sensors_on_s3(s3_endpoint: str) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    assert discover([f"s3://{BUCKET}/loops"]) == []
    s3.put_object(Bucket=BUCKET, Key="loops/2026/day.parquet", Body=b"x")
    with pytest.raises(SourceLayoutError, match="holds 1 files, none in the layout"):
        discover([f"s3://{BUCKET}/loops"])
    s3.put_object(Bucket=BUCKET, Key="loops/2026/day.csv", Body=b"x")
    assert [f.store_key for f in discover([f"s3://{BUCKET}/loops"])] == ["2026/day.csv"]


def test_tracks_folder_of_other_files_fails_and_an_empty_one_is_fine(tmp_path: Path) -> None:
    assert tracks_discover([str(tmp_path)]) == []
    put(tmp_path, "x.parquet")
    with pytest.raises(SourceLayoutError, match=r"none in the layout .*csv, .*ndjson"):
        tracks_discover([str(tmp_path)])
    assert tracks_discover([str(tmp_path)], "fixes")[0].format == "fixes"
