"""The Prometheus text exposition format (0.0.4), written by hand: it is a few lines, and
the official client's global registry fits a multi-process service badly.

Example
-------
>>> text = render([Family("renderer_workers_alive", "gauge", "Workers alive.", [({}, 3)])])
>>> text.splitlines()[-1]
'renderer_workers_alive 3'
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Sample = tuple[Mapping[str, object], float | int | None]


@dataclass(frozen=True)
class Family:
    name: str
    type: str  # gauge, counter, summary, untyped
    help: str
    samples: Sequence[Sample]
    suffix: str = ""  # e.g. "_total" on counter samples


def escape_label(value: object) -> str:
    """Backslash, double quote and newline escaped, as the format requires."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float | int | None) -> str:
    if value is None:
        return "NaN"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    return repr(float(value))


def _labels(labels: Mapping[str, object]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{escape_label(v)}"' for k, v in labels.items())
    return "{" + inner + "}"


def render(families: Iterable[Family]) -> str:
    lines: list[str] = []
    for family in families:
        lines.append(f"# HELP {family.name} {_help(family.help)}")
        lines.append(f"# TYPE {family.name} {family.type}")
        for labels, value in family.samples:
            name = labels.get("__name__") if "__name__" in labels else None
            shown = {k: v for k, v in labels.items() if k != "__name__"}
            metric = str(name) if name else family.name + family.suffix
            lines.append(f"{metric}{_labels(shown)} {format_value(value)}")
    return "\n".join(lines) + "\n"
