"""Signature checks as pure functions: constant-time HMAC, replay window, rotation."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from renderer.web import auth

NOW = 1_790_000_000


def _check(secrets: list[str], headers: dict[str, str], body: bytes, *, now: float = NOW,
           window: int = 300) -> bytes:
    return auth.check_signature(secrets, headers.get(auth.SIGNATURE_HEADER),
                                headers.get(auth.TIMESTAMP_HEADER), body, window=window, now=now)


@given(secret=st.text(min_size=1, max_size=40).filter(lambda s: "," not in s and s.strip()),
       body=st.binary(max_size=200), ts=st.integers(NOW - 300, NOW + 300))
def test_a_signed_body_passes_and_matches_the_documented_hmac(secret: str, body: bytes,
                                                              ts: int) -> None:
    headers = auth.signed_headers(secret, body, timestamp=ts)
    expected = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    assert headers[auth.SIGNATURE_HEADER] == f"sha256={expected}"
    _check([secret], headers, body)


@given(body=st.binary(min_size=1, max_size=100), flip=st.integers(0, 99))
def test_any_change_to_the_body_fails(body: bytes, flip: int) -> None:
    headers = auth.signed_headers("k", body, timestamp=NOW)
    i = flip % len(body)
    tampered = body[:i] + bytes([body[i] ^ 1]) + body[i + 1:]
    with pytest.raises(auth.AuthFailure, match="does not match"):
        _check(["k"], headers, tampered)


def test_rotation_accepts_every_configured_secret() -> None:
    secrets = auth.split_secrets(" new , old ,, ")
    assert secrets == ["new", "old"]
    for secret in ("new", "old"):
        _check(secrets, auth.signed_headers(secret, b"{}", timestamp=NOW), b"{}")
    with pytest.raises(auth.AuthFailure):
        _check(secrets, auth.signed_headers("older", b"{}", timestamp=NOW), b"{}")


@pytest.mark.parametrize("ts,message", [
    (NOW - 301, "s old, outside the 300 s replay window"),
    (NOW + 301, "in the future"),
])
def test_timestamps_outside_the_window_fail(ts: int, message: str) -> None:
    with pytest.raises(auth.AuthFailure, match=message):
        _check(["k"], auth.signed_headers("k", b"{}", timestamp=ts), b"{}")


def test_the_timestamp_is_part_of_the_signed_message() -> None:
    headers = auth.signed_headers("k", b"{}", timestamp=NOW)
    headers[auth.TIMESTAMP_HEADER] = str(NOW + 1)
    with pytest.raises(auth.AuthFailure, match="does not match"):
        _check(["k"], headers, b"{}")


@pytest.mark.parametrize("headers,message", [
    ({auth.SIGNATURE_HEADER: "sha256=" + "0" * 64}, "missing X-Renderer-Timestamp"),
    ({auth.TIMESTAMP_HEADER: str(NOW)}, "missing or malformed X-Signature-256"),
    ({auth.TIMESTAMP_HEADER: str(NOW), auth.SIGNATURE_HEADER: "md5=abc"}, "malformed"),
    ({auth.TIMESTAMP_HEADER: "yesterday", auth.SIGNATURE_HEADER: "sha256=" + "0" * 64},
     "whole epoch seconds"),
])
def test_malformed_headers_fail_with_a_clear_message(headers: dict[str, str],
                                                     message: str) -> None:
    with pytest.raises(auth.AuthFailure, match=message) as info:
        _check(["k"], headers, b"{}")
    assert info.value.status == 401


def test_no_secret_configured_refuses_signatures() -> None:
    with pytest.raises(auth.AuthFailure, match="no secret is configured"):
        _check([], auth.signed_headers("k", b"{}", timestamp=NOW), b"{}")


def test_the_replay_digest_identifies_the_request() -> None:
    a = _check(["k"], auth.signed_headers("k", b"{}", timestamp=NOW), b"{}")
    b = _check(["k"], auth.signed_headers("k", b"{}", timestamp=NOW), b"{}")
    c = _check(["k"], auth.signed_headers("k", b"{}", timestamp=NOW - 1), b"{}")
    assert a == b != c


def test_bearer_header_parsing() -> None:
    assert auth.bearer_token(None) is None
    assert auth.bearer_token("Bearer rdr_x") == "rdr_x"
    assert auth.bearer_token("bearer  rdr_x ") == "rdr_x"
    with pytest.raises(auth.AuthFailure, match="Bearer <token>"):
        auth.bearer_token("Basic dXNlcjpwYXNz")
