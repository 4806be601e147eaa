"""Type stub for the C extension built from ext/utfgrid.c (twin: renderer._utfgrid_py)."""

from collections.abc import Sequence

def paint(shapes: Sequence[bytes | None], size: int = 256,
          resolution: int = 4) -> tuple[list[str], list[int]]: ...
