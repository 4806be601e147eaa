"""Where the package's non-Python files are, and the one parser of named-SQL files.

``sql/`` and ``migrations/`` live at the top of the checkout (other work adds files there,
so they stay put). A wheel carries a copy of both under ``renderer/_data/``, made by the
``build_py`` step of ``setup.py``; an installed package reads that copy, an editable install
(which has no copy) reads the checkout.

Both the connector (named statements in ``sql/<area>.sql``) and the schema module (canonical
definitions in ``sql/schema/<area>.sql``) read files made of sections headed
``-- name: x``; :func:`named_sections` is that parser. This module imports nothing of the
package, so either side can use it without importing the other.
"""

from __future__ import annotations

import re
from pathlib import Path

PACKAGE_DATA = Path(__file__).resolve().parent / "_data"
ROOT = Path(__file__).resolve().parent.parent


def _data_root() -> Path:
    """The installed copy when there is one, else the checkout."""
    return PACKAGE_DATA if (PACKAGE_DATA / "sql").is_dir() else ROOT


DATA_ROOT = _data_root()
SQL_DIR = DATA_ROOT / "sql"
SCHEMA_DIR = SQL_DIR / "schema"
MIGRATIONS_DIR = DATA_ROOT / "migrations"

_REVISION = re.compile(r'^(revision|down_revision)\s*=\s*"([^"]+)"', re.MULTILINE)
_NAME = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*(?:@[0-9a-z_]+)?)\s*$", re.MULTILINE)


def named_sections(path: Path) -> dict[str, str]:
    """The sections of a named-SQL file by name, in file order, each stripped; the text
    before the first header (the file's preamble) is dropped. A name defined twice is an
    error. A name may carry a revision suffix (``work_queue@0010``, retired definitions)."""
    parts = _NAME.split(path.read_text())
    sections: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in sections:
            raise ValueError(f"{path}: {name!r} defined twice")
        sections[name] = body.strip()
    return sections


def migrations_head() -> str | None:
    """The one revision no migration revises, read from the files' ``revision`` and
    ``down_revision`` lines without alembic; None when that is not a single revision.

    A command checks that the database is at the head before it runs. Loading alembic and
    SQLAlchemy for that check cost about 0.4 CPU s a command, most of a short command's
    start-up; alembic stays the authority whenever the stored revision differs (it then
    migrates), and a test holds this head equal to alembic's."""
    revisions: set[str] = set()
    revised: set[str] = set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        fields = dict(_REVISION.findall(path.read_text()))
        if "revision" not in fields:
            return None
        revisions.add(fields["revision"])
        revised.update(fields.get("down_revision", "").split())
    heads = revisions - revised
    return heads.pop() if len(heads) == 1 else None
