"""A scratch database per benchmark, migrated to head, on the benchmark's server, and the
CPU seconds its cluster has spent."""

from __future__ import annotations

import os
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg

from renderer import schema


def with_database(url: str, name: str) -> str:
    """The same server URL with another database name."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def drop_database(server: str, name: str) -> None:
    with psycopg.connect(with_database(server, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def database_exists(server: str, name: str) -> bool:
    with psycopg.connect(with_database(server, "postgres")) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                            [name]).fetchone() is not None


def scratch_database(server: str, name: str) -> str:
    """Create ``name`` afresh (dropping a leftover), migrate it, return its URL."""
    drop_database(server, name)
    with psycopg.connect(with_database(server, "postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = with_database(server, name)
    schema.upgrade(url)
    return url


TICK = os.sysconf("SC_CLK_TCK")


def postmaster_of(url: str) -> int:
    """The pid of the postmaster serving ``url`` (the server must be on this machine)."""
    with psycopg.connect(url) as conn:
        folder = conn.execute("SHOW data_directory").fetchone()[0]  # type: ignore[index]
    with open(os.path.join(folder, "postmaster.pid")) as f:
        return int(f.readline())


def proc_stats() -> Iterator[tuple[int, list[str]]]:
    """(pid, the fields of /proc/PID/stat after the command name) of every live process."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                yield int(entry), f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue


def cluster_seconds(postmaster: int) -> float:
    """CPU seconds of the cluster so far: the postmaster's own and its reaped children's
    (``cutime``, ``cstime``: every backend that has exited, however short-lived), plus
    its live children's, from /proc."""
    total = 0
    for pid, fields in proc_stats():
        if pid == postmaster:
            total += sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
        elif int(fields[1]) == postmaster:
            total += int(fields[11]) + int(fields[12])
    return total / TICK
