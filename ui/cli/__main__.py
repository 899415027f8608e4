"""``python -m ui.cli``: the same as the ``opsconductor`` script."""

from ui.cli.commands import main

main()
