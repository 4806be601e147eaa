"""Output of data-showing commands: a table on a terminal, tab-separated rows with a header
in a pipe, csv or json when asked (renderer/cli/_common.py)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from renderer.cli import _common

ROWS = [{"key": "2016/44/0/002/140.spd.0.gz", "size": 123456789, "note": "a\tb"},
        {"key": "histogram-export-with-a-long-name", "size": None, "note": "line\nbreak"}]


@click.command()
@_common.output_options
def demo(fmt: str) -> None:
    """Show ROWS."""
    _common.show(ROWS, fmt, title="demo")


@click.command()
@_common.output_options(default="csv")
def demo_csv(fmt: str) -> None:
    """Show ROWS, csv unless told."""
    _common.show(ROWS, fmt)


def test_a_pipe_gets_tab_separated_rows_with_a_header() -> None:
    out = CliRunner().invoke(demo, []).output  # CliRunner's stdout is not a terminal
    assert out.splitlines() == ["key\tsize\tnote",
                                "2016/44/0/002/140.spd.0.gz\t123456789\ta\\tb",
                                "histogram-export-with-a-long-name\t\tline\\nbreak"]
    assert "─" not in out and "…" not in out and "..." not in out


def test_json_and_csv_flags_and_their_format_spellings() -> None:
    runner = CliRunner()
    for args in (["--json"], ["--format", "json"]):
        assert json.loads(runner.invoke(demo, args).output) == ROWS
    for args in (["--csv"], ["--format", "csv"]):
        rows = list(csv.DictReader(io.StringIO(runner.invoke(demo, args).output)))
        assert [r["key"] for r in rows] == [r["key"] for r in ROWS]
        assert rows[1]["note"] == "line\nbreak"
    assert runner.invoke(demo_csv, []).output.startswith("key,size,note\n")
    assert runner.invoke(demo_csv, ["--format", "tsv"]).output.startswith("key\tsize\tnote\n")


def test_two_formats_at_once_are_a_usage_error() -> None:
    result = CliRunner().invoke(demo, ["--json", "--format", "csv"])
    assert result.exit_code == 2 and "pick one output format" in result.output


def test_a_table_on_demand_wraps_long_cells(monkeypatch: pytest.MonkeyPatch) -> None:
    console = _common.Console(width=40, file=io.StringIO(), force_terminal=False)
    monkeypatch.setattr(_common, "console", console)
    _common.show(ROWS, "table", title="demo")
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "…" not in text
    assert "123456789" in text


def test_long_commands_report_progress_in_a_pipe(tmp_path: Path) -> None:
    from renderer.cli import main

    result = CliRunner().invoke(main, ["traffic", "sample", "--out", str(tmp_path / "s"),
                                       "--tiles", "1", "--days", "1", "--scale", "0.05"])
    assert result.exit_code == 0, result.output
    assert "writing tile hours: 24/24 done" in result.stderr
    made = CliRunner().invoke(main, ["sensors", "sample", "--out", str(tmp_path / "d"),
                                     "--detectors", "1", "--days", "1"])
    assert made.exit_code == 0 and "wrote 1 files, 1440 rows" in made.output, made.output
