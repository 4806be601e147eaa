"""The HMAC scheme of signed requests, shared by the incoming hooks (:mod:`renderer.web.auth`)
and the status posted back to callbacks (:mod:`renderer.callbacks`).

A signed body travels with ``X-Renderer-Timestamp: <epoch seconds>`` and
``X-Signature-256: sha256=<hex>``, the HMAC-SHA256 of ``f"{timestamp}.".encode() + body``.

Example
-------
>>> signed_headers("s3cret", b'{"a": 1}', timestamp=1700000000)["X-Signature-256"][:7]
'sha256='
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-Signature-256"
TIMESTAMP_HEADER = "X-Renderer-Timestamp"


def signature(secret: str, timestamp: int | str, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``"{timestamp}." + body``."""
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signed_headers(secret: str, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
    """The headers that authenticate ``body`` under ``secret``."""
    ts = int(time.time()) if timestamp is None else timestamp
    return {TIMESTAMP_HEADER: str(ts),
            SIGNATURE_HEADER: f"sha256={signature(secret, ts, body)}"}
