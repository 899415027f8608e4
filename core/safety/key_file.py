"""Where the embedded mode keeps its generated Fernet key: next to the SQLite file, or ``OPSC_SECRET_KEY_FILE``.

Apart from the secret store (core/safety/secret_store.py, which generates and reads the key) because the
masker (core/safety/process_secrets.py) and the step sandbox (core/safety/runner.py) need the place too, and
they run in every process: finding a path must not import the tables or SQLAlchemy (issue 15).
"""

from __future__ import annotations

from pathlib import Path

from db.settings import Settings
from db.urls import parse_database_url


def key_file_path(settings: Settings) -> Path | None:
    """Where the embedded mode keeps its generated key: next to the SQLite file (None otherwise)."""
    if settings.secret_key_file:
        return Path(settings.secret_key_file)
    if not settings.is_sqlite:
        return None
    database = parse_database_url(settings.database_url).database
    if not database or database == ":memory:":
        return None
    return Path(database).with_suffix(".secret-key")
