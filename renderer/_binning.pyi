"""Type stub for the C extension built from ext/binning.c (twin: renderer._binning_py)."""

from renderer._binning_py import BinResult

def bin_file(data: bytes, level: int, tile_index: int, hour: int) -> BinResult: ...
