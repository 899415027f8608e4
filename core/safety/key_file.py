"""Where the embedded mode keeps its generated Fernet key: next to the SQLite file, or ``OPSC_SECRET_KEY_FILE``.

Apart from the secret store (core/safety/secret_store.py, which generates and reads the key) because the
masker (core/safety/process_secrets.py) and the step sandbox (core/safety/runner.py) need the place too, and
they run in every process: finding a path must not import the tables or SQLAlchemy (issue 15).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from db.settings import Settings
from db.urls import parse_database_url


def key_file_path(settings: Settings) -> Path | None:
    """Where the embedded mode keeps its generated key: next to the SQLite file (None otherwise)."""
    if settings.secret_key_file:
        return Path(settings.secret_key_file)
    return beside_database(settings, ".secret-key")


def beside_database(settings: Settings, suffix: str) -> Path | None:
    """The SQLite file's path with ``suffix`` instead of its own (a key file beside it), or None: no file."""
    if not settings.is_sqlite:
        return None
    database = parse_database_url(settings.database_url).database
    if not database or database == ":memory:":
        return None
    return Path(database).with_suffix(suffix)


def create_key_file(path: Path, key: bytes) -> None:
    """Write ``key`` to ``path`` atomically, 0600: processes and threads racing to create it all end up reading
    the one that won, never a half-written file (the audit chain of every commit depends on it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Created 0600 (a umask can only narrow it) before the key is written (DESIGN §10, §13), then linked into
    # place: link() fails if the name exists, so the first complete key wins.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key)
        with contextlib.suppress(FileExistsError):  # another process's key won: it is the one
            os.link(tmp, path)
    finally:
        os.unlink(tmp)


def tighten(path: Path) -> None:
    """A key file readable by others (an older version's, or copied in) becomes 0600 if it is ours."""
    info = path.stat()
    if info.st_uid == os.geteuid() and info.st_mode & 0o077:
        path.chmod(0o600)
