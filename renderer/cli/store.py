"""``renderer store``: look at what the pipelines wrote."""

from __future__ import annotations

import sys

import click

from renderer.cli._common import output_options, settings, show
from renderer.storage import open_store


@click.group("store")
def store() -> None:
    """Browse the object store (RENDERER_STORAGE).

    \b
    Example:
        renderer store ls 2026/47/
    """


@store.command("ls")
@click.argument("prefix", default="")
@output_options
def ls(prefix: str, fmt: str) -> None:
    """List objects under PREFIX with their sizes.

    \b
    Example:
        renderer store ls 0/002/
        renderer store ls --json | jq '.[].key'
    """
    s = open_store(settings().store_url)
    rows = [{"key": o.key, "size": o.size} for o in s.list(prefix)]
    show(rows, fmt, title=s.url, columns=["key", "size"])


@store.command("cat")
@click.argument("key")
def cat(key: str) -> None:
    """Write the object KEY to standard output.

    \b
    Example:
        renderer store cat coverage.geojson | head
    """
    sys.stdout.buffer.write(open_store(settings().store_url).get(key))


COMMANDS = [store]
