"""API tokens: bearer credentials for the write endpoints, stored hashed.

A token is ``rdr_`` followed by 256 random bits (URL-safe base64). Only its SHA-256 and a
short prefix are stored: the prefix names the token in lists, the hash authenticates it.
A slow password hash would add nothing for random 256-bit secrets, and a fast one keeps
every authenticated request cheap.

Example
-------
>>> plaintext, token = create(conn, "minio")   # show plaintext once, never again
>>> verify(conn, plaintext).name
'minio'
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from renderer.db import Connection, one, query
from renderer.errors import AlreadyExists, InputError

TOKEN_MARK = "rdr_"
PREFIX_CHARS = 12  # "rdr_" + 8 random characters: enough to tell tokens apart


@dataclass(frozen=True)
class Token:
    """A stored token, without anything that authenticates."""

    id: int
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Token:
        return cls(**{k: row[k] for k in cls.__dataclass_fields__})

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def hash_token(token: str) -> bytes:
    """The stored form of a token: its SHA-256 digest."""
    return hashlib.sha256(token.encode()).digest()


def new_token() -> str:
    return TOKEN_MARK + secrets.token_urlsafe(32)


def create(conn: Connection, name: str) -> tuple[str, Token]:
    """Create a token named ``name``; return its plaintext (shown once) and its record."""
    name = name.strip()
    if not name:
        raise InputError("a token needs a name", "pass a name, e.g. `renderer tokens create minio`")
    plaintext = new_token()
    try:
        with conn.transaction():
            row = one(conn, "web.token_create", {
                "name": name, "token_hash": hash_token(plaintext),
                "prefix": plaintext[:PREFIX_CHARS],
            })
    except AlreadyExists as exc:
        if exc.constraint != "api_tokens_active_name":
            raise
        raise InputError(f"an active token named {name!r} exists",
                         f"revoke it first (`renderer tokens revoke {name}`) or pick another "
                         "name") from exc
    return plaintext, Token.from_row(row)


def verify(conn: Connection, presented: str) -> Token | None:
    """The active token ``presented`` authenticates as, or None; marks it used."""
    if not presented.startswith(TOKEN_MARK):
        return None
    row = conn.execute(query("web.token_use"),
                       {"token_hash": hash_token(presented)}).fetchone()
    return Token.from_row(row) if row else None


def list_tokens(conn: Connection, *, include_revoked: bool = False) -> list[Token]:
    rows = conn.execute(query("web.token_list"), {"all": include_revoked}).fetchall()
    return [Token.from_row(r) for r in rows]


def revoke(conn: Connection, ref: str) -> list[Token]:
    """Revoke the active token named ``ref`` (or with that id or prefix)."""
    rows = conn.execute(query("web.token_revoke"), {"ref": ref}).fetchall()
    if not rows:
        raise InputError(f"no active token {ref!r}", "see `renderer tokens list`")
    return [Token.from_row(r) for r in rows]


def any_active(conn: Connection) -> bool:
    row = conn.execute(query("web.token_any_active")).fetchone()
    return bool(row and row["any"])
