"""Histogram binning of reporter files: the C loop, its pure-Python twin, and the codes.

``bin_file`` (and ``bin_prefix``, the files of a prefix together) is the C function from
``renderer._binning`` (built from ``ext/binning.c``) when it
is importable, otherwise the twin in ``renderer._binning_py``; set ``RENDERER_NO_EXT=1`` to force
the twin. ``IMPLEMENTATION`` says which one is in use. Both take and return the same things.

Duration codes keep OpenTraffic's byte layout: the two high bits pick a step class, the six
low bits count steps. Classes: offset 0 step 1 s (0-63 s), offset 64 step 2 s (64-191 s),
offset 192 step 5 s (192-511 s), offset 512 step 10 s (512-1142 s, longer clamps to 1142 s).
Codes are plain unsigned 0..255 (OpenTraffic's Java stored them in a signed byte).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from renderer import _binning_py, kernels
from renderer._binning_py import BinResult, PrefixResult

__all__ = [
    "IMPLEMENTATION",
    "BinFile",
    "BinPrefix",
    "BinResult",
    "PrefixResult",
    "bin_file",
    "bin_prefix",
    "duration_code",
    "duration_seconds",
    "duration_step",
    "implementations",
    "merge_lengths",
    "merge_lengths_implementations",
    "prefix_implementations",
]

BinFile = Callable[[bytes, int, int, int], BinResult]
BinPrefix = Callable[[Sequence[bytes], int, int, int], PrefixResult]
MergeLengths = Callable[[Sequence[bytes]], tuple[int, bytes]]

_STEP_OFFSETS = (0, 64, 192, 512)
_STEP_SIZES = (1, 2, 5, 10)
DURATION_MAX = _binning_py.DURATION_MAX


bin_file: BinFile
bin_prefix: BinPrefix
merge_lengths: MergeLengths
"""Segment-length COPY payloads of several prefixes as one, equal rows summed."""
bin_file, IMPLEMENTATION = kernels.pick("_binning", "bin_file", _binning_py.bin_file)
bin_prefix, _ = kernels.pick("_binning", "bin_prefix", _binning_py.bin_prefix)
merge_lengths, _ = kernels.pick("_binning", "merge_lengths", _binning_py.merge_lengths)


def implementations() -> dict[str, BinFile]:
    """Every implementation available here, by name: ``"python"``, and ``"c"`` if built
    (even under ``RENDERER_NO_EXT=1``, so tests can compare both)."""
    return kernels.both("_binning", "bin_file", _binning_py.bin_file)


def prefix_implementations() -> dict[str, BinPrefix]:
    """The same for ``bin_prefix``."""
    return kernels.both("_binning", "bin_prefix", _binning_py.bin_prefix)


def merge_lengths_implementations() -> dict[str, MergeLengths]:
    """The same for ``merge_lengths``."""
    return kernels.both("_binning", "merge_lengths", _binning_py.merge_lengths)


def duration_code(seconds: float) -> int:
    """The duration bucket code (0..255) of a traversal lasting ``seconds``.

    Fractions are floored; anything from 1142 s up lands in the last bucket, code 255.

    Examples
    --------
    >>> duration_code(600), duration_code(63.9), duration_code(5000)
    (200, 63, 255)
    """
    if not seconds >= 0:  # also catches NaN
        raise ValueError(f"duration must be a non-negative number of seconds, got {seconds!r}")
    d = DURATION_MAX if seconds >= DURATION_MAX else math.floor(seconds)
    klass = 3
    while d < _STEP_OFFSETS[klass]:
        klass -= 1
    return klass << 6 | (d - _STEP_OFFSETS[klass]) // _STEP_SIZES[klass]


def duration_seconds(code: int) -> int:
    """The lower bound in seconds of the duration bucket ``code`` (0..255).

    Examples
    --------
    >>> duration_seconds(200), duration_seconds(255)
    (592, 1142)
    """
    if not 0 <= code <= 255:
        raise ValueError(f"duration code must be in 0..255, got {code!r}")
    klass, index = code >> 6, code & 63
    return _STEP_OFFSETS[klass] + index * _STEP_SIZES[klass]


def duration_step(code: int) -> int:
    """The width in seconds of the duration bucket ``code`` (1, 2, 5 or 10)."""
    if not 0 <= code <= 255:
        raise ValueError(f"duration code must be in 0..255, got {code!r}")
    return _STEP_SIZES[code >> 6]
