"""``python -m tracking.cli``: the ``trackflow`` command."""

from tracking.cli import main

main()
