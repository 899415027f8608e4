"""Masking: every text that is persisted or logged passes ``Masker.mask`` first (DESIGN §3.8).

A Masker is made per execution; the worker registers every secret value it resolves (with its common
encodings), and credential-shaped text is redacted by pattern whether registered or not.
"""

from __future__ import annotations

import base64
import json
import threading
import urllib.parse

from core.safety.credentials import CREDENTIAL_PATTERNS

MASK = "***"
MIN_SECRET_LENGTH = 4  # shorter values would mask ordinary words; refuse-to-register is not an option, so skip


class Masker:
    """Replaces registered secret values and credential-shaped text with ``***``. Thread-safe."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._lock = threading.Lock()

    def register(self, value: str) -> None:
        """Mask ``value`` (and its base64, URL-encoded and JSON-escaped forms) from now on."""
        if len(value) < MIN_SECRET_LENGTH:
            return
        forms = {
            value,
            base64.b64encode(value.encode()).decode(),
            urllib.parse.quote(value, safe=""),
            urllib.parse.quote_plus(value),
            json.dumps(value)[1:-1],
        }
        with self._lock:
            self._values.update(f for f in forms if len(f) >= MIN_SECRET_LENGTH)

    @property
    def count(self) -> int:
        """How many distinct forms are registered."""
        return len(self._values)

    def mask(self, text: str | None) -> str | None:
        """``text`` with every registered value and credential pattern replaced by ``***``."""
        if not text:
            return text
        with self._lock:
            values = sorted(self._values, key=len, reverse=True)  # longest first: no partial leftovers
        for value in values:
            if value in text:
                text = text.replace(value, MASK)
        for pattern in CREDENTIAL_PATTERNS.values():
            text = pattern.sub(MASK, text)
        return text
