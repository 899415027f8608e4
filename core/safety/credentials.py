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
# "pwd" only after a separator: MYSQL_PWD is a password, PWD and OLDPWD are directories.
SENSITIVE_KEY = re.compile(
    r"(?i)(password|passwd|passphrase)$|(^|[_.-])(secret|token|api[_-]?key|apikey|access[_-]?key|"
    r"private[_-]?key|client[_-]?secret|credentials?|authorization|auth)$|[_.-]pwd$"
)

CREDENTIAL_PATTERNS: dict[str, re.Pattern[str]] = {
    "aws access key": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "private key block": re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----"),
    "bearer token": re.compile(r"(?i)\bbearer\s+[A-Za-z0-9\-._~+/]{16,}=*"),
    "url with user:password": re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]+:[^/\s@\x00]+@"),
    # `password=x`, `DB_PASSWORD=x cmd`, `MYSQL_PWD=x`, and JSON or YAML inside a string: `{"api_token": "x"}`.
    # The key may carry a prefix and quotes; a value that is a reference, a $VARIABLE or a nested object is not
    # a literal.
    "password assignment": re.compile(
        r"(?i)\b(?:[a-z0-9_.-]*(?:password|passwd|passphrase)|(?:[a-z0-9_.-]*[_.-])?(?:secret|token|"
        r"api[_-]?key|apikey|access[_-]?key|private[_-]?key)|(?:[a-z0-9_.-]*[_.-])?pwd)[\"']?\s*[=:]\s*[\"']?"
        r"(?![{\[$\x00])[^\s'\"\x00]{3,}"
    ),
    "password flag": re.compile(r"(?i)--(?:password|passwd|token|secret|api-key)\s+[^\s\-\x00$][^\s\x00]{2,}"),
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


# Anything that starts like a reference: a secret's, or an input's (core/plan_inputs.py substitutes those before a
# plan is validated, so one still here names no declared input).
_ANY_REF = re.compile(r"\{\{\s*(?:secrets?|(inputs?))\s*:[^}]*\}?\}?")


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
        for match in _ANY_REF.finditer(text):
            if match.group(1):
                found.append((where, "input reference, but the plan declares no such input (declare it under inputs:)"))
                break
            if not SECRET_REF.fullmatch(match.group(0).strip()):
                found.append((where, "malformed secret reference; write {{ secret:NAME }} (letters, digits, _ . -)"))
                break
    return found


def find_literal_credentials(value: Any, path: str) -> list[tuple[str, str]]:
    """(path, reason) for each string under ``value`` that looks like a credential literal (one per path)."""
    found: list[tuple[str, str]] = []
    for where, text, key in _strings_with_keys(value, path, None):
        scrubbed = SECRET_REF.sub(_REF_SENTINEL, text)
        # Under a sensitive key, a value must use a reference ("Bearer {{ secret:x }}" is fine, "hunter2" is not).
        if key is not None and SENSITIVE_KEY.search(key) and _REF_SENTINEL not in scrubbed and scrubbed.strip():
            found.append((where, f"{key!r} holds a literal; reference the secret as {{{{ secret:NAME }}}}"))
            continue
        label = next((label for label, pattern in CREDENTIAL_PATTERNS.items() if pattern.search(scrubbed)), None)
        if label is None and " " in scrubbed:  # a command line: its words, as argv would hold them
            label = next((label for _i, label in _argv_credentials(_words(scrubbed))), None)
        if label is not None:
            found.append((where, f"looks like a literal credential ({label}); use {{{{ secret:NAME }}}}"))
    seen = {where for where, _reason in found}
    for where, argv in _string_lists(value, path):
        for i, label in _argv_credentials([SECRET_REF.sub(_REF_SENTINEL, word) for word in argv]):
            if f"{where}[{i}]" not in seen:
                seen.add(f"{where}[{i}]")
                found.append((f"{where}[{i}]", f"looks like a literal credential ({label}); use {{{{ secret:NAME }}}}"))
    return found


# Flags whose next argv element is the credential itself (`--password X`; `--password=X` is an assignment).
_VALUE_FLAGS = frozenset(
    {"--password", "--passwd", "--pass", "--token", "--secret", "--api-key", "--apikey", "--access-key",
     "--secret-key", "--client-secret", "--auth-token", "--passphrase"}
)  # fmt: skip
# Tools whose `-pVALUE` (attached) is a password: mysql's `-p value` prompts, so only the attached form counts.
_ATTACHED_P_TOOLS = frozenset({"mysql", "mysqldump", "mysqladmin", "mysqlimport", "mysqlshow", "mariadb"})
_SEPARATE_P_TOOLS = frozenset({"sshpass"})  # `sshpass -p VALUE`
_USER_PASS_TOOLS = frozenset({"curl"})  # `curl -u user:pass` (without `:pass` curl prompts)
_COMMAND_BREAK = frozenset({";", "|", "||", "&", "&&"})
_WORD = re.compile(r"""(?:[^\s'";|&]+|'[^']*'|"(?:[^"\\]|\\.)*")+|[;|&]+""")


def _argv_credentials(argv: list[str]) -> Iterator[tuple[int, str]]:
    """(index, label) of each argv element that is a literal credential given as a flag's argument."""
    tool = ""
    for i, word in enumerate(argv):
        if word in _COMMAND_BREAK:
            tool = ""
            continue
        name = word.rsplit("/", 1)[-1]
        if name in _ATTACHED_P_TOOLS | _SEPARATE_P_TOOLS | _USER_PASS_TOOLS:
            tool = name
        after = argv[i + 1] if i + 1 < len(argv) else ""
        if word.lower() in _VALUE_FLAGS and _literal(after):
            yield i + 1, "password flag"
        elif tool in _ATTACHED_P_TOOLS and _literal(_attached(word, "-p")):
            yield i, "password flag"
        elif tool in _SEPARATE_P_TOOLS and word == "-p" and _literal(after):
            yield i + 1, "password flag"
        elif tool in _USER_PASS_TOOLS:
            if word in ("-u", "--user") and _user_password(after):
                yield i + 1, "user:password"
            elif _user_password(_attached(word, "-u") or _attached(word, "--user=")):
                yield i, "user:password"


def _attached(word: str, flag: str) -> str:
    """What follows ``flag`` glued to it in ``word`` (`-ubob:pw` → `bob:pw`), or ""."""
    return word[len(flag) :] if word.startswith(flag) and len(word) > len(flag) else ""


def _literal(word: str) -> bool:
    """A flag's argument that is a value typed into the plan: not empty, a reference, a flag or a $VARIABLE."""
    return bool(word) and _REF_SENTINEL not in word and not word.startswith(("-", "$"))


def _user_password(word: str) -> bool:
    _user, colon, password = word.partition(":")
    return bool(colon) and _literal(password)


def _words(text: str) -> list[str]:
    """A command line's words, quotes removed (a cheap shlex.split that never fails on unbalanced quotes)."""
    words = []
    for match in _WORD.finditer(text):
        word = match.group(0)
        words.append(word[1:-1] if len(word) > 1 and word[0] == word[-1] and word[0] in "'\"" else word)
    return words


def _string_lists(value: Any, path: str) -> Iterator[tuple[str, list[str]]]:
    """Every list of strings under ``value`` (an argv), with its path."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _string_lists(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list | tuple):
        if value and all(isinstance(v, str) for v in value):
            yield path, list(value)
        for i, v in enumerate(value):
            yield from _string_lists(v, f"{path}[{i}]")


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
