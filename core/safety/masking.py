"""Masking: every text that is persisted or logged passes a masker first (DESIGN §3.8, §13).

- A ``Masker`` is made per step; the worker registers every secret value it resolves. While the step runs,
  its values are also *live* in the process, so the logging filter can redact them from any log line.
- The worker's own credentials (the Fernet key or its key file, the passwords in the ``*_url`` settings, the
  Vault token) are *process secrets*: read lazily from ``get_settings()`` and masked by every ``Masker``,
  ``mask_text`` and the log filter, always (``register_process_secrets`` adds more).
- A value is masked in the forms a step can cheaply print it in (``_forms``): as is; base64 and base64url
  (with and without padding); hex (lower, upper); base32 (with and without padding); URL-encoded (``quote``
  and ``quote_plus``); JSON-escaped; each of those reversed; the same forms of the reversed value; the
  encodings of the value followed by the newline ``echo`` and ``printenv`` add; base64, base32 and hex wrapped
  the way ``base64``/``base32`` (76), ``openssl base64`` (64) and ``xxd -p`` (60) wrap them; and, for a
  multi-line value, each line (stripped, if at least ``MIN_SECRET_LENGTH`` long) and its reverse, so a
  partial print (``head -3 key.pem``, ``rev``, ``tac``) is caught too.
- Every occurrence of every form is found on the raw text and the *union* of what they cover is replaced
  (overlapping occurrences leave no fragment); then credential-shaped text (``CREDENTIAL_PATTERNS``) is
  replaced the same way. Structured data also has the values of sensitive keys (``SENSITIVE_KEY``) replaced.
- ``install_log_masking`` puts ``MaskingFilter`` on every logging handler: the filter masks the
  *formatted* message (so ``log.info("password=%s", pw)`` is caught) and the exception text.

Limits (what this does not catch): a value embedded in a larger text that is then encoded as a whole; for
base64/base32 the encoding of the value depends on its offset (mod 3 or 5) and its edge characters on its
neighbours, so ``(echo x; printenv K) | base64`` is not detectable in general, and we do not try. Likewise
compositions beyond one step (``rev | base64``, but not ``base64 | rev | base64``), other dump formats
(``od``, ``xxd`` without ``-p``, ``hexdump -C``), other wrap widths, and a secret printed a few characters
at a time. Masking is a safety net for honest mistakes and casual reads, not a sandbox: DESIGN §13 keeps
steps away from values they are not given.

Must not import anything above ``core.safety`` (it is used by the engine, audit and the logs).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Collection
from typing import Any

from core.safety.credentials import SENSITIVE_KEY
from core.safety.process_secrets import PROCESS
from core.safety.secret_forms import MASK, PATTERN_MARGIN, forms_of, longest, redact


class _LiveValues:
    """The secret forms in use by running steps of this process, reference-counted."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._forms: frozenset[str] = frozenset()

    def add(self, forms: Collection[str]) -> None:
        with self._lock:
            self._counts.update(forms)
            self._forms = frozenset(self._counts)

    def remove(self, forms: Collection[str]) -> None:
        with self._lock:
            self._counts.subtract(forms)
            for form in [f for f, n in self._counts.items() if n <= 0]:
                del self._counts[form]
            self._forms = frozenset(self._counts)

    def forms(self) -> frozenset[str]:
        """The live forms (a new object after every change, so callers can cache on identity)."""
        return self._forms

    def snapshot(self) -> list[str]:
        with self._lock:
            return sorted(self._counts, key=len, reverse=True)


LIVE = _LiveValues()


class Masker:
    """Redacts one step's secret values, the process secrets and credential patterns. Thread-safe; ``close()``
    when done."""

    def __init__(self) -> None:
        self._forms: frozenset[str] = frozenset()
        self._values: set[str] = set()
        self._lock = threading.Lock()
        self._cache: tuple[frozenset[str], frozenset[str], tuple[str, ...], int] | None = None

    def register(self, value: str) -> None:
        """Mask ``value`` and its encodings from now on, here and (until ``close``) in every log line."""
        with self._lock:
            if value in self._values:
                return
            self._values.add(value)
        forms = forms_of(value)
        with self._lock:
            forms -= self._forms
            self._forms |= forms
        if forms:
            LIVE.add(forms)

    def close(self) -> None:
        """The step is over: its values stop being live for the log filter."""
        with self._lock:
            forms, self._forms, self._values = self._forms, frozenset(), set()
        LIVE.remove(forms)

    @property
    def count(self) -> int:
        """How many distinct forms are registered (the process secrets not counted)."""
        return len(self._forms)

    @property
    def margin(self) -> int:
        """How many characters at the end of a text cut short may be the start of a secret (``mask_head``)."""
        return max(self._matcher()[1], PATTERN_MARGIN)

    def mask(self, text: str | None) -> str | None:
        """``text`` with every registered value, process secret and credential pattern replaced by ``***``."""
        if not text:
            return text
        return redact(text, self._matcher()[0])[0]

    def mask_head(self, text: str) -> tuple[str, int]:
        """Mask ``text``, the start of a longer output whose rest is dropped unseen.

        Its last ``margin`` characters could begin a value that continues past the cut, where it is not
        recognisable: they are left out (except as part of a match, which is masked whole).

        Returns:
            the masked head, and how many bytes of masked text were left out after it.
        """
        forms, longest = self._matcher()
        masked, shown = redact(text, forms, keep=len(text) - max(longest, PATTERN_MARGIN))
        return masked[:shown], len(masked[shown:].encode(errors="replace"))

    def mask_until(self, text: str, keep: int) -> str:
        """Mask ``text`` whole and return what stands for ``text[:keep]`` (a match crossing ``keep`` as its
        ``***``): the shown part of a text whose rest may still change (a live view, ``OutputSink.view``)."""
        masked, shown = redact(text, self._matcher()[0], keep=keep)
        return masked[:shown]

    def _matcher(self) -> tuple[tuple[str, ...], int]:
        """The forms to look for (own and process) and the longest, rebuilt only when either set changed."""
        process, own, cache = PROCESS.forms(), self._forms, self._cache
        if cache is None or cache[0] is not own or cache[1] is not process:
            forms = tuple(own | process)
            cache = self._cache = (own, process, forms, longest(forms))
        return cache[2], cache[3]


_TEXT_CACHE: tuple[frozenset[str], frozenset[str], tuple[str, ...]] | None = None


def mask_text(text: str) -> str:
    """``text`` with the live secret values, the process secrets and credential patterns redacted."""
    global _TEXT_CACHE
    if not text:
        return text
    live, process, cache = LIVE.forms(), PROCESS.forms(), _TEXT_CACHE
    if cache is None or cache[0] is not live or cache[1] is not process:
        cache = _TEXT_CACHE = (live, process, tuple(live | process))
    return redact(text, cache[2])[0]


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
