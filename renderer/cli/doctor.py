"""``renderer doctor`` and ``renderer config``."""

from __future__ import annotations

import sys

import click

from renderer import doctor as checks
from renderer.cli._common import output_options, settings, show


@click.command()
@output_options
def doctor(fmt: str) -> None:
    """Check dependencies, the C extension, PostgreSQL, PostGIS and the store.

    Exits 1 when anything is wrong.

    \b
    Example:
        renderer doctor
    """
    results = checks.run(settings())
    rows = [{"check": r.name, "ok": "ok" if r.ok else "FAIL", "detail": r.detail}
            for r in results]
    show(rows, fmt, title="renderer doctor", value=[r.__dict__ for r in results])
    if not all(r.ok for r in results):
        sys.exit(1)


@click.command("config")
@output_options
def show_config(fmt: str) -> None:
    """Print the effective settings, secrets masked, and where each came from.

    Values are the ones in force: the worker count when processes is 0 (twice the cores),
    the store URL when storage is empty (the home's store folder).

    \b
    Example:
        RENDERER_STORAGE=s3://bucket/prefix renderer config
    """
    s = settings()
    shown = s.effective()
    rows = [{"setting": key, "value": value, "from": s.sources.get(key, "default")}
            for key, value in shown.items()]
    show(rows, fmt, title="renderer config", value=shown)


COMMANDS = [doctor, show_config]
