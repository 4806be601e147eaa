"""``renderer doctor`` and ``renderer config``."""

from __future__ import annotations

import sys

import click
from rich.table import Table

from renderer import doctor as checks
from renderer.cli._common import console, print_json, settings


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def doctor(as_json: bool) -> None:
    """Check dependencies, the C extension, PostgreSQL, PostGIS and the store.

    Exits 1 when anything is wrong.

    \b
    Example:
        renderer doctor
    """
    results = checks.run(settings())
    if as_json:
        print_json([r.__dict__ for r in results])
    else:
        table = Table(title="renderer doctor")
        for column in ("check", "ok", "detail"):
            table.add_column(column)
        for r in results:
            table.add_row(r.name, "[green]ok[/green]" if r.ok else "[red]FAIL[/red]", r.detail)
        console.print(table)
    if not all(r.ok for r in results):
        sys.exit(1)


@click.command("config")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show_config(as_json: bool) -> None:
    """Print the effective settings, secrets masked, and where each came from.

    \b
    Example:
        RENDERER_STORAGE=s3://bucket/prefix renderer config
    """
    s = settings()
    shown = s.masked()
    if as_json:
        print_json(shown)
        return
    table = Table(title="renderer config")
    for column in ("setting", "value", "from"):
        table.add_column(column)
    for key, value in shown.items():
        table.add_row(key, str(value), s.sources.get(key, "default"))
    console.print(table)


COMMANDS = [doctor, show_config]
