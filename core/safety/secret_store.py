"""The built-in secret store: values encrypted with Fernet under ``OPSC_SECRET_KEY``, per tenant.

A secret may be limited to named assets of its tenant (DESIGN §13, ``allowed_assets_json``; NULL = any):
submission refuses a step that would use it elsewhere, and the worker checks again before revealing it.

Values go in (``set_secret``) and, later, out only to the worker at step start. No function here returns
a value to a human interface, and no message contains one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import select as select_columns
from sqlmodel import Session, select

from core.errors import InvalidInput, NotFound, SafetyRefused
from core.safety.key_file import create_key_file, key_file_path, tighten
from core.schemas import SecretInfo
from db.clock import utcnow
from db.settings import Settings, get_settings
from db.tables import Asset, Secret

SECRET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$")
MAX_SECRET_BYTES = 64 * 1024


def key_material(settings: Settings | None = None) -> str:
    """The installation's secret key material: ``OPSC_SECRET_KEY``, else (embedded mode) the 0600 key file,
    generated when absent. The secret store encrypts with it; the audit chain derives its keys from it.

    Raises:
        SafetyRefused: no key and not in embedded mode.
    """
    settings = settings or get_settings()
    if settings.secret_key:
        return settings.secret_key
    path = key_file_path(settings)
    if path is None:
        raise SafetyRefused("no_secret_key", "OPSC_SECRET_KEY is required outside the embedded SQLite mode")
    if not path.exists():
        create_key_file(path, Fernet.generate_key())
    tighten(path)
    return path.read_text().strip()


def fernet(settings: Settings | None = None) -> Fernet:
    """The cipher: from ``OPSC_SECRET_KEY``, else (embedded mode) a 0600 key file, generated when absent.

    Raises:
        SafetyRefused: no key and not in embedded mode, or the key is malformed.
    """
    key = key_material(settings)
    try:
        return Fernet(key.encode())
    except ValueError:
        raise SafetyRefused("bad_secret_key", "OPSC_SECRET_KEY is not a valid Fernet key") from None


def set_secret(
    session: Session,
    tenant_id: str,
    name: str,
    value: str,
    *,
    actor_id: str,
    assets: Iterable[str] | None = None,
) -> SecretInfo:
    """Create or rotate a secret (stores ciphertext only).

    ``assets`` limits it to those asset names; None keeps the current limit (a new secret: any asset), so a
    rotation never widens a limit by omission (``limit_secret`` changes it).
    """
    if not SECRET_NAME.match(name):
        raise InvalidInput("letters, digits, '_', '.', '-', starting with a letter or '_'", path="name")
    allowed = _asset_list(session, tenant_id, assets) if assets is not None else None
    if not value:
        raise InvalidInput("the value is empty", path="value")
    if len(value.encode()) > MAX_SECRET_BYTES:
        raise InvalidInput(f"the value is larger than {MAX_SECRET_BYTES} bytes", path="value")
    token = fernet().encrypt(value.encode()).decode()
    row = _row(session, tenant_id, name)
    now = utcnow()
    if row is None:
        row = Secret(tenant_id=tenant_id, name=name, ciphertext=token, updated_by=actor_id)
    else:
        row.ciphertext, row.version, row.updated_at, row.updated_by = token, row.version + 1, now, actor_id
    if allowed is not None:
        row.allowed_assets_json = json.dumps(allowed)
    session.add(row)
    session.flush()
    return _info(row)


def limit_secret(session: Session, tenant_id: str, name: str, assets: Iterable[str] | None) -> SecretInfo:
    """Limit a secret to ``assets`` (names of the tenant's assets), or lift the limit with None.

    Raises:
        NotFound: no such secret. InvalidInput: an empty list, or a name that is no asset of the tenant.
    """
    row = _row(session, tenant_id, name)
    if row is None:
        raise NotFound("secret", name)
    row.allowed_assets_json = json.dumps(_asset_list(session, tenant_id, assets)) if assets is not None else None
    row.updated_at = utcnow()
    session.add(row)
    session.flush()
    return _info(row)


def allowed_assets(session: Session, tenant_id: str, name: str) -> list[str] | None:
    """The asset names a secret of the built-in store is limited to; None = any (or not a stored secret).

    Secrets from the environment or Vault carry no limit: their owner limits them at the source.
    """
    text = session.exec(
        select(Secret.allowed_assets_json).where(Secret.tenant_id == tenant_id, Secret.name == name)
    ).first()
    return json.loads(text) if text is not None else None


def asset_limits(session: Session, tenant_id: str, names: Iterable[str]) -> dict[str, list[str] | None]:
    """For each of ``names`` the built-in store holds: the asset names it is limited to (None: any). One read,
    for a submit that checks many references at once (``usable_on`` one by one)."""
    wanted = sorted(set(names))
    if not wanted:
        return {}
    table = Secret.__table__  # type: ignore[attr-defined]
    rows = session.execute(
        select_columns(table.c.name, table.c.allowed_assets_json).where(
            table.c.tenant_id == tenant_id, table.c.name.in_(wanted)
        )
    ).all()
    return {name: json.loads(text) if text is not None else None for name, text in rows}


def usable_on(session: Session, tenant_id: str, name: str, asset_name: str) -> bool:
    """True if secret ``name`` may be used by a step on asset ``asset_name``."""
    allowed = allowed_assets(session, tenant_id, name)
    return allowed is None or asset_name in allowed


def _asset_list(session: Session, tenant_id: str, assets: Iterable[str]) -> list[str]:
    names = sorted({a.strip() for a in assets if a.strip()})
    if not names:
        raise InvalidInput("name at least one asset (or lift the limit)", path="assets")
    known = set(session.exec(select(Asset.name).where(Asset.tenant_id == tenant_id, Asset.name.in_(names))).all())  # type: ignore[attr-defined]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InvalidInput(f"no such asset in the tenant: {', '.join(unknown)}", path="assets")
    return names


def _info(row: Secret) -> SecretInfo:
    allowed = json.loads(row.allowed_assets_json) if row.allowed_assets_json is not None else None
    return SecretInfo(name=row.name, version=row.version, updated_at=row.updated_at, allowed_assets=allowed)


def list_secrets(session: Session, tenant_id: str) -> list[SecretInfo]:
    """Names, versions and asset limits of the tenant's secrets (never values)."""
    rows = session.exec(select(Secret).where(Secret.tenant_id == tenant_id).order_by(Secret.name)).all()
    return [_info(r) for r in rows]


def secret_names(session: Session, tenant_id: str) -> set[str]:
    """The names of the tenant's secrets."""
    return set(session.exec(select(Secret.name).where(Secret.tenant_id == tenant_id)).all())


def delete_secret(session: Session, tenant_id: str, name: str) -> None:
    """Delete a secret. Raises NotFound."""
    row = _row(session, tenant_id, name)
    if row is None:
        raise NotFound("secret", name)
    session.delete(row)
    session.flush()


def reveal_secret(session: Session, tenant_id: str, name: str) -> str:
    """Decrypt a secret for a worker about to use it. Never call this from a human interface.

    Raises:
        NotFound: no such secret in this tenant. SafetyRefused: the key cannot decrypt it.
    """
    row = _row(session, tenant_id, name)
    if row is None:
        raise NotFound("secret", name)
    try:
        return fernet().decrypt(row.ciphertext.encode()).decode()
    except InvalidToken:
        raise SafetyRefused(
            "secret_undecryptable", f"secret {name!r} cannot be decrypted with the current key"
        ) from None


def _row(session: Session, tenant_id: str, name: str) -> Secret | None:
    return session.exec(select(Secret).where(Secret.tenant_id == tenant_id, Secret.name == name)).first()
