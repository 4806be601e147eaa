"""Nothing that workers, the pool, schedules or the service run may keep state in a server
session past its transaction (PgBouncer in transaction pooling hands the next transaction
another session). This scan finds the session-level constructs in the SQL and the code;
each one found must be in a place listed here with the reason it is safe."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parent.parent

SESSION_LEVEL = {
    "session advisory lock": re.compile(r"pg_(try_)?advisory_lock(_shared)?\s*\(", re.I),
    "session setting": re.compile(r"set_config\([^)]*,\s*false\s*\)", re.I),
    # A statement (or a string in code) that starts with SET (upper case, as our SQL is;
    # "set RENDERER_..." in a message is not one); not UPDATE's SET clause.
    "SET outside a transaction": re.compile(
        r"(?:(?:\A|;)(?:\s|--[^\n]*\n)*|[\"'])SET\s+(SESSION\s+)?\w+\s*(=|TO\b)"),
    "LISTEN": re.compile(r"\bLISTEN\s+\w+", re.M),
    # ON COMMIT DROP: the table ends with its transaction, which is safe.
    "temporary table": re.compile(r"CREATE\s+TEMP(ORARY)?\s+TABLE(?![^;]*ON\s+COMMIT\s+DROP)",
                                  re.I),
    "cursor WITH HOLD": re.compile(r"WITH\s+HOLD|withhold\s*=\s*True", re.I),
}

# Where a construct is allowed, and why.
ALLOWED = {
    # Ingest commands (not workers): documented in docs/hosts.md to need a direct URL.
    ("sql/sensors_ingest.sql", "session setting"),
    ("sql/sensors_ingest.sql", "temporary table"),
    ("sql/tracks.sql", "temporary table"),
    # The LISTEN of a worker, which never runs behind a pooler (renderer.worker.listens).
    ("renderer/worker.py", "LISTEN"),
}


def _found() -> set[tuple[str, str]]:
    files = [*ROOT.glob("sql/*.sql"), *ROOT.glob("sql/schema/*.sql"),
             *ROOT.glob("renderer/**/*.py"), ROOT / "migrations/env.py"]
    hits = set()
    for path in files:
        text = path.read_text()
        for what, pattern in SESSION_LEVEL.items():
            if pattern.search(text):
                hits.add((path.relative_to(ROOT).as_posix(), what))
    return hits


def test_session_state_only_where_it_is_safe() -> None:
    assert _found() <= ALLOWED, sorted(_found() - ALLOWED)


def test_the_scan_finds_what_it_looks_for() -> None:
    samples = {"session advisory lock": "SELECT pg_advisory_lock(1)",
               "session setting": "SELECT set_config('work_mem', '1GB', false)",
               "SET outside a transaction": "SET statement_timeout = 5",
               "LISTEN": "LISTEN renderer_queue",
               "temporary table": "CREATE TEMP TABLE x (a int)",
               "cursor WITH HOLD": "DECLARE c CURSOR WITH HOLD FOR SELECT 1"}
    for what, text in samples.items():
        assert SESSION_LEVEL[what].search(text), what
    assert not SESSION_LEVEL["session advisory lock"].search("pg_advisory_xact_lock(1)")
    assert not SESSION_LEVEL["session setting"].search("set_config('a', 'b', true)")
    assert not SESSION_LEVEL["temporary table"].search("CREATE TEMP TABLE x () ON COMMIT DROP;")
    assert SESSION_LEVEL["SET outside a transaction"].search('conn.execute("SET work_mem TO 1")')
    assert not SESSION_LEVEL["SET outside a transaction"].search("UPDATE t\n    SET a = 1;")
