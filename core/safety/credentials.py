"""What a credential looks like: the patterns plans are refused for, and the masker will redact.

Plans must reference secrets as ``{{ secret:NAME }}``; a literal that looks like a credential is refused
at submit so it never reaches the database. The messages name the path, never the value.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

SECRET_REF = re.compile(r"\{\{\s*secret:\s*([A-Za-z_][A-Za-z0-9_.-]{0,127})\s*\}\}")

# Key names whose string values must be secret references (DB_PASSWORD, github_token, api-key, ...).
# The long words also count glued to a prefix (PGPASSWORD, MYSQLPASSWORD); the short ones need a separator.
SENSITIVE_KEY = re.compile(
    r"(?i)(password|passwd|passphrase)$|(^|[_.-])(secret|token|api[_-]?key|apikey|access[_-]?key|"
    r"private[_-]?key|client[_-]?secret|credentials?|authorization|auth)$"
)

CREDENTIAL_PATTERNS: dict[str, re.Pattern[str]] = {
    "aws access key": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "private key block": re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----"),
    "bearer token": re.compile(r"(?i)\bbearer\s+[A-Za-z0-9\-._~+/]{16,}=*"),
    "url with user:password": re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]+:[^/\s@\x00]+@"),
    "password assignment": re.compile(
        r"(?i)\b(?:password|passwd|pwd|secret|token|api[_-]?key)\s*[=:]\s*[^\s'\"\x00]{3,}"
    ),
    "password flag": re.compile(r"(?i)--(?:password|passwd|token|secret|api-key)\s+[^\s\-\x00][^\s\x00]{2,}"),
    "github token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b"),
    "slack token": re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
    "jwt": re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
}

# Stands in for a secret reference while scanning, so `password={{ secret:db }}` is not a literal.
_REF_SENTINEL = "\x00ref\x00"


def secret_refs(value: Any) -> set[str]:
    """Every secret name referenced anywhere inside ``value`` (nested dicts, lists, strings)."""
    names: set[str] = set()
    for _path, text in _strings(value, ""):
        names.update(SECRET_REF.findall(text))
    return names


_ANY_REF = re.compile(r"\{\{\s*secrets?\s*:[^}]*\}?\}?")


def substitute_refs(value: Any, replace: Callable[[str], str]) -> Any:
    """A copy of ``value`` (JSON-like) with every ``{{ secret:NAME }}`` in its strings replaced by ``replace(NAME)``."""
    if isinstance(value, str):
        return SECRET_REF.sub(lambda match: replace(match.group(1)), value)
    if isinstance(value, dict):
        return {k: substitute_refs(v, replace) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute_refs(v, replace) for v in value]
    return value


def find_malformed_refs(value: Any, path: str) -> list[tuple[str, str]]:
    """(path, reason) for each string holding something that starts like a secret reference but is not one."""
    found = []
    for where, text in _strings(value, path):
        for candidate in _ANY_REF.findall(text):
            if not SECRET_REF.fullmatch(candidate.strip()):
                found.append((where, "malformed secret reference; write {{ secret:NAME }} (letters, digits, _ . -)"))
                break
    return found


def find_literal_credentials(value: Any, path: str) -> list[tuple[str, str]]:
    """(path, reason) for each string under ``value`` that looks like a credential literal."""
    found: list[tuple[str, str]] = []
    for where, text, key in _strings_with_keys(value, path, None):
        scrubbed = SECRET_REF.sub(_REF_SENTINEL, text)
        # Under a sensitive key, a value must use a reference ("Bearer {{ secret:x }}" is fine, "hunter2" is not).
        if key is not None and SENSITIVE_KEY.search(key) and _REF_SENTINEL not in scrubbed and scrubbed.strip():
            found.append((where, f"{key!r} holds a literal; reference the secret as {{{{ secret:NAME }}}}"))
            continue
        for label, pattern in CREDENTIAL_PATTERNS.items():
            if pattern.search(scrubbed):
                found.append((where, f"looks like a literal credential ({label}); use {{{{ secret:NAME }}}}"))
                break
    return found


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    for where, text, _key in _strings_with_keys(value, path, None):
        yield where, text


def _strings_with_keys(value: Any, path: str, key: str | None) -> Iterator[tuple[str, str, str | None]]:
    if isinstance(value, str):
        yield path, value, key
    elif isinstance(value, int | float) and not isinstance(value, bool):
        # YAML reads `DB_PASSWORD: 123456` as a number: still a literal under a sensitive key.
        yield path, str(value), key
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings_with_keys(v, f"{path}.{k}" if path else str(k), str(k))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from _strings_with_keys(v, f"{path}[{i}]", key)
