"""The error tree: every public exception class of the package is a RendererError, so the CLI
shows it as one line and the web service answers it in its one error shape.

Signals that are not errors stay out: the queue's ``TimeLimitExceeded`` and ``Shutdown`` are
KeyboardInterrupts on purpose (a handler's ``except Exception`` must not swallow them)."""

from __future__ import annotations

import importlib
import inspect

from renderer.errors import (
    InputError,
    InvalidKey,
    InvalidMetadata,
    ObjectNotFound,
    RendererError,
    StorageError,
)
from renderer.sensors.files import FileUnreadable
from renderer.sensors.staging import BadHeader
from renderer.web.auth import AuthFailure
from renderer.web.deps import WebError
from tests.test_imports import PACKAGE, ROOT, modules


def test_every_public_exception_is_in_the_tree() -> None:
    outside = []
    for name in modules(ROOT / PACKAGE):
        if name.endswith(".__main__"):  # importing it runs the command
            continue
        module = importlib.import_module(name)
        for attr, value in vars(module).items():
            if (inspect.isclass(value) and issubclass(value, Exception)
                    and value.__module__ == name and not attr.startswith("_")
                    and not issubclass(value, RendererError)):
                outside.append(f"{name}.{attr}")
    assert not outside, f"exception classes outside the RendererError tree: {outside}"


def test_branches() -> None:
    assert issubclass(FileUnreadable, InputError) and issubclass(BadHeader, InputError)
    assert issubclass(AuthFailure, WebError) and issubclass(WebError, RendererError)
    for cls in (InvalidKey, InvalidMetadata, ObjectNotFound):
        assert issubclass(cls, StorageError)
    # still what callers caught before the tree: a bad key is a ValueError, a missing object
    # a KeyError
    assert issubclass(InvalidKey, ValueError) and issubclass(InvalidMetadata, ValueError)
    assert issubclass(ObjectNotFound, KeyError)


def test_web_errors_keep_their_status_and_message() -> None:
    error = AuthFailure(401, "missing credentials")
    assert (error.status, error.message, str(error)) == (401, "missing credentials",
                                                         "missing credentials")
