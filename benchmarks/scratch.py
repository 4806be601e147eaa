"""A scratch database per benchmark, migrated to head, on the benchmark's server."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import psycopg

from renderer import schema


def with_database(url: str, name: str) -> str:
    """The same server URL with another database name."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def drop_database(server: str, name: str) -> None:
    with psycopg.connect(with_database(server, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def scratch_database(server: str, name: str) -> str:
    """Create ``name`` afresh (dropping a leftover), migrate it, return its URL."""
    drop_database(server, name)
    with psycopg.connect(with_database(server, "postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = with_database(server, name)
    schema.upgrade(url)
    return url
