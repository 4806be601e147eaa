"""Pytest plugin: a real S3 endpoint (moto's standalone server) on a loopback port.

Registered by ``pytest_plugins = ["tests.s3server"]`` in ``tests/conftest.py``. The server is
a real HTTP server that boto3 talks to over the network like any S3, not a patched boto3, so
the client's configuration (endpoint, credentials, timeouts, pagination) is exercised too.

Fixtures
--------
moto_server
    Session-wide: the base URL of the server, ``http://127.0.0.1:PORT``.
s3_endpoint
    Per test: the same URL, with fake credentials, region and ``AWS_ENDPOINT_URL`` set in the
    environment (monkeypatched, so undone after the test) and the server's state reset.
"""

from __future__ import annotations

import logging
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from moto.server import ThreadedMotoServer


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """Start moto's S3 server on a free loopback port for the whole session."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_endpoint(moto_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """The moto server's URL, with an environment that points boto3 at it and only at it."""
    # Keep a developer's ~/.aws and AWS_* variables out of the tests.
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config-absent"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials-absent"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    reset = urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST")
    with urllib.request.urlopen(reset, timeout=10) as response:
        response.read()
    return moto_server
