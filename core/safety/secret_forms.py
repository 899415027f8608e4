"""The forms a secret value takes when a step prints it, and redacting them from a text (DESIGN §13).

``forms_of(value)`` lists what ``core.safety.masking`` looks for: the value as is; base64 and base64url (with
and without padding); hex (lower, upper); base32 (with and without padding); URL-encoded (``quote`` and
``quote_plus``); JSON-escaped; each of those reversed; the same forms of the reversed value; the encodings of
the value followed by the newline ``echo`` and ``printenv`` add; base64, base32 and hex wrapped the way
``base64``/``base32`` (76), ``openssl base64`` (64) and ``xxd -p`` (60) wrap them; and, for a multi-line
value, each line (stripped, if at least ``MIN_SECRET_LENGTH`` long) and its reverse. ``redact`` replaces the
union of every occurrence of every form, then credential-shaped text (``CREDENTIAL_PATTERNS``).

Limits are stated in core/safety/masking.py. Pure functions: no state, no settings.
"""

from __future__ import annotations

import base64
import json
import urllib.parse
from collections.abc import Collection, Iterable

from core.safety.credentials import CREDENTIAL_PATTERNS

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


def encodings(data: bytes) -> set[str]:
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


def forms_of(value: str) -> frozenset[str]:
    """Every form of ``value`` that is masked (see the module docstring); computed once per registration."""
    encoded = _encoded(value.encode())
    forward = _escapes(value) | _variants(encoded)
    forms = forward | {form[::-1] for form in forward} | _escapes(value[::-1]) | encodings(value[::-1].encode())
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


def redact(text: str, forms: Collection[str], keep: int | None = None) -> tuple[str, int]:
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
        _count("secret", len(values))
        text, end = _replace(text, values, end)
    patterns = [match.span() for pattern in CREDENTIAL_PATTERNS.values() for match in pattern.finditer(text)]
    if patterns:
        _count("pattern", len(patterns))
        text, end = _replace(text, _merged(patterns), end)
    return text, min(end, len(text))


def longest(forms: Iterable[str]) -> int:
    return max((len(form) for form in forms), default=0)


def _count(kind: str, replacements: int) -> None:
    # Imported on the first replacement, not with this module: the masker is installed by every CLI command,
    # and prometheus_client (its HTTP exposition included) costs a one-shot ``show`` a tenth of its CPU
    # (issue 15). A process that serves metrics has imported them long before (the engine, jobs/).
    from core import metrics

    metrics.MASKED_SECRETS.labels(kind).inc(replacements)
