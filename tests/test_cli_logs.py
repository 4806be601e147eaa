"""One log format for our lines and uvicorn's; --log-format json for log collectors."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from renderer.cli import _logs


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_from_a_command(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "renderer", "--log-format", "json", "traffic", "sample",
         "--out", str(tmp_path / "s"), "--tiles", "1", "--days", "1", "--scale", "0.05"],
        capture_output=True, text=True, timeout=120, env={**os.environ})
    assert result.returncode == 0, result.stderr
    entries = [json.loads(line) for line in result.stderr.splitlines()]
    assert {"time", "level", "logger", "message"} <= set(entries[-1])
    assert entries[-1]["message"] == "writing tile hours: 24/24 done"


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_uvicorn_lines_take_our_format(capsys: pytest.CaptureFixture[str], fmt: str,
                                       restore_logging: None) -> None:
    access = logging.getLogger("uvicorn.access")
    access.addHandler(logging.StreamHandler(sys.stdout))  # as uvicorn's own config would
    access.propagate = False
    _logs.configure(debug=False, quiet=False, fmt=fmt)
    access.info('%s - "%s %s HTTP/1.1" %d', "127.0.0.1:5000", "GET", "/metrics", 200)
    logging.getLogger("renderer.web").info("ours")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2, lines
    if fmt == "json":
        first, second = (json.loads(line) for line in lines)
        assert first["logger"] == "uvicorn.access" and "GET /metrics" in first["message"]
        assert second == {**second, "logger": "renderer.web", "message": "ours"}
    else:
        assert " INFO uvicorn.access: 127.0.0.1:5000" in lines[0]
        assert lines[1].endswith(" INFO renderer.web: ours")
