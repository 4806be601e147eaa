"""Type stub for the C extension built from ext/speedfile.c (twin:
renderer.traffic.export._speed_subtile over unpacked rows)."""

from collections.abc import Sequence

def subtile(header: bytes, start: int, segments: int,
            rows: Sequence[tuple[int, list[int], list[int], bytes, bytes]]
            ) -> tuple[bytes, bytes]: ...
