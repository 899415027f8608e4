"""What the server trusts when it derives a step's risk (DESIGN §13 "The server decides risk").

A plan cannot talk its way down to ``read``: an action's own params give its class (``shell`` is ``modify``),
and only an admin's declaration for the tenant lowers a step to ``read``: an argv prefix declared read-only,
or a runbook the admin published. ``Trust`` is those declarations as plain data, loaded per submission by
core/inventory/trust.py and applied by core/plans.py; this module is pure and imports nothing of ours but
the enums.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from db.enums import ActionClass


def step_key(action: str, params: Mapping[str, Any]) -> str:
    """The identity of a step for publication: its action and its normalised params (canonical JSON)."""
    return json.dumps({"action": action, "params": params}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def has_prefix(argv: Sequence[str], prefix: Sequence[str]) -> bool:
    """True if ``argv`` starts with every word of ``prefix``, word for word (``[df]`` is no prefix of ``[dfx]``)."""
    return 0 < len(prefix) <= len(argv) and all(a == p for a, p in zip(argv, prefix, strict=False))


@dataclass(frozen=True)
class Trust:
    """A tenant's declarations: read-only argv prefixes, and the steps of its published runbooks.

    ``published`` maps a ``step_key`` to the class the runbook itself gives that step (its own
    ``action_class``, else ``read``): publishing vouches for the step as the runbook writes it, no lower.
    """

    read_only_prefixes: frozenset[tuple[str, ...]] = frozenset()
    published: Mapping[str, ActionClass] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def of(cls, prefixes: Iterable[Sequence[str]], published: Mapping[str, ActionClass] | None = None) -> Trust:
        return cls(frozenset(tuple(p) for p in prefixes if p), MappingProxyType(dict(published or {})))

    def read_only_argv(self, argv: Sequence[str]) -> bool:
        """True if an admin declared a prefix of ``argv`` read-only."""
        return any(has_prefix(argv, prefix) for prefix in self.read_only_prefixes)

    def published_class(self, action: str, params: Mapping[str, Any]) -> ActionClass | None:
        """The class a published runbook gives this exact step, or None if no published runbook has it."""
        return self.published.get(step_key(action, params))


UNTRUSTED = Trust()
