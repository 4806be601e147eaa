"""`renderer traffic` commands of one stage group (see traffic.py)."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
