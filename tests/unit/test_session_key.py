"""The console's session key (core/identity/session_key.py): its own, never the secret store's; a weak one is
refused; the embedded file is 0600 and stable; the value is masked like the worker's other credentials."""

from __future__ import annotations

import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.errors import SafetyRefused
from core.identity.session_key import session_key, session_key_path
from core.safety.masking import MASK, mask_text
from core.safety.process_secrets import register_process_secrets
from db.settings import Settings, get_settings


@pytest.fixture
def embedded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Settings of an embedded installation on a SQLite file in ``tmp_path`` (no session key configured)."""
    for name in ("OPSC_SESSION_KEY", "OPSC_SESSION_KEY_FILE", "OPSC_SECRET_KEY", "OPSC_SECRET_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPSC_DATABASE_URL", f"sqlite:///{tmp_path / 'opsc.db'}")
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def test_the_embedded_key_is_a_0600_file_beside_the_database_and_stable(embedded: Path) -> None:
    key = session_key()
    path = embedded / "opsc.session-key"
    assert session_key_path(get_settings()) == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    get_settings.cache_clear()
    assert session_key() == key  # read back, not drawn again
    assert len(key) == 32


def test_the_session_key_is_not_the_secret_stores(embedded: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = session_key()
    monkeypatch.setenv("OPSC_SECRET_KEY", "x" * 44)
    get_settings.cache_clear()
    assert session_key() == before  # the secret store's key plays no part
    monkeypatch.setenv("OPSC_SESSION_KEY", "s" * 40)
    get_settings.cache_clear()
    configured = session_key()
    assert configured not in (before, b"s" * 40)


def test_a_short_session_key_is_refused(embedded: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSC_SESSION_KEY", "too-short")
    get_settings.cache_clear()
    with pytest.raises(SafetyRefused, match="at least 32"):
        session_key()


def test_postgresql_without_a_key_draws_one_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPSC_SESSION_KEY", raising=False)
    monkeypatch.delenv("OPSC_SESSION_KEY_FILE", raising=False)
    monkeypatch.setenv("OPSC_DATABASE_URL", "postgresql+psycopg2://u@127.0.0.1:1/x")
    get_settings.cache_clear()
    try:
        assert session_key_path(get_settings()) is None
        assert session_key() == session_key() and len(session_key()) == 32
    finally:
        get_settings.cache_clear()


def test_the_session_key_is_masked_and_hidden_from_repr() -> None:
    value = secrets.token_urlsafe(33)
    settings = Settings(session_key=value)
    assert value not in repr(settings) and value not in str(settings)
    register_process_secrets(settings)
    assert mask_text(f"key={value}") == f"key={MASK}"
