"""``renderer traffic``: the traffic pipeline's commands, by stage.

Ingest commands (submit, histogram, rejects, sample, export-histograms) live in
``traffic_ingest.py``; product commands (schedule, speeds, reference, coverage, run) in
``traffic_products.py``.
"""

from __future__ import annotations

import click

from renderer.cli import traffic_ingest, traffic_products, traffic_tables


@click.group("traffic")
def traffic() -> None:
    """The traffic pipeline: reporter files -> histograms -> speed and reference tiles.

    \b
    Example:
        renderer traffic sample --out ./sample --tiles 2 --days 7
        renderer traffic run --source ./sample
    """


for _command in [*traffic_ingest.COMMANDS, *traffic_products.COMMANDS, *traffic_tables.COMMANDS]:
    traffic.add_command(_command)

COMMANDS = [traffic]
