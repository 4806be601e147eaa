"""Helpers shared by the command modules: settings, database, output.

Output, one rule for every command that shows data (``output_options`` + ``show``):
``--format table|tsv|csv|json``, with ``--json`` and ``--csv`` kept as shorthands (scripts
use them). ``--format`` is the spelling because it names what a command produces; where a
command writes files (``sensors export --format parquet``) the flag names those files' format
and ``--json`` still selects the printed summary. With no flag, a terminal gets a table and a
pipe gets tab-separated rows with a header line: no truncation, no box drawing.
"""

from __future__ import annotations

import csv
import functools
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from renderer import config
from renderer.db import Database
from renderer.errors import InputError

console = Console()
log = logging.getLogger("renderer.cli")
FORMATS = ("table", "tsv", "csv", "json")


def settings() -> config.Settings:
    return config.load()


def database(migrate: bool = True, direct: str = "") -> Database:
    """The configured database, started and migrated on first use; ``direct`` names a command
    that needs a direct connection (refused behind a pooler, before connecting)."""
    if direct:
        settings().require_direct(direct)
    return Database.from_settings(settings(), migrate=migrate)


def is_terminal() -> bool:
    return sys.stdout.isatty()


def output_options(fn: Callable[..., Any] | None = None, *,
                   default: str | None = None) -> Any:
    """Add ``--format``, ``--json`` and ``--csv``; the command gets one ``fmt`` argument
    (``table``, ``tsv``, ``csv`` or ``json``): the flag, else ``default``, else table on a
    terminal and tsv in a pipe. ``@output_options`` or ``@output_options(default="csv")``."""
    if fn is None:
        return functools.partial(output_options, default=default)

    @click.option("--format", "fmt", type=click.Choice(FORMATS),
                  help="Output: table (terminal default), tsv (pipe default), csv or json.")
    @click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
    @click.option("--csv", "as_csv", is_flag=True, help="Same as --format csv.")
    @functools.wraps(fn)
    def wrapper(*args: Any, fmt: str | None, as_json: bool, as_csv: bool,
                **kwargs: Any) -> Any:
        chosen = {f for f, on in (("json", as_json), ("csv", as_csv)) if on}
        if fmt:
            chosen.add(fmt)
        if len(chosen) > 1:
            raise click.UsageError(f"{', '.join(sorted(chosen))}: pick one output format")
        return fn(*args, fmt=output_format(chosen.pop() if chosen else default), **kwargs)

    return wrapper


def output_format(fmt: str | None) -> str:
    """``fmt`` when given, else ``table`` on a terminal and ``tsv`` in a pipe."""
    return fmt or ("table" if is_terminal() else "tsv")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    text = str(value)
    # A tab or newline inside a cell would break the row in tsv: escape as \t, \n.
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def show(rows: Sequence[dict[str, Any]], fmt: str, title: str | None = None,
         columns: list[str] | None = None, value: Any = None) -> None:
    """Print ``rows`` in ``fmt``; json prints ``value`` when given (the whole result),
    else the rows."""
    if fmt == "json":
        print_json(list(rows) if value is None else value)
        return
    columns = columns or (list(rows[0]) if rows else [])
    if fmt == "tsv":
        if columns:
            click.echo("\t".join(columns))
        for row in rows:
            click.echo("\t".join(_cell(row.get(c)) for c in columns))
        return
    if fmt == "csv":
        out = csv.writer(sys.stdout, lineterminator="\n")
        if columns:
            out.writerow(columns)
        for row in rows:
            out.writerow(["" if row.get(c) is None else row.get(c) for c in columns])
        return
    _rich_table(list(rows), title, columns)


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str, sort_keys=False))


def print_table(rows: list[dict[str, Any]], title: str | None = None,
                columns: list[str] | None = None) -> None:
    """A rich table on a terminal; in a pipe, tab-separated rows with a header."""
    show(rows, output_format(None), title=title, columns=columns)


def _rich_table(rows: list[dict[str, Any]], title: str | None,
                columns: list[str] | None) -> None:
    if not rows:
        console.print(f"[dim]{title + ': ' if title else ''}nothing to show[/dim]")
        return
    columns = columns or list(rows[0])
    table = Table(title=title)
    for column in columns:
        # Cells wrap instead of being cut to "histogr..." at 80 columns.
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in columns))
    console.print(table)


def exclusive(**flags: bool) -> None:
    """One of the named flags at most (a usage error otherwise)."""
    on = [name for name, value in flags.items() if value]
    if len(on) > 1:
        raise InputError(f"{' and '.join(on)} exclude each other", "pick one")


class Progress:
    """Progress of a long command: a rich bar on a terminal (stderr), otherwise a log line at
    most every few seconds and one at the end. ``with Progress("exporting", total) as step:
    step()`` after each unit of work."""

    INTERVAL = 5.0

    def __init__(self, description: str, total: int | None) -> None:
        self.description, self.total, self.done = description, total, 0
        self.bar: Any = None
        self.last = time.monotonic()

    def __enter__(self) -> Progress:
        if sys.stderr.isatty():
            from rich.progress import Progress as Bar  # rich's bar only on a terminal

            self.bar = Bar(console=Console(stderr=True), transient=True)
            self.bar.start()
            self.task = self.bar.add_task(self.description, total=self.total)
        return self

    def __call__(self, advance: int = 1) -> None:
        self.done += advance
        if self.bar is not None:
            self.bar.update(self.task, completed=self.done)
        elif time.monotonic() - self.last >= self.INTERVAL:
            self.last = time.monotonic()
            log.info("%s: %s", self.description, self._count())

    def _count(self) -> str:
        return f"{self.done}/{self.total}" if self.total is not None else str(self.done)

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()
        elif kind is None:  # on an error the error's one line says it all
            log.info("%s: %s done", self.description, self._count())
