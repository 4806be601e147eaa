"""The ``renderer`` command: thin, parses arguments and calls library functions.

Errors a user can cause end in one line naming the cause and the fix, with exit status 2;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from renderer.errors import RendererError


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RendererError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo("error: " + " ".join(str(exc).split()), err=True)  # one line
            sys.exit(2)


def _configure_logging(debug: bool, quiet: bool) -> None:
    level = logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO
    if sys.stderr.isatty():
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(show_path=False, rich_tracebacks=debug)
        fmt = "%(message)s"
    else:
        handler = logging.StreamHandler()
        fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=level, format=fmt, handlers=[handler], force=True)
    for noisy in ("botocore", "boto3", "urllib3", "alembic", "s3transfer"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.option("--quiet", "-q", is_flag=True, help="Only warnings and errors.")
@click.version_option(package_name="renderer")
@click.pass_context
def main(ctx: click.Context, debug: bool, quiet: bool) -> None:
    """Batch renderer for time-tiled geodata on PostgreSQL/PostGIS.

    \b
    Example:
        renderer db start
        renderer traffic run --source ./sample
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    _configure_logging(debug, quiet)


def _register() -> None:
    from renderer.cli import db, doctor, ops, queue, sensors, store, tracks, traffic

    for module in (db, doctor, store, queue, traffic, sensors, tracks, ops):
        for command in module.COMMANDS:
            main.add_command(command)


_register()
