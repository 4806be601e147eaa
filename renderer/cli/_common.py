"""Helpers shared by the command modules: settings, database, output."""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from renderer import config
from renderer.db import Database

console = Console()


def settings() -> config.Settings:
    return config.load()


def database(migrate: bool = True) -> Database:
    """The configured database, started and migrated on first use."""
    return Database.from_settings(settings(), migrate=migrate)


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str, sort_keys=False))


def print_table(rows: list[dict[str, Any]], title: str | None = None,
                columns: list[str] | None = None) -> None:
    if not rows:
        console.print(f"[dim]{title + ': ' if title else ''}nothing to show[/dim]")
        return
    columns = columns or list(rows[0])
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in columns))
    console.print(table)


def is_terminal() -> bool:
    return sys.stdout.isatty()
