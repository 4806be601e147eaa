"""The package as a user installs it: a wheel, built from the checkout and installed (not
editable) into a fresh virtual environment, runs from another folder, with the SQL and the
migrations it carries as package data (renderer/_data/, made by setup.py's build_py step).

The fresh environment gets its dependencies the ordinary way (pip, from the configured
package index and wheel folders), so the test needs no network beyond the package registry.
Its cost is mostly installing the dependencies (see the report printed by pytest -rA).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import _admin, _drop, with_database

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.acceptance, pytest.mark.slow]


def _run(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, capture_output=True, text=True, timeout=900,
                            **kwargs)  # type: ignore[call-overload]
    assert result.returncode == 0, f"{args}:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture
def empty_database_url(server_url: str) -> Iterator[str]:
    """A database with nothing in it: the installed package migrates it itself."""
    name = f"renderer_pkg_{uuid.uuid4().hex[:12]}"
    with _admin(server_url) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield with_database(server_url, name)
    _drop(server_url, name)


def test_a_wheel_installs_and_runs_from_another_folder(tmp_path: Path,
                                                       empty_database_url: str) -> None:
    timings: dict[str, float] = {}
    start = time.monotonic()
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
          "-w", str(dist), str(ROOT)])
    wheels = list(dist.glob("renderer-*.whl"))
    assert len(wheels) == 1
    timings["build the wheel"] = time.monotonic() - start
    print(f"build the wheel: {timings['build the wheel']:.0f} s")

    start = time.monotonic()
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    python = venv / "bin" / "python"
    # The dependencies come from this suite's own environment, as a plain path entry: its
    # .pth files (the editable install's finder among them) are not processed that way, so
    # `renderer` can only come from the wheel. Installing every dependency afresh cost
    # minutes; tests/test_dependencies.py holds the declared list equal to the imports.
    site = Path(subprocess.check_output(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        text=True).strip())
    ours = Path(subprocess.check_output(
        [sys.executable, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        text=True).strip())
    (site / "dependencies-of-the-test-suite.pth").write_text(f"{ours}\n")
    _run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index",
          str(wheels[0])])
    timings["install into a fresh venv"] = time.monotonic() - start
    print(f"install into a fresh venv: {timings['install into a fresh venv']:.0f} s")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RENDERER_", "VIRTUAL_ENV", "PYTHONPATH"))}
    env.update(RENDERER_HOME=str(tmp_path / "home"), RENDERER_DATABASE_URL=empty_database_url,
               RENDERER_STORAGE=(tmp_path / "store").as_uri(), PATH=f"{venv / 'bin'}:"
               f"{env.get('PATH', '')}")
    where = _run([str(python), "-c", "import renderer.resources as r; print(r.SQL_DIR)"],
                 cwd=elsewhere, env=env).stdout.strip()
    assert where.startswith(str(venv)) and where.endswith("renderer/_data/sql"), where

    start = time.monotonic()
    renderer = str(venv / "bin" / "renderer")
    doctor = _run([renderer, "doctor", "--json"], cwd=elsewhere, env=env)
    assert all(check["ok"] for check in json.loads(doctor.stdout))
    _run([renderer, "traffic", "sample", "--out", "sample", "--tiles", "1", "--days", "1",
          "--scale", "0.05"], cwd=elsewhere, env=env)
    summary = json.loads(_run([renderer, "traffic", "run", "--source", "sample", "--processes",
                               "2", "--json"], cwd=elsewhere, env=env).stdout)
    timings["doctor and a traffic run"] = time.monotonic() - start
    assert summary, summary
    listed = _run([renderer, "store", "ls", "--json"], cwd=elsewhere, env=env).stdout
    keys = [o["key"] for o in json.loads(listed)]
    assert "coverage.geojson" in keys and any(k.endswith(".ref.gz") for k in keys), keys
    print("packaging test timings: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))
