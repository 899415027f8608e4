"""The console's session key: what signs the tokens of console sessions (core/identity/console_sessions.py).

Its own key, never the secret store's (``OPSC_SECRET_KEY``, which every worker holds to resolve secrets), so a
worker or its host cannot mint a console session. Where it comes from, first found wins:

1. ``OPSC_SESSION_KEY`` (at least 32 characters): set the same value on every console replica;
2. a 0600 key file: ``OPSC_SESSION_KEY_FILE``, or in embedded mode next to the SQLite file
   (``<db>.session-key``, in the directory a step sandbox hides), generated when absent;
3. a key drawn at random per console process (PostgreSQL without 1 or 2): sessions then survive reload and a
   second tab, but not a restart of the console (the operator signs in again).

Must not import the tables (it runs before any session is read).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
from pathlib import Path

from core.errors import SafetyRefused
from core.safety.key_file import beside_database, create_key_file, tighten
from db.settings import Settings, get_settings

MIN_KEY_CHARS = 32
_LOG = logging.getLogger(__name__)
_lock = threading.Lock()
_process_key = secrets.token_bytes(32)
_cached: tuple[Settings, bytes] | None = None
_warned = False


def session_key_path(settings: Settings) -> Path | None:
    """Where the session key file is (``OPSC_SESSION_KEY_FILE``, else next to the SQLite file), or None."""
    if settings.session_key_file:
        return Path(settings.session_key_file)
    return beside_database(settings, ".session-key")


def session_key() -> bytes:
    """The key that signs console session tokens (32 bytes), read once per settings object.

    Raises:
        SafetyRefused: ``OPSC_SESSION_KEY`` is shorter than 32 characters (a guessable key signs nothing).
    """
    global _cached, _warned
    settings = get_settings()
    cached = _cached
    if cached is not None and cached[0] is settings:
        return cached[1]
    if settings.session_key is not None:
        if len(settings.session_key) < MIN_KEY_CHARS:
            raise SafetyRefused("weak_session_key", f"OPSC_SESSION_KEY must be at least {MIN_KEY_CHARS} characters")
        key = hashlib.sha256(b"opsconductor/console-session/v1\x00" + settings.session_key.encode()).digest()
    elif (path := session_key_path(settings)) is not None:
        if not path.exists():
            create_key_file(path, secrets.token_urlsafe(48).encode())
        tighten(path)
        key = hashlib.sha256(b"opsconductor/console-session/v1\x00" + path.read_bytes().strip()).digest()
    else:
        if not _warned:
            _LOG.warning(
                "no OPSC_SESSION_KEY or OPSC_SESSION_KEY_FILE: console sessions last until this process restarts"
            )
            _warned = True
        key = _process_key
    with _lock:
        _cached = (settings, key)
    return key
