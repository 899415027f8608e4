"""The ``opsconductor`` CLI (DESIGN §11): one module per group of commands, ``main`` wires them together."""

from ui.cli.commands import app, main

__all__ = ["app", "main"]
