"""Type stub for the C extension built from ext/binning.c (twin: renderer._binning_py)."""

from collections.abc import Sequence

from renderer._binning_py import BinResult, PrefixResult

def bin_file(data: bytes, level: int, tile_index: int, hour: int) -> BinResult: ...
def bin_prefix(files: Sequence[bytes], level: int, tile_index: int, hour: int) -> PrefixResult: ...
