"""Where secret values come from, in order: the built-in store, the environment, HashiCorp Vault.

Every lookup is tenant-scoped:
- **built-in**: Fernet-encrypted rows of the ``secrets`` table (core/safety/secret_store.py);
- **environment**: ``OPSC_SECRET_<TENANT>__<NAME>`` (upper-cased, ``.`` and ``-`` as ``_``). DESIGN §10
  names ``OPSC_SECRET_<NAME>``; the tenant prefix is there so one tenant can never read a value meant
  for another;
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
    """The environment variable that holds ``secret`` for ``tenant``."""

    def norm(text: str) -> str:
        return text.upper().replace(".", "_").replace("-", "_")

    return f"{ENV_PREFIX}{norm(tenant)}__{norm(secret)}"


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
