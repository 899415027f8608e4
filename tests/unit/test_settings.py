"""Settings (db/settings.py): what repr/str may show, and the addresses that default to this host only."""

from __future__ import annotations

import pytest

from db.settings import Settings, get_settings, url_without_password

KEY = "zq1Y8Gx0N4cWl0pXvQ8m5b3R2k9uT7sA6dE1fH4jK0o="
TOKEN = "hvs.vault-t0ken-4417"
PG_PASSWORD = "pg-pa55word-991"
REDIS_PASSWORD = "redis-pa55word-212"


def test_repr_and_str_show_no_key_token_or_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSC_SECRET_KEY", KEY)
    monkeypatch.setenv("OPSC_VAULT_TOKEN", TOKEN)
    monkeypatch.setenv("OPSC_DATABASE_URL", f"postgresql+psycopg2://opsc:{PG_PASSWORD}@db:5432/opsc")
    monkeypatch.setenv("OPSC_REDIS_URL", f"redis://:{REDIS_PASSWORD}@redis:6379/0")
    get_settings.cache_clear()
    try:
        settings = get_settings()
        for text in (repr(settings), str(settings), f"{settings!r}", repr([settings])):
            for secret in (KEY, TOKEN, PG_PASSWORD, REDIS_PASSWORD):
                assert secret not in text
        assert "postgresql+psycopg2://opsc:**********@db:5432/opsc" in repr(settings)
        # The code that needs them still reads them.
        assert settings.secret_key == KEY and settings.vault_token == TOKEN
        assert PG_PASSWORD in settings.database_url and REDIS_PASSWORD in (settings.redis_url or "")
    finally:
        get_settings.cache_clear()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("sqlite:///./opsconductor.db", "sqlite:///./opsconductor.db"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("postgresql://u:p%40ss@h:5/db?x=1", "postgresql://u:**********@h:5/db?x=1"),
        ("redis://:pw@r:6379/0", "redis://:**********@r:6379/0"),
        ("http://[::1", "**********"),
    ],
)
def test_url_without_password(url: str, shown: str) -> None:
    assert url_without_password(url) == shown


def test_console_and_metrics_bind_this_host_unless_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPSC_CONSOLE_ADDR", raising=False)
    monkeypatch.delenv("OPSC_METRICS_ADDR", raising=False)
    assert (Settings().console_addr, Settings().metrics_addr) == ("127.0.0.1", "127.0.0.1")
    monkeypatch.setenv("OPSC_CONSOLE_ADDR", "0.0.0.0")  # noqa: S104  the configured case
    assert Settings().console_addr == "0.0.0.0"  # noqa: S104
