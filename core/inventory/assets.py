"""Assets: each tenant's inventory of targets (DESIGN §8)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from core.errors import Conflict, InvalidInput, NotFound
from core.inventory.asset_view import asset_view
from core.schemas import AssetView
from db.enums import Connection
from db.tables import Asset, ExecutionStep

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def add_asset(
    session: Session,
    tenant_id: str,
    *,
    name: str,
    connection: Connection,
    host: str | None = None,
    port: int | None = None,
    base_url: str | None = None,
    tags: Iterable[str] = (),
    credential_ref: str | None = None,
    known_host_key: str | None = None,
    skip_host_key: bool = False,
) -> AssetView:
    """Add an asset to the tenant's inventory.

    Raises:
        InvalidInput: bad name, or a connection without what it needs (ssh: host; http: base_url).
        Conflict: the name is taken in this tenant.
    """
    issues: list[tuple[str, str]] = []
    if not valid_name(name):
        issues.append(("name", "1-128 letters, digits, '_', '.', '-'"))
    if connection is Connection.SSH and not host:
        issues.append(("host", "required for ssh assets"))
    if skip_host_key and connection is not Connection.SSH:
        issues.append(("skip_host_key", "only ssh assets have a host key"))
    if connection is Connection.HTTP and not base_url:
        issues.append(("base_url", "required for http assets"))
    if base_url and not base_url.startswith(("http://", "https://")):
        issues.append(("base_url", "must start with http:// or https://"))
    if port is not None and not 0 < port < 65536:
        issues.append(("port", "must be between 1 and 65535"))
    if issues:
        raise InvalidInput(issues)
    if session.exec(select(Asset.id).where(Asset.tenant_id == tenant_id, Asset.name == name)).first():
        raise Conflict(f"asset {name!r} already exists")
    asset = Asset(
        tenant_id=tenant_id,
        name=name,
        connection=connection.value,
        host=host,
        port=port,
        base_url=base_url,
        tags_json=json.dumps(sorted(set(tags))),
        credential_ref=credential_ref,
        known_host_key=known_host_key,
        skip_host_key=skip_host_key,
    )
    session.add(asset)
    session.flush()
    return asset_view(asset)


def valid_name(name: str) -> bool:
    """Whether ``name`` can name an asset: 1-128 letters, digits, '_', '.', '-', starting with a letter or digit."""
    return bool(_NAME.match(name))


def list_assets(session: Session, tenant_id: str) -> list[AssetView]:
    """The tenant's assets by name."""
    rows = session.exec(select(Asset).where(Asset.tenant_id == tenant_id).order_by(Asset.name)).all()
    return [asset_view(a) for a in rows]


def assets_by_name(session: Session, tenant_id: str, names: Iterable[str]) -> dict[str, Asset]:
    """The tenant's assets among ``names``; missing names are simply absent from the result."""
    wanted = sorted(set(names))
    if not wanted:
        return {}
    rows = session.exec(select(Asset).where(Asset.tenant_id == tenant_id, Asset.name.in_(wanted))).all()  # type: ignore[attr-defined]
    return {a.name: a for a in rows}


def remove_asset(session: Session, tenant_id: str, name: str) -> None:
    """Remove an asset that no execution refers to.

    Raises:
        NotFound: no such asset. Conflict: executions refer to it (their history must stay readable).
    """
    asset = session.exec(select(Asset).where(Asset.tenant_id == tenant_id, Asset.name == name)).first()
    if asset is None:
        raise NotFound("asset", name)
    used = session.exec(select(ExecutionStep.id).where(ExecutionStep.target_asset_id == asset.id).limit(1)).first()
    if used is not None:
        raise Conflict(f"asset {name!r} is the target of recorded executions and cannot be removed")
    session.delete(asset)
    try:
        session.flush()
    except IntegrityError as exc:
        raise Conflict(f"asset {name!r} is in use") from exc
