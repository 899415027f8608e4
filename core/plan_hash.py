"""What an approval binds to (DESIGN §3.6): a plan's canonical JSON and its SHA-256.

Apart from core/plans.py (parsing, validation, derivation, which needs the YAML loader and the plan models)
because every reader of a stored plan checks its hash, and a read must not pay for the parser (issue 15).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any


def canonical_json(value: Any) -> str:
    """Deterministic JSON: sorted keys, no whitespace, UTF-8 kept as is."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def plan_hash(canonical: Mapping[str, Any] | str) -> str:
    """SHA-256 (hex) of the canonical JSON; approvals bind to it (DESIGN §3.6)."""
    text = canonical if isinstance(canonical, str) else canonical_json(canonical)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
