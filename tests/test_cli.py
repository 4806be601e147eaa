"""The command line: help everywhere, one-line errors with exit status 2."""

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
    for name, command in group.commands.items():
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


def _one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, result.stderr
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
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_doctor_passes_and_config_masks(renderer_env: dict[str, str]) -> None:
    result = run(["doctor", "--json"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert '"PostGIS"' in result.stdout and '"store round trip"' in result.stdout
    shown = run(["config", "--json"], {"RENDERER_WEB_SECRETS": "topsecret"})
    assert shown.returncode == 0
    assert "topsecret" not in shown.stdout
