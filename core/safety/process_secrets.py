"""The worker's own credentials, masked in every text of this process, always (DESIGN §13).

The Fernet key (or the embedded key file's content, and the key's raw bytes in other encodings), the
password of every ``*_url`` setting and the Vault token are read lazily from ``get_settings()`` and re-read
when the settings object changes; ``register_process_secrets`` adds more.
"""

from __future__ import annotations

import base64
import os
import threading
import urllib.parse
from collections.abc import Iterable
from pathlib import Path

from core.safety.key_file import key_file_path
from core.safety.secret_forms import MIN_SECRET_LENGTH, encodings, forms_of
from db.settings import Settings, get_settings


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
        values = [*keys, settings.vault_token or "", settings.session_key or ""]
        for name, field in settings:
            if name.endswith("_url") and isinstance(field, str):
                values += _url_passwords(field)
        forms = set().union(*(forms_of(v) for v in values if v), *(_fernet_keyforms_of(k) for k in keys))
        with self._lock:
            self._forms |= {f for f in forms if len(f) >= MIN_SECRET_LENGTH}
            self._settings = settings

    def register(self, value: str) -> None:
        with self._lock:
            self._forms |= forms_of(value)


PROCESS = _ProcessValues()


def _url_passwords(url: str) -> list[str]:
    try:
        password = urllib.parse.urlsplit(url).password
    except ValueError:  # e.g. a malformed port: nothing to read a password from
        return []
    return [password, urllib.parse.unquote(password)] if password else []


def _fernet_keyforms_of(key: str | None) -> set[str]:
    """A Fernet key is 32 bytes in base64url: its raw bytes printed another way are the key too."""
    if not key:
        return set()
    try:
        raw = base64.urlsafe_b64decode(key.encode())
    except ValueError:  # (binascii.Error is one) not a key, just a password
        return set()
    return encodings(raw) if len(raw) == 32 else set()


def register_process_secrets(settings: Settings | None = None, values: Iterable[str] = ()) -> None:
    """Mask the worker's own credentials in this process from now on (also done lazily on first masking).

    Args:
        settings: whose key, key file, URL passwords and Vault token to mask (default ``get_settings()``).
        values: further values the process holds that a step could print.
    """
    PROCESS.register_settings(settings or get_settings())
    for value in values:
        PROCESS.register(value)
