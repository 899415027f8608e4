"""Process configuration, read once from the environment (prefix ``OPSC_``).

It lives at the bottom layer so that every package may read it; it must not import anything of ours.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///./opsconductor.db"


class Settings(BaseSettings):
    """Every knob of the product; see the README's Configuration section."""

    model_config = SettingsConfigDict(env_prefix="OPSC_", extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = None
    secret_key: str | None = None
    secret_key_file: str | None = None
    idempotency_window_s: int = 24 * 3600
    max_plan_steps: int = 200
    max_plan_bytes: int = 256 * 1024

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def embedded(self) -> bool:
        """True when running on the embedded defaults (SQLite file, in-process broker)."""
        return self.is_sqlite and not self.redis_url


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; tests call ``get_settings.cache_clear()`` after changing the env."""
    return Settings()
