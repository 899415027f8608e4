"""Where secret values come from, in order: the built-in store, the environment, HashiCorp Vault.

Every lookup is tenant-scoped:
- **built-in**: Fernet-encrypted rows of the ``secrets`` table (core/safety/secret_store.py);
- **environment**: ``OPSC_SECRET_<TENANT>__<NAME>``, both parts encoded so that no two (tenant, name) pairs
  share a variable: ASCII letters and digits stay as they are (case kept), every other byte of the UTF-8
  text becomes ``_`` and two upper-case hex digits (``_`` → ``_5F``, ``.`` → ``_2E``, ``-`` → ``_2D``). An
  encoded part never holds ``__``, so the separator is unambiguous: ``demo``/``db_password`` is
  ``OPSC_SECRET_demo__db_5Fpassword``. (The earlier upper-cased form, where ``.``, ``-`` and ``_`` all became
  ``_``, let tenant ``a_b`` and tenant ``a`` with a secret ``b__x`` read the same variable; it is no
  longer read.) DESIGN §10 names ``OPSC_SECRET_<NAME>``; the tenant part keeps one tenant from ever
  reading a value meant for another;
- **Vault** (when ``OPSC_VAULT_URL`` is set): KV version 2 at ``<mount>/opsconductor/<tenant>/<name>``,
  key ``value``, through hvac.

Values are returned only to the worker resolving a step (core/engine/secrets.py); nothing here logs one.
"""

from __future__ import annotations

import os
from typing import Protocol

from sqlmodel import Session

from core.errors import NotFound, SafetyRefused
from core.safety import secret_store
from db.settings import get_settings

ENV_PREFIX = "OPSC_SECRET_"


class SecretBackend(Protocol):
    """A source of secret values for one tenant."""

    name: str

    def has(self, tenant: str, secret: str) -> bool: ...

    def reveal(self, tenant: str, secret: str) -> str | None: ...


def env_var(tenant: str, secret: str) -> str:
    """The environment variable that holds ``secret`` for ``tenant`` (injective: see the module docstring)."""
    return f"{ENV_PREFIX}{env_part(tenant)}__{env_part(secret)}"


def env_part(text: str) -> str:
    """``text`` as a fragment of a variable name: ASCII letters and digits kept, any other byte as ``_XX``."""
    return "".join(
        chr(byte) if chr(byte).isascii() and chr(byte).isalnum() else f"_{byte:02X}" for byte in text.encode("utf-8")
    )


class EnvironmentBackend:
    name = "environment"

    def has(self, tenant: str, secret: str) -> bool:
        return env_var(tenant, secret) in os.environ

    def reveal(self, tenant: str, secret: str) -> str | None:
        return os.environ.get(env_var(tenant, secret))


class VaultBackend:
    """KV v2 through hvac. Errors other than "not found" are refusals, never silent fallbacks."""

    name = "vault"

    def __init__(self, url: str, token: str | None, mount: str) -> None:
        import hvac

        self._client = hvac.Client(url=url, token=token, timeout=5)
        self._mount = mount

    def _read(self, tenant: str, secret: str) -> str | None:
        import hvac.exceptions

        try:
            answer = self._client.secrets.kv.v2.read_secret_version(
                path=f"opsconductor/{tenant}/{secret}", mount_point=self._mount, raise_on_deleted_version=True
            )
        except hvac.exceptions.InvalidPath:
            return None
        except Exception as exc:  # noqa: BLE001  translated once, here: the message names no value
            raise SafetyRefused(
                "vault_unavailable", f"Vault refused or is unreachable ({type(exc).__name__})"
            ) from None
        value = answer.get("data", {}).get("data", {}).get("value")
        return value if isinstance(value, str) else None

    def has(self, tenant: str, secret: str) -> bool:
        return self._read(tenant, secret) is not None

    def reveal(self, tenant: str, secret: str) -> str | None:
        return self._read(tenant, secret)


def external_backends() -> list[SecretBackend]:
    """The configured backends after the built-in store."""
    settings = get_settings()
    backends: list[SecretBackend] = [EnvironmentBackend()]
    if settings.vault_url:
        backends.append(VaultBackend(settings.vault_url, settings.vault_token, settings.vault_mount))
    return backends


def exists(session: Session, tenant_id: str, tenant: str, secret: str) -> bool:
    """True if any backend holds ``secret`` for the tenant."""
    if secret in secret_store.secret_names(session, tenant_id):
        return True
    return held_outside_store(tenant, secret)


def held_outside_store(tenant: str, secret: str) -> bool:
    """True if a backend after the built-in store (the environment, Vault) holds ``secret`` for the tenant."""
    return any(backend.has(tenant, secret) for backend in external_backends())


def reveal(session: Session, tenant_id: str, tenant: str, secret: str) -> str:
    """The value of ``secret`` for the tenant, from the first backend that has it.

    Raises:
        NotFound: no backend has it. SafetyRefused: a backend failed.
    """
    try:
        return secret_store.reveal_secret(session, tenant_id, secret)
    except NotFound:
        pass
    for backend in external_backends():
        value = backend.reveal(tenant, secret)
        if value is not None:
            return value
    raise NotFound("secret", secret)
