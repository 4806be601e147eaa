"""Bounded, storable text: error messages, tracebacks and rejected raw lines.

Text we store for people to read comes from anywhere (a handler's exception, a line of an
input file), so it may be huge or hold a NUL, which PostgreSQL's ``text`` refuses: one such
value would fail the whole statement (a batch of good items, a file's good rows) with it.
"""

from __future__ import annotations

LIMIT = 8192  # characters kept of one message, traceback or raw line
REPLACEMENT = "\ufffd"
MARKER = "\n[... {} characters cut ...]\n"


def clip(text: str, limit: int = LIMIT) -> str:
    """``text`` without NUL characters (each becomes U+FFFD) and at most ``limit``
    characters: the head and the tail are kept around a marker saying how much was cut.

    Example
    -------
    >>> clip("a\\x00b")
    'a\\ufffdb'
    >>> len(clip("x" * 100_000)) <= 8192
    True
    """
    if "\x00" in text:
        text = text.replace("\x00", REPLACEMENT)
    if len(text) <= limit:
        return text
    # The marker's length depends on the number it shows: size it for the longest.
    cut = len(text) - limit + len(MARKER.format(len(text)))
    head = (len(text) - cut) // 2
    tail = len(text) - cut - head
    return text[:head] + MARKER.format(cut) + text[len(text) - tail:]
