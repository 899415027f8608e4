"""Optional client for an external asset service (DESIGN §8), asked about the assets a plan names that the
tenant's own inventory lacks. Unset ``OPSC_ASSET_SERVICE_URL`` = never asked.

Contract: ``GET {base}/tenants/{tenant}/assets/{name}`` → 200 with JSON ``{name, connection, host, port,
base_url, tags, credential_ref, known_host_key}`` (missing fields: none); 404 → no such asset. ``tenant`` is
the submitter's tenant name, so a tenant is only ever told about its own assets.

Why an import, not a live view: a found asset is added to the tenant's local inventory (through
``assets.add_asset`` and its rules) and is an ordinary asset from then on. Locks, fencing tokens, step
rows and the engine all key on a local row, so nothing downstream needs to know where an asset came from,
and plans resolve targets in one place (``assets.assets_by_name``). The service is asked only about
names the inventory lacks; an admin edits or removes an imported asset like any other (the next plan
naming a removed one imports it again). Each import is logged.

The lookup runs before the submission's transaction opens: inside it, an HTTP call would hold SQLite's write
lock (BEGIN IMMEDIATE) for as long as the service takes to answer.

Errors: the service unreachable, timing out or answering 5xx (after retries: GET is safe), or its circuit
open → ``ServiceUnavailable``, and nothing is submitted; an answer that is not an asset the inventory can
hold (bad JSON, unknown connection, missing host …) → ``InvalidInput``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.exc import IntegrityError

from core.actions import circuit
from core.actions.circuit import BREAKER, CircuitOpen
from core.actions.http_call import RETRIES, with_retries
from core.errors import Conflict, InvalidInput, ServiceUnavailable
from core.identity import rbac
from core.identity.permissions import Permission
from core.inventory import assets
from core.schemas import Principal
from core.transactions import session_scope
from db.enums import Connection
from db.settings import get_settings

log = logging.getLogger(__name__)


class RemoteAsset(BaseModel):
    """An asset as the service describes it (fields it adds beyond the contract are ignored)."""

    model_config = ConfigDict(extra="ignore")

    name: str
    connection: Connection
    host: str | None = None
    port: int | None = None
    base_url: str | None = None
    tags: list[str] = Field(default_factory=list)
    credential_ref: str | None = None
    known_host_key: str | None = None


def import_missing(principal: Principal, names: Iterable[str]) -> list[str]:
    """Add to the principal's tenant the assets among ``names`` it lacks and the service knows.

    A no-op, touching neither the database nor the network, when no service is configured. Reading is
    the permission needed: an import only fills in what the service says the tenant already has.

    Returns:
        The names imported (those the service does not know are left for the usual "unknown asset").

    Raises:
        ServiceUnavailable: the service cannot be asked (down, failing, or its circuit open).
        InvalidInput: its answer is not an asset the inventory can hold.
        PermissionDenied: the principal may not read the tenant's inventory.
    """
    if not get_settings().asset_service_url:
        return []
    wanted = {name for name in names if assets.valid_name(name)}  # never send a path like '..'
    if not wanted:
        return []
    with session_scope() as session:
        rbac.require(session, principal, Permission.READ)
        missing = sorted(wanted - assets.assets_by_name(session, principal.tenant_id, wanted).keys())
    imported: list[str] = []
    for name in missing:
        remote = fetch(principal.tenant, name)
        if remote is None:
            continue
        try:
            with session_scope() as session:
                assets.add_asset(
                    session,
                    principal.tenant_id,
                    name=name,
                    connection=remote.connection,
                    host=remote.host,
                    port=remote.port,
                    base_url=remote.base_url,
                    tags=remote.tags,
                    credential_ref=remote.credential_ref,
                    known_host_key=remote.known_host_key,
                )
        except (Conflict, IntegrityError):
            continue  # a concurrent submission imported it first: the row exists, which is all we need
        except InvalidInput as exc:
            raise InvalidInput([(_path(name, path), message) for path, message in exc.issues]) from exc
        log.info("asset %r imported into tenant %s from the asset service", name, principal.tenant)
        imported.append(name)
    return imported


def fetch(tenant: str, name: str) -> RemoteAsset | None:
    """Ask the service about ``tenant``'s asset ``name``; None when it does not know it.

    Raises:
        ServiceUnavailable: no usable answer after retries, or the service's circuit is open.
        InvalidInput: the answer is not an asset (bad JSON, unknown connection type, another name).
    """
    settings = get_settings()
    base = (settings.asset_service_url or "").rstrip("/")
    url = f"{base}/tenants/{quote(tenant, safe='')}/assets/{quote(name, safe='')}"
    host = circuit.target(tenant, base)
    unresolved = f"asset {name!r} cannot be resolved and nothing was submitted; try again later"
    try:
        BREAKER.before(host)
    except CircuitOpen as exc:
        raise ServiceUnavailable(f"asset service at {base} unavailable ({exc}): {unresolved}") from exc

    def once() -> tuple[httpx.Response | httpx.HTTPError, bool]:
        try:
            response = httpx.get(url, timeout=settings.asset_service_timeout_s, follow_redirects=False)
        except httpx.HTTPError as exc:
            return exc, True
        return response, response.is_server_error

    outcome = with_retries(once, attempts=RETRIES + 1, wait=_pause)
    assert outcome is not None  # _pause never asks to stop
    if isinstance(outcome, httpx.HTTPError) or outcome.is_server_error:
        BREAKER.failure(host)
        why = f"{type(outcome).__name__}: {outcome}" if isinstance(outcome, httpx.HTTPError) else _status(outcome)
        raise ServiceUnavailable(f"asset service at {base} failed ({why}): {unresolved}")
    BREAKER.success(host)
    if outcome.status_code == 404:
        return None
    if not outcome.is_success:  # 401, 403, …: the service is up but will not tell us; an operator must look
        raise ServiceUnavailable(f"asset service at {base} refused the lookup ({_status(outcome)}): {unresolved}")
    try:
        remote = RemoteAsset.model_validate_json(outcome.content)
    except ValidationError as exc:
        raise InvalidInput(
            [(_path(name, ".".join(str(p) for p in e["loc"])), f"asset service: {e['msg']}") for e in exc.errors()]
        ) from exc
    if remote.name != name:
        raise InvalidInput(f"asset service answered with asset {remote.name!r}", path=_path(name, "name"))
    return remote


def _pause(seconds: float) -> bool:
    """The pause between retries: a submission has no stop signal, so it never asks to stop."""
    time.sleep(seconds)
    return False


def _status(response: httpx.Response) -> str:
    return f"HTTP {response.status_code} {response.text.strip()[:200] or response.reason_phrase}"


def _path(name: str, field: str) -> str:
    """Where an issue is: the asset the service described, and the field of its answer."""
    return f"asset_service[{name}].{field}" if field else f"asset_service[{name}]"
