"""Masking: every text that is persisted or logged passes a masker first (DESIGN §3.8).

- A ``Masker`` is made per step; the worker registers every secret value it resolves (with its base64,
  URL-encoded and JSON-escaped forms). While the step runs, its values are also *live* in the process,
  so the logging filter can redact them from any log line, whoever writes it.
- Credential-shaped text (``CREDENTIAL_PATTERNS``) is redacted whether registered or not, and structured
  data has the values of sensitive keys (``SENSITIVE_KEY``) replaced.
- ``install_log_masking`` puts ``MaskingFilter`` on every logging handler: the filter masks the
  *formatted* message (so ``log.info("password=%s", pw)`` is caught) and the exception text.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import urllib.parse
from collections import Counter
from typing import Any

from core import metrics
from core.safety.credentials import CREDENTIAL_PATTERNS, SENSITIVE_KEY

MASK = "***"
MIN_SECRET_LENGTH = 4  # shorter values would mask ordinary words everywhere


def _forms(value: str) -> set[str]:
    forms = {
        value,
        base64.b64encode(value.encode()).decode(),
        urllib.parse.quote(value, safe=""),
        urllib.parse.quote_plus(value),
        json.dumps(value)[1:-1],
    }
    return {f for f in forms if len(f) >= MIN_SECRET_LENGTH}


def _redact(text: str, values: list[str]) -> str:
    secrets = patterns = 0
    for value in values:  # longest first: no partial leftovers
        if value in text:
            secrets += text.count(value)
            text = text.replace(value, MASK)
    for pattern in CREDENTIAL_PATTERNS.values():
        text, found = pattern.subn(MASK, text)
        patterns += found
    if secrets:
        metrics.MASKED_SECRETS.labels("secret").inc(secrets)
    if patterns:
        metrics.MASKED_SECRETS.labels("pattern").inc(patterns)
    return text


class _LiveValues:
    """The secret values in use by running steps of this process, reference-counted."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def add(self, forms: set[str]) -> None:
        with self._lock:
            self._counts.update(forms)

    def remove(self, forms: set[str]) -> None:
        with self._lock:
            self._counts.subtract(forms)
            for form in [f for f, n in self._counts.items() if n <= 0]:
                del self._counts[form]

    def snapshot(self) -> list[str]:
        with self._lock:
            return sorted(self._counts, key=len, reverse=True)


LIVE = _LiveValues()


class Masker:
    """Redacts one step's secret values and credential patterns. Thread-safe; ``close()`` when done."""

    def __init__(self) -> None:
        self._forms: set[str] = set()
        self._lock = threading.Lock()

    def register(self, value: str) -> None:
        """Mask ``value`` and its encodings from now on, here and (until ``close``) in every log line."""
        forms = _forms(value) - self._forms
        if not forms:
            return
        with self._lock:
            self._forms |= forms
        LIVE.add(forms)

    def close(self) -> None:
        """The step is over: its values stop being live for the log filter."""
        with self._lock:
            forms, self._forms = self._forms, set()
        LIVE.remove(forms)

    @property
    def count(self) -> int:
        """How many distinct forms are registered."""
        return len(self._forms)

    def mask(self, text: str | None) -> str | None:
        """``text`` with every registered value and credential pattern replaced by ``***``."""
        if not text:
            return text
        with self._lock:
            values = sorted(self._forms, key=len, reverse=True)
        return _redact(text, values)


def mask_text(text: str) -> str:
    """``text`` with the live secret values of this process and credential patterns redacted."""
    return _redact(text, LIVE.snapshot()) if text else text


def mask_data(value: Any) -> Any:
    """A copy of structured data with sensitive keys' values replaced and every string masked."""
    if isinstance(value, dict):
        return {
            k: MASK if SENSITIVE_KEY.search(str(k)) and v not in (None, "") else mask_data(v) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [mask_data(v) for v in value]
    if isinstance(value, str):
        return mask_text(value)
    return value


class MaskingFilter(logging.Filter):
    """Masks the formatted message and the exception text of every record a handler emits."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001  a broken format string: mask the raw template instead
            message = str(record.msg)
        record.msg, record.args = mask_text(message), None
        if record.exc_info:
            record.exc_text = mask_text(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        if record.stack_info:
            record.stack_info = mask_text(record.stack_info)
        return True


_FILTER = MaskingFilter()


def install_log_masking() -> int:
    """Put the masking filter on every handler of every logger (idempotent). Returns handlers covered.

    Call it when a process starts (worker boot, console, CLI) and after anything adds handlers.
    """
    loggers: list[logging.Logger] = [logging.getLogger()]
    loggers += [lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)]
    covered = 0
    for logger in loggers:
        for handler in logger.handlers:
            if _FILTER not in handler.filters:
                handler.addFilter(_FILTER)
            covered += 1
    return covered
