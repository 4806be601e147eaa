"""API tokens: created once in plaintext, stored hashed, revocable; the CLI around them."""

from __future__ import annotations

import json

import pytest

from renderer import tokens
from renderer.db import Database
from renderer.errors import InputError
from tests.test_cli import run


def test_a_token_authenticates_until_revoked(db: Database) -> None:
    with db.connect() as conn:
        plaintext, _ = tokens.create(conn, "minio")
        assert plaintext.startswith("rdr_") and len(plaintext) > 40
        found = tokens.verify(conn, plaintext)
        assert found is not None and found.name == "minio" and found.last_used_at is not None
        assert tokens.verify(conn, plaintext[:-1] + ("A" if plaintext[-1] != "A" else "B")) is None
        assert tokens.verify(conn, "not-a-token") is None
        assert tokens.any_active(conn)
        tokens.revoke(conn, "minio")
        assert tokens.verify(conn, plaintext) is None
        assert not tokens.any_active(conn)
        assert [t.name for t in tokens.list_tokens(conn, include_revoked=True)] == ["minio"]
        assert tokens.list_tokens(conn) == []


def test_only_the_hash_is_stored(db: Database) -> None:
    with db.connect() as conn:
        plaintext, _ = tokens.create(conn, "ci")
        conn.commit()
        dump = conn.execute("SELECT row_to_json(t)::text AS row FROM api_tokens t").fetchone()
    assert dump is not None
    assert plaintext not in dump["row"]
    assert plaintext[PREFIX_END:] not in dump["row"]


PREFIX_END = tokens.PREFIX_CHARS


def test_two_active_tokens_cannot_share_a_name(db: Database) -> None:
    with db.connect() as conn:
        tokens.create(conn, "hook")
        with pytest.raises(InputError, match="exists"):
            tokens.create(conn, "hook")
        tokens.revoke(conn, "hook")
        tokens.create(conn, "hook")  # the name is free again once revoked
        with pytest.raises(InputError, match="no active token"):
            tokens.revoke(conn, "nobody")


def test_tokens_cli(renderer_env: dict[str, str]) -> None:
    created = run(["tokens", "create", "minio", "--json"])
    assert created.returncode == 0, created.stderr
    token = json.loads(created.stdout)
    assert token["token"].startswith(token["prefix"])
    listed = run(["tokens", "list", "--json"])
    assert [t["name"] for t in json.loads(listed.stdout)] == ["minio"]
    assert token["token"] not in listed.stdout
    again = run(["tokens", "create", "minio"])
    assert again.returncode == 2 and "exists" in again.stderr
    revoked = run(["tokens", "revoke", "minio"])
    assert revoked.returncode == 0 and "revoked token minio" in revoked.stdout
    assert json.loads(run(["tokens", "list", "--json"]).stdout) == []
    assert len(json.loads(run(["tokens", "list", "--all", "--json"]).stdout)) == 1
