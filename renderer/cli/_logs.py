"""Logging for the command line, one format for every logger: ours, uvicorn's (`renderer
serve` hands uvicorn no logging config of its own, so its loggers propagate here), boto's.

``text`` (default): rich on a terminal, ``time LEVEL logger: message`` otherwise. ``json``:
one JSON object a line (time, level, logger, message, and the traceback as ``exc``), for
log collectors.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

FORMATS = ("text", "json")
TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
QUIET_LIBRARIES = ("botocore", "boto3", "urllib3", "alembic", "s3transfer")
# uvicorn's loggers: their records go to the root handler (ours), not their own.
UVICORN = ("uvicorn", "uvicorn.error", "uvicorn.access")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": datetime.fromtimestamp(record.created, UTC).isoformat(
                     timespec="milliseconds"),
                 "level": record.levelname, "logger": record.name,
                 "message": record.getMessage()}
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure(debug: bool, quiet: bool, fmt: str = "text") -> None:
    level = logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO
    handler: logging.Handler
    if fmt == "json":
        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter())
    elif sys.stderr.isatty():
        # rich only on a terminal: it is not needed, and not imported, otherwise.
        from rich.logging import RichHandler

        handler = RichHandler(show_path=False, rich_tracebacks=debug)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(TEXT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in UVICORN:
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
