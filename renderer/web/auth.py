"""Who may call the write endpoints: HMAC-signed bodies or bearer tokens, never anyone.

A signed request carries ``X-Renderer-Timestamp: <epoch seconds>`` and
``X-Signature-256: sha256=<hex>``, the HMAC-SHA256 of ``f"{timestamp}.".encode() + body``
under one of the configured secrets (several are accepted, so a secret can be rotated
without downtime). The timestamp must lie within the replay window, and each signature is
accepted once (the caller records :func:`check_signature`'s digest). A bearer token is
checked against the hashed tokens (:mod:`renderer.tokens`). With no secret and no active
token the write endpoints refuse every call.

Example
-------
>>> headers = signed_headers("s3cret", b'{"a": 1}', timestamp=1700000000)
>>> headers["X-Signature-256"][:7]
'sha256='
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Sequence

from renderer.hmacsign import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature, signed_headers
from renderer.web.deps import WebError

__all__ = ["SIGNATURE_HEADER", "TIMESTAMP_HEADER", "AuthFailure", "bearer_token",
           "check_signature", "signature", "signed_headers", "split_secrets"]
_SIGNATURE = re.compile(r"sha256=([0-9a-fA-F]{64})")
_HOW = (f"sign the body: {SIGNATURE_HEADER}: sha256=HMAC-SHA256(secret, "
        f"'<timestamp>.' + body) with {TIMESTAMP_HEADER}: <epoch seconds>, "
        "or send Authorization: Bearer <token>")
NOT_CONFIGURED = ("write endpoints are disabled: no secret or token is configured "
                  "(set RENDERER_WEB_SECRETS=<secret>[,<old secret>] or run "
                  "`renderer tokens create NAME`)")


class AuthFailure(WebError):
    """A request that may not write; ``status`` is 400, 401 or 403 (a 401 answer names the
    Bearer scheme in ``WWW-Authenticate``)."""


def split_secrets(value: str) -> list[str]:
    """``"new, old"`` -> ``["new", "old"]`` (blank entries dropped)."""
    return [s.strip() for s in value.split(",") if s.strip()]


def check_signature(secrets: Sequence[str], header: str | None, timestamp: str | None,
                    body: bytes, *, window: int, now: float | None = None) -> bytes:
    """Raise :class:`AuthFailure` unless the request is signed by one of ``secrets``.

    Returns the digest to record for replay detection: the same signed request presented
    again within the window must be refused by the caller.
    """
    if not secrets:
        raise AuthFailure(401, "signed requests are not accepted here: no secret is "
                               "configured (set RENDERER_WEB_SECRETS, or use a bearer token)")
    if timestamp is None:
        raise AuthFailure(401, f"missing {TIMESTAMP_HEADER} header ({_HOW})")
    if not timestamp.strip().isdigit():
        raise AuthFailure(401, f"{TIMESTAMP_HEADER} must be whole epoch seconds, "
                               f"not {timestamp[:20]!r}")
    ts = int(timestamp)
    age = (time.time() if now is None else now) - ts
    if abs(age) > window:
        where = "old" if age > 0 else "in the future"
        raise AuthFailure(401, f"request timestamp is {abs(int(age))} s {where}, outside the "
                               f"{window} s replay window (sign again with the current time)")
    match = _SIGNATURE.fullmatch((header or "").strip())
    if match is None:
        raise AuthFailure(401, f"missing or malformed {SIGNATURE_HEADER} header ({_HOW})")
    presented = match.group(1).lower()
    # Compare against every secret, without stopping at the first match, in constant time.
    ok = False
    for secret in secrets:
        ok |= hmac.compare_digest(signature(secret, ts, body), presented)
    if not ok:
        raise AuthFailure(401, f"{SIGNATURE_HEADER} does not match the body under any "
                               "configured secret (check the secret and sign the raw body "
                               f"bytes prefixed with '<timestamp>.')")
    return hashlib.sha256(f"{ts}.{presented}".encode()).digest()


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, None when absent."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise AuthFailure(401, "Authorization must be 'Bearer <token>' "
                               "(create one with `renderer tokens create NAME`)")
    return value.strip()
