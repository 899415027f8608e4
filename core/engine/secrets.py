"""Just-in-time secrets for one step (DESIGN §3.8): fill ``{{ secret:NAME }}`` references in its params and
fetch its asset's ``credential_ref``, in the worker, at step start.

Values stay in memory: each is registered with the step's masker at once, and the reads are audited
by name only (a ``secrets_read`` event). Nothing here persists or logs a value.

A secret limited to assets (DESIGN §13) is checked against the step's target again here, just before it is
revealed: submission checked it too, but an admin may have narrowed the list since.
"""

from __future__ import annotations

import copy
from typing import Any

from sqlmodel import Session

from core.audit import record_event
from core.errors import CoreError, SafetyRefused
from core.plan_hash import canonical_json
from core.safety import secret_backends, secret_store
from core.safety.credentials import SECRET_REF, substitute_refs
from core.safety.masking import Masker
from db.tables import Asset, ExecutionStep, Tenant


def resolve_params(
    session: Session, tenant_id: str, step: ExecutionStep, params: dict[str, Any], asset: Asset, masker: Masker
) -> tuple[dict[str, Any], str | None]:
    """``params`` (the verified plan's, for ``step`` on ``asset``) with every reference filled, or
    ``({}, reason)`` if one cannot be resolved. ``params`` is not changed."""
    names = sorted(set(SECRET_REF.findall(canonical_json(params))))
    if not names:
        return copy.deepcopy(params), None
    tenant = _tenant_name(session, tenant_id)
    target = asset.name
    try:
        filled = substitute_refs(params, lambda name: _reveal(session, tenant_id, tenant, name, masker, target))
    except CoreError as exc:
        return {}, f"secret resolution failed: {exc}"
    _audit(session, tenant_id, step, names, f"resolved {', '.join(names)}")
    return filled, None


def resolve_credential(
    session: Session, tenant_id: str, step: ExecutionStep, asset: Asset, masker: Masker
) -> tuple[str | None, str | None]:
    """The asset's ``credential_ref`` value, or ``(None, reason)`` if it cannot be resolved."""
    ref = asset.credential_ref or ""
    try:
        value = _reveal(session, tenant_id, _tenant_name(session, tenant_id), ref, masker, asset.name)
    except CoreError as exc:
        return None, f"credential of {asset.name} unavailable: {exc}"
    _audit(session, tenant_id, step, [ref], f"resolved the credential of {asset.name} ({ref})")
    return value, None


def _reveal(session: Session, tenant_id: str, tenant: str, name: str, masker: Masker, asset_name: str) -> str:
    if not secret_store.usable_on(session, tenant_id, name, asset_name):
        raise SafetyRefused("secret_not_for_asset", f"secret {name!r} may not be used on {asset_name}")
    value = secret_backends.reveal(session, tenant_id, tenant, name)
    masker.register(value)
    return value


def _tenant_name(session: Session, tenant_id: str) -> str:
    tenant = session.get(Tenant, tenant_id)
    return tenant.name if tenant is not None else ""


def _audit(session: Session, tenant_id: str, step: ExecutionStep, names: list[str], message: str) -> None:
    record_event(
        session,
        execution_id=step.execution_id,
        tenant_id=tenant_id,
        kind="secrets_read",
        actor="worker",
        step_index=step.step_index,
        message=message,
        data={"names": names},
    )
