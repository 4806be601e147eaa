"""The C kernels and their pure-Python twins: which one runs.

A kernel (``renderer._binning``, ``renderer._utfgrid``, ``renderer._mvt``) is built from
``ext/`` by ``setup.py``; its twin (``renderer._binning_py``, ...) computes the same thing
and is held equal to it by property tests. The C build is optional: when it does not import
(not built) or ``RENDERER_NO_EXT=1`` forces it off, the twin stands in.

Example
-------
>>> encode, IMPLEMENTATION = pick("_mvt", "encode", _mvt_py.encode)
>>> sorted(both("_mvt", "encode", _mvt_py.encode))
['c', 'python']
"""

from __future__ import annotations

import importlib
import os
from typing import TypeVar, cast

__all__ = ["both", "disabled", "pick"]

T = TypeVar("T")


def disabled() -> bool:
    """Whether ``RENDERER_NO_EXT=1`` forces the twins."""
    return os.environ.get("RENDERER_NO_EXT") == "1"


def _built(module: str, name: str) -> object | None:
    try:
        return cast(object, getattr(importlib.import_module(f"renderer.{module}"), name))
    except ImportError:
        return None


def pick(module: str, name: str, twin: T) -> tuple[T, str]:
    """``renderer.<module>.<name>`` from the C build, or ``twin``; and which (``"c"`` or
    ``"python"``)."""
    built = None if disabled() else _built(module, name)
    return (cast(T, built), "c") if built is not None else (twin, "python")


def both(module: str, name: str, twin: T) -> dict[str, T]:
    """Every implementation available here, by name: ``"python"``, and ``"c"`` whenever it
    imports, even under ``RENDERER_NO_EXT=1``, so that tests compare the two."""
    built = _built(module, name)
    return {"python": twin} | ({"c": cast(T, built)} if built is not None else {})
