"""Tenants, their execution mode (the dark-launch switch) and what it decides for a new execution, and the cap
on the priority their plans may request."""

from __future__ import annotations

from sqlmodel import Session, select

from core.errors import Conflict, InvalidInput, NotFound, SafetyRefused
from core.plan_fanout import MAX_TARGETS
from core.priority import MAX_REQUESTED
from core.schemas import TenantSettingsView
from db.clock import utcnow
from db.enums import OverLevelBehaviour, RunMode, TenantMode
from db.tables import Tenant, TenantSettings


def create_tenant(
    session: Session, name: str, *, mode: TenantMode = TenantMode.DRY_RUN, max_live_level: int = 0
) -> Tenant:
    """Create a tenant (new tenants start in ``dry_run`` unless told otherwise).

    Raises:
        InvalidInput: bad name. Conflict: the name is taken.
    """
    name = name.strip()
    if not name or len(name) > 64 or not name.replace("-", "").replace("_", "").isalnum():
        raise InvalidInput("tenant names are 1-64 letters, digits, '-' or '_'", path="tenant")
    if session.exec(select(Tenant).where(Tenant.name == name)).first() is not None:
        raise Conflict(f"tenant {name!r} already exists")
    tenant = Tenant(name=name)
    session.add(tenant)
    session.flush()
    session.add(TenantSettings(tenant_id=tenant.id, mode=mode.value, max_live_level=max_live_level))
    session.flush()
    return tenant


def get_tenant(session: Session, name: str) -> Tenant:
    """The tenant called ``name``. Raises NotFound."""
    tenant = session.exec(select(Tenant).where(Tenant.name == name)).first()
    if tenant is None:
        raise NotFound("tenant", name)
    return tenant


def tenant_settings(session: Session, tenant_id: str) -> TenantSettings:
    """The tenant's settings row (created with the defaults if missing)."""
    row = session.get(TenantSettings, tenant_id)
    if row is None:
        row = TenantSettings(tenant_id=tenant_id)
        session.add(row)
        session.flush()
    return row


def settings_view(session: Session, tenant: Tenant) -> TenantSettingsView:
    row = tenant_settings(session, tenant.id)
    return TenantSettingsView(
        tenant=tenant.name,
        mode=row.mode,
        max_live_level=row.max_live_level,
        over_level=row.over_level,
        max_priority=row.max_priority,
        fanout_approval_targets=row.fanout_approval_targets,
    )


def set_mode(
    session: Session,
    tenant_id: str,
    mode: TenantMode,
    *,
    max_live_level: int | None,
    over_level: OverLevelBehaviour | None,
    actor_id: str,
) -> TenantSettings:
    """Change the tenant's mode (admin checks are the caller's)."""
    if max_live_level is not None and not 0 <= max_live_level <= 3:
        raise InvalidInput("must be between 0 and 3", path="max_live_level")
    row = tenant_settings(session, tenant_id)
    row.mode = mode.value
    if max_live_level is not None:
        row.max_live_level = max_live_level
    if over_level is not None:
        row.over_level = over_level.value
    row.updated_at = utcnow()
    row.updated_by = actor_id
    session.add(row)
    session.flush()
    return row


# The tenant's numeric limits an admin sets, and the bounds each takes (the column name is the error's path).
LIMITS: dict[str, tuple[int, int]] = {
    "max_priority": (0, MAX_REQUESTED),  # the highest ``priority:`` a plan may request (core/priority.py)
    "fanout_approval_targets": (0, MAX_TARGETS),  # from this many targets a fan-out needs a level more (0: never)
}


def set_limit(session: Session, tenant_id: str, name: str, value: int, *, actor_id: str) -> int:
    """Set one of the tenant's ``LIMITS`` (admin checks are the caller's). Work already submitted keeps what it
    was judged under; the limit applies to plans that come in after.

    Returns:
        The value before the change.
    Raises:
        InvalidInput: ``value`` is not a whole number within the limit's bounds (path: the limit's name).
    """
    low, high = LIMITS[name]
    # bool is an int to Python; ``True`` as a limit is a caller's mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(f"must be a whole number from {low} to {high}", path=name)
    # Locked, so that the old value the trail records is the one this change replaced, even when two admins
    # save at once (PostgreSQL; SQLite writers are serialised anyway).
    row = session.get(TenantSettings, tenant_id, with_for_update=True) or tenant_settings(session, tenant_id)
    old = int(getattr(row, name))
    setattr(row, name, value)
    row.updated_at = utcnow()
    row.updated_by = actor_id
    session.add(row)
    session.flush()
    return old


def run_mode_for(settings: TenantSettings, approval_level: int) -> RunMode:
    """Whether a new execution at ``approval_level`` runs live or as a dry run in this tenant.

    Raises:
        SafetyRefused: the tenant is ``off``, or live with ``over_level = refuse`` and the level is too high.
    """
    mode = TenantMode(settings.mode)
    if mode is TenantMode.OFF:
        raise SafetyRefused("tenant_off", "execution is switched off for this tenant; an admin can enable it")
    if mode is TenantMode.DRY_RUN:
        return RunMode.DRY_RUN
    if approval_level <= settings.max_live_level:
        return RunMode.LIVE
    if OverLevelBehaviour(settings.over_level) is OverLevelBehaviour.REFUSE:
        raise SafetyRefused(
            "level_not_live",
            f"approval level {approval_level} is above this tenant's live limit ({settings.max_live_level})",
        )
    return RunMode.DRY_RUN
