"""Type stub for the C extension built from ext/mvt.c (twin: renderer._mvt_py)."""

from collections.abc import Sequence
from typing import Any

def encode(name: str, bounds: tuple[float, float, float, float], columns: Sequence[str],
           features: Sequence[tuple[bytes, Sequence[Any], Sequence[tuple[str, Any]]]],
           extent: int = 4096) -> bytes: ...
