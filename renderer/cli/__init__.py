"""The ``renderer`` command: thin, parses arguments and calls library functions.

Errors a user can cause end in one line naming the cause and the fix; ``--debug`` shows the
traceback instead. Exit status: 0 success, 1 a runtime failure (database unreachable, store
error, a failed check), 2 a usage error (a bad flag or argument, a malformed setting).

Start-up is kept short (``renderer --help`` and ``--version`` import no database driver,
Alembic, pyarrow or web framework): command modules import their heavy libraries at the top,
and this module loads a command module only when one of its commands runs (``_LazyGroup``).
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from renderer.cli import _logs
from renderer.errors import ConfigError, InputError, RendererError

# Errors that are the caller's to fix in the command line or the settings: exit 2 like
# click's own usage errors. Every other RendererError is a runtime failure: exit 1.
USAGE_ERRORS: tuple[type[RendererError], ...] = (InputError, ConfigError)
EXIT_FAILURE = 1
EXIT_USAGE = 2

# The command modules of renderer.cli, each with a COMMANDS list; and which module defines
# which top-level command, so that running one imports only its module. A name missing from
# COMMAND_MODULES is looked for in every module (a new module needs only its line here).
MODULES = ("db", "doctor", "store", "queue", "traffic", "sensors", "tiles", "tracks", "ops",
           "extracts")
COMMAND_MODULES = {
    "db": "db", "doctor": "doctor", "config": "doctor", "store": "store", "queue": "queue",
    "work": "queue", "traffic": "traffic", "sensors": "sensors", "serve": "ops",
    "scheduler": "ops", "schedule": "ops", "tokens": "ops", "tiles": "tiles",
    "tracks": "tracks", "extracts": "extracts",
}


def exit_code(exc: RendererError) -> int:
    return EXIT_USAGE if isinstance(exc, USAGE_ERRORS) else EXIT_FAILURE


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMAND_MODULES, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        module_name = COMMAND_MODULES.get(cmd_name)
        for name in [module_name] if module_name else MODULES:
            for command in importlib.import_module(f"renderer.cli.{name}").COMMANDS:
                self.add_command(command)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # The short help of each command without importing every command module.
        with formatter.section("Commands"):
            formatter.write_dl([(name, _SUMMARIES.get(name, "")) for name in
                                self.list_commands(ctx)])

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RendererError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo("error: " + " ".join(str(exc).split()), err=True)  # one line
            sys.exit(exit_code(exc))


# Shown by `renderer --help`; a test holds each equal to its command's own short help.
_SUMMARIES = {
    "config": "Print the effective settings, secrets masked, and where each came from.",
    "db": "The database: embedded cluster and migrations.",
    "doctor": "Check dependencies, the C extension, PostgreSQL, PostGIS and the store.",
    "extracts": "Downloadable extracts: list what is published, collect them now.",
    "queue": "The work queue: status, enqueue, retries, sets, pruning.",
    "schedule": "Cron schedules stored in the database (UTC), fired by `renderer scheduler`.",
    "scheduler": "Fire due schedules into the work queue (each tick once, however many run).",
    "sensors": "The sensor pipeline: loop-detector CSV -> enriched day partitions -> "
               "Parquet/CSV.",
    "serve": "Run the HTTP service: hooks, run API, status pages, metrics, schedules.",
    "store": "Browse the object store (RENDERER_STORAGE).",
    "tiles": "Map tiles of nested regions: import, render, statistics, export.",
    "tracks": "Vessel tracks: AIS/satellite position reports, queried by identifier, box, "
              "time and sampling in any mix; the static geohash index as an export.",
    "tokens": "API tokens for the write endpoints (Authorization: Bearer <token>), stored "
              "hashed.",
    "traffic": "The traffic pipeline: reporter files -> histograms -> speed and reference "
               "tiles.",
    "work": "Run a pool of workers on the work queue.",
}


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]},
             epilog="Exit status: 0 success, 1 runtime failure (database, store, a failed "
                    "check), 2 usage error (bad flag, argument or setting).")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.option("--quiet", "-q", is_flag=True, help="Only warnings and errors.")
@click.option("--log-format", type=click.Choice(_logs.FORMATS), default="text",
              envvar="RENDERER_LOG_FORMAT", show_default=True,
              help="Log lines on stderr: text, or json (one object a line) for log "
                   "collectors; the same for uvicorn's lines under serve.")
@click.version_option(package_name="renderer")
@click.pass_context
def main(ctx: click.Context, debug: bool, quiet: bool, log_format: str) -> None:
    """Batch renderer for time-tiled geodata on PostgreSQL/PostGIS.

    \b
    Example:
        renderer db start
        renderer traffic run --source ./sample
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    _logs.configure(debug, quiet, log_format)
