"""The command line: help everywhere, one-line errors with exit status 2 for usage errors
and 1 for runtime failures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from renderer.cli import main


def run(args: list[str], env: dict[str, str] | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "renderer", *args], capture_output=True,
                          text=True, env=full, timeout=timeout)


def _commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    found = []
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, name
        found.append((f"{prefix}{name}", command))
        if isinstance(command, click.Group):
            found.extend(_commands(command, f"{prefix}{name} "))
    return found


def test_help_lists_the_groups() -> None:
    result = run(["--help"])
    assert result.returncode == 0
    for name in ("db", "doctor", "config", "store"):
        assert f"  {name} " in result.stdout


@pytest.mark.parametrize("name,command", _commands(main), ids=lambda v: str(v))
def test_every_command_has_help_with_an_example(name: str, command: click.Command) -> None:
    assert command.help, f"renderer {name} has no help text"
    assert "Example" in command.help, f"renderer {name} help has no example"


def _one_line_error(result: subprocess.CompletedProcess[str], *needles: str,
                    code: int = 1) -> None:
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0]


def test_wrong_database_url(tmp_path: Path) -> None:
    env = {"RENDERER_DATABASE_URL": "postgresql://nobody:hunter2@127.0.0.1:1/none",
           "RENDERER_HOME": str(tmp_path)}
    result = run(["db", "migrate"], env)
    _one_line_error(result, "cannot connect", "RENDERER_DATABASE_URL")
    assert "hunter2" not in result.stderr  # secrets never logged


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    env = {"RENDERER_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
           "RENDERER_HOME": str(tmp_path)}
    result = run(["--debug", "db", "migrate"], env)
    assert result.returncode != 0
    assert "Traceback" in result.stderr


def test_unwritable_home(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    env = {"RENDERER_HOME": str(blocker / "home")}
    env_clean = {k: v for k, v in os.environ.items() if k != "RENDERER_DATABASE_URL"}
    result = subprocess.run([sys.executable, "-m", "renderer", "db", "start"],
                            capture_output=True, text=True, env={**env_clean, **env}, timeout=60)
    _one_line_error(result, "not writable", "RENDERER_HOME")


def test_missing_postgresql_names_the_install_command(tmp_path: Path) -> None:
    env_clean = {k: v for k, v in os.environ.items() if k != "RENDERER_DATABASE_URL"}
    env = {**env_clean, "RENDERER_HOME": str(tmp_path), "RENDERER_PG_BINDIR": "/nonexistent"}
    result = subprocess.run([sys.executable, "-m", "renderer", "db", "start"],
                            capture_output=True, text=True, env=env, timeout=60)
    _one_line_error(result, "PostgreSQL server is not installed", "scripts/install-system-deps")


def test_unreachable_s3_endpoint(tmp_path: Path) -> None:
    env = {"RENDERER_STORAGE": "s3://bucket/prefix", "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
           "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y",
           "AWS_DEFAULT_REGION": "us-east-1",
           "RENDERER_HOME": str(tmp_path)}
    result = run(["store", "ls"], env)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_doctor_passes_and_config_masks(renderer_env: dict[str, str]) -> None:
    result = run(["doctor", "--json"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert '"PostGIS"' in result.stdout and '"store round trip"' in result.stdout
    shown = run(["config", "--json"], {"RENDERER_WEB_SECRETS": "topsecret"})
    assert shown.returncode == 0
    assert "topsecret" not in shown.stdout


# --- exit status: 2 usage, 1 runtime --------------------------------------------------------

def test_help_documents_the_exit_status() -> None:
    result = run(["--help"])
    assert "Exit status: 0 success, 1 runtime failure" in " ".join(result.stdout.split())


def test_click_usage_errors_exit_2() -> None:
    assert run(["no-such-command"]).returncode == 2
    assert run(["store", "ls", "--format", "xml"]).returncode == 2
    assert run(["store", "ls", "--json", "--csv"]).returncode == 2


def test_exit_status_by_error_class() -> None:
    from renderer import cli, errors

    assert cli.exit_code(errors.InputError("x")) == 2
    assert cli.exit_code(errors.ConfigError("x")) == 2
    for runtime in (errors.DatabaseUnavailable("x"), errors.StorageError("x"),
                    errors.ObjectNotFound("x"), errors.MissingDependency("x"),
                    errors.QueueError("x"), errors.AlreadyExists("x")):
        assert cli.exit_code(runtime) == 1, type(runtime).__name__


@pytest.mark.parametrize("var,value,needle", [
    ("RENDERER_NOTIFY", "ture", "notify = 'ture' (from RENDERER_NOTIFY)"),
    ("RENDERER_TRAFFIC_AFTER", "bogus", "traffic_after = 'bogus' (from RENDERER_TRAFFIC_AFTER)"),
    ("RENDERER_PROCESSES", "-3", "processes = '-3' (from RENDERER_PROCESSES) must be"),
    ("RENDERER_WEB_PORT", "99999", "web_port = '99999' (from RENDERER_WEB_PORT) must be"),
])
def test_a_bad_setting_is_a_one_line_usage_error(tmp_path: Path, var: str, value: str,
                                                 needle: str) -> None:
    result = run(["config"], {var: value, "RENDERER_HOME": str(tmp_path)})
    _one_line_error(result, needle, code=2)


# --- start-up: --help and --version load no heavy library -----------------------------------

HEAVY = ("alembic", "sqlalchemy", "pyarrow", "boto3", "fastapi", "psycopg", "numpy", "rich",
         "uvicorn", "jinja2")


@pytest.mark.parametrize("args", [["--version"], ["--help"]])
def test_version_and_help_import_no_heavy_module(args: list[str]) -> None:
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "renderer", *args],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    imported = {line.split("|")[-1].strip().split(".")[0]
                for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert "click" in imported  # the parse read what it should
    assert not imported & set(HEAVY), sorted(imported & set(HEAVY))


def test_tracks_query_loads_no_ingest_generator_or_worker() -> None:
    """`tracks query` is waited on for its first row: its command module loads neither the
    ingest (pyais, numpy) nor the generator nor the worker and its profiles (0.3 CPU s)."""
    probe = ("import sys, renderer.cli.tracks; "
             "print(sorted(m for m in ('pyais', 'numpy', 'renderer.worker', "
             "'renderer.tracks.ingest', 'renderer.tracks.sample') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            timeout=60, check=True)
    assert result.stdout.strip() == "[]"


def test_help_summaries_match_the_commands() -> None:
    from renderer.cli import _SUMMARIES, COMMAND_MODULES

    assert set(_SUMMARIES) == set(COMMAND_MODULES)
    for name, command in _commands(main):
        if " " not in name:
            assert command.help is not None
            assert " ".join(command.help.split("\n\n")[0].split()) == _SUMMARIES[name], name


# --- help examples work on the sample (`make run`: seed 1, from 2016-10-31 = 2016-W44) ---------

def test_the_segment_of_the_help_examples_is_the_samples_busiest() -> None:
    from renderer.traffic.sample import _TileStream, sample_tiles

    stream = _TileStream(sample_tiles(1)[0], 0, 1, 1.0, 0, 1)
    weights = [b - a for a, b in zip([0.0, *stream.cum], stream.cum, strict=False)]
    busiest = stream.segments[weights.index(max(weights))].id
    ctx = click.Context(main)
    traffic = main.get_command(ctx, "traffic")
    assert isinstance(traffic, click.Group)
    for name in ("speeds", "reference"):
        command = traffic.get_command(ctx, name)
        assert command is not None and command.help is not None
        assert f"renderer traffic {name} {busiest}" in command.help
