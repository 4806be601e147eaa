"""``python -m renderer`` is the ``renderer`` command."""

from renderer.cli import main

main()
