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

import base64
import json
import logging
import os
import threading
import urllib.parse
from collections import Counter
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any

from core import metrics
from core.safety.credentials import CREDENTIAL_PATTERNS, SENSITIVE_KEY
from core.safety.secret_store import key_file_path
from db.settings import Settings, get_settings

MASK = "***"
MIN_SECRET_LENGTH = 4  # shorter values would mask ordinary words everywhere
# How much of the end of a text cut short may hold the start of a credential pattern whose rest was cut off.
PATTERN_MARGIN = 1024
# How the usual tools wrap their output: base64 and base32 at 76 columns, openssl base64 at 64, xxd -p at 60.
_WRAP_WIDTHS = {"b64": (76, 64), "b32": (76,), "hex": (60,)}


def _encoded(data: bytes) -> dict[str, str]:
    return {
        "b64": base64.b64encode(data).decode(),
        "b64url": base64.urlsafe_b64encode(data).decode(),
        "b32": base64.b32encode(data).decode(),  # pure Python in 3.11: computed once per form of the value
        "hex": data.hex(),
    }


def _variants(encoded: dict[str, str]) -> set[str]:
    b64, b64url, b32, hexa = encoded["b64"], encoded["b64url"], encoded["b32"], encoded["hex"]
    return {b64, b64.rstrip("="), b64url, b64url.rstrip("="), b32, b32.rstrip("="), hexa, hexa.upper()}


def _encodings(data: bytes) -> set[str]:
    return _variants(_encoded(data))


def _escapes(value: str) -> set[str]:
    return {
        value,
        urllib.parse.quote(value),
        urllib.parse.quote(value, safe=""),
        urllib.parse.quote_plus(value),
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
    }


def _forms(value: str) -> frozenset[str]:
    """Every form of ``value`` that is masked (see the module docstring); computed once per registration."""
    encoded = _encoded(value.encode())
    forward = _escapes(value) | _variants(encoded)
    forms = forward | {form[::-1] for form in forward} | _escapes(value[::-1]) | _encodings(value[::-1].encode())
    with_newline = _encoded(f"{value}\n".encode())  # `echo "$V" | base64` encodes the newline too
    forms |= _variants(with_newline)
    for codes in (encoded, with_newline):
        for name, widths in _WRAP_WIDTHS.items():
            text = codes[name]
            for width in widths:
                if len(text) > width:
                    forms.update(text[i : i + width] for i in range(0, len(text), width))
    if "\n" in value or "\r" in value:
        for line in value.splitlines():
            line = line.strip()
            forms |= {line, line[::-1]}
    return frozenset(form for form in forms if len(form) >= MIN_SECRET_LENGTH)


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    spans.sort()
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and start < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _replace(text: str, spans: list[tuple[int, int]], end: int) -> tuple[str, int]:
    """``text`` with ``spans`` (sorted, disjoint) replaced by ``***``, and where its position ``end`` lands in
    the result (after the ``***`` of a span that crosses it)."""
    out: list[str] = []
    position = length = 0
    landed: int | None = None
    for start, stop in spans:
        if landed is None and start >= end:
            landed = length + end - position
        out += (text[position:start], MASK)
        length += start - position + len(MASK)
        position = stop
        if landed is None and stop >= end:
            landed = length
    out.append(text[position:])
    return "".join(out), landed if landed is not None else length + max(0, end - position)


def _redact(text: str, forms: Collection[str], keep: int | None = None) -> tuple[str, int]:
    """``text`` masked, and how much of the result may be shown.

    Values first, found on the raw text; then credential patterns, on the text with values masked (so
    ``Bearer <value>`` reads ``Bearer ***``). With ``keep``, only what stands for ``text[:keep]`` may be
    shown (a match crossing it is shown as its ``***``): the caller knows the rest may be the incomplete start
    of something that continues past the end of ``text``, and the patterns still see all of ``text``.
    """
    found: list[tuple[int, int]] = []
    for form in forms:  # str.find per form beats a regex union of literals by far (C two-way search)
        start = text.find(form)
        while start != -1:
            found.append((start, start + len(form)))
            start = text.find(form, start + 1)
    end = len(text) if keep is None else max(0, keep)
    if found:
        values = _merged(found)
        metrics.MASKED_SECRETS.labels("secret").inc(len(values))
        text, end = _replace(text, values, end)
    patterns = [match.span() for pattern in CREDENTIAL_PATTERNS.values() for match in pattern.finditer(text)]
    if patterns:
        metrics.MASKED_SECRETS.labels("pattern").inc(len(patterns))
        text, end = _replace(text, _merged(patterns), end)
    return text, min(end, len(text))


def _longest(forms: Iterable[str]) -> int:
    return max((len(form) for form in forms), default=0)


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


class _ProcessValues:
    """The worker's own credentials: masked in every text of this process, always (DESIGN §13)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._forms: frozenset[str] = frozenset()
        self._settings: Settings | None = None
        self._key_file: Path | None = None  # the embedded key file, not yet generated when last looked

    def forms(self) -> frozenset[str]:
        """The forms of every process secret, after (re)reading the settings if they changed."""
        try:
            settings = get_settings()
        except ValueError:  # a malformed environment must not stop a log line; what was read stays masked
            return self._forms
        if settings is not self._settings or self._key_file_appeared():
            self.register_settings(settings)
        return self._forms

    def _key_file_appeared(self) -> bool:
        # A stat per masking, but only in embedded mode before the key exists; not throttled, since a step
        # started right after the key is generated could print it at once.
        return self._key_file is not None and os.path.exists(self._key_file)

    def register_settings(self, settings: Settings) -> None:
        keys = [settings.secret_key or ""]
        key_file = key_file_path(settings)
        self._key_file = None
        if key_file is not None:
            try:
                keys.append(key_file.read_text().strip())
            except FileNotFoundError:
                if not settings.secret_key:  # fernet() generates it on first use of the store: look again
                    self._key_file = key_file
            except OSError:
                pass  # unreadable here, so unreadable to a step of this process too
        values = [*keys, settings.vault_token or ""]
        for name, field in settings:
            if name.endswith("_url") and isinstance(field, str):
                values += _url_passwords(field)
        forms = set().union(*(_forms(v) for v in values if v), *(_fernet_key_forms(k) for k in keys))
        with self._lock:
            self._forms |= {f for f in forms if len(f) >= MIN_SECRET_LENGTH}
            self._settings = settings

    def register(self, value: str) -> None:
        with self._lock:
            self._forms |= _forms(value)


PROCESS = _ProcessValues()


def _url_passwords(url: str) -> list[str]:
    try:
        password = urllib.parse.urlsplit(url).password
    except ValueError:  # e.g. a malformed port: nothing to read a password from
        return []
    return [password, urllib.parse.unquote(password)] if password else []


def _fernet_key_forms(key: str | None) -> set[str]:
    """A Fernet key is 32 bytes in base64url: its raw bytes printed another way are the key too."""
    if not key:
        return set()
    try:
        raw = base64.urlsafe_b64decode(key.encode())
    except ValueError:  # (binascii.Error is one) not a key, just a password
        return set()
    return _encodings(raw) if len(raw) == 32 else set()


def register_process_secrets(settings: Settings | None = None, values: Iterable[str] = ()) -> None:
    """Mask the worker's own credentials in this process from now on (also done lazily on first masking).

    Args:
        settings: whose key, key file, URL passwords and Vault token to mask (default ``get_settings()``).
        values: further values the process holds that a step could print.
    """
    PROCESS.register_settings(settings or get_settings())
    for value in values:
        PROCESS.register(value)


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
        forms = _forms(value)
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
        return _redact(text, self._matcher()[0])[0]

    def mask_head(self, text: str) -> tuple[str, int]:
        """Mask ``text``, the start of a longer output whose rest is dropped unseen.

        Its last ``margin`` characters could begin a value that continues past the cut, where it is not
        recognisable: they are left out (except as part of a match, which is masked whole).

        Returns:
            the masked head, and how many bytes of masked text were left out after it.
        """
        forms, longest = self._matcher()
        masked, shown = _redact(text, forms, keep=len(text) - max(longest, PATTERN_MARGIN))
        return masked[:shown], len(masked[shown:].encode(errors="replace"))

    def _matcher(self) -> tuple[tuple[str, ...], int]:
        """The forms to look for (own and process) and the longest, rebuilt only when either set changed."""
        process, own, cache = PROCESS.forms(), self._forms, self._cache
        if cache is None or cache[0] is not own or cache[1] is not process:
            forms = tuple(own | process)
            cache = self._cache = (own, process, forms, _longest(forms))
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
    return _redact(text, cache[2])[0]


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
