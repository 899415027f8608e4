"""Action types: one runner class per file, registered by name (DESIGN §8).

Importing this package registers the built-ins; plugins come from the ``opsconductor.actions``
entry-point group (registry.load_plugins).
"""

from __future__ import annotations

from core.actions import automation, http, noop, shell, sleep, ssh
from core.actions.registry import ActionType, get_action, known_actions, register

__all__ = [
    "ActionType",
    "automation",
    "get_action",
    "http",
    "known_actions",
    "noop",
    "register",
    "shell",
    "sleep",
    "ssh",
]
