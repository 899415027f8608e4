"""Admin use cases: users and roles, assets, secrets, timeout policies, tenant mode and priority cap.

Each checks the principal's current role first. Reading lists needs ``viewer``; changing needs ``admin``;
the policy matrix, shared by every tenant, needs a system administrator (DESIGN §13).
"""

from __future__ import annotations

from collections.abc import Iterable

from core import policies
from core.admin_audit import record_admin_event
from core.engine import locks
from core.errors import InvalidInput
from core.identity import members, rbac, tenants
from core.identity.permissions import Permission
from core.inventory import assets
from core.policy_limits import PolicyValues
from core.safety import secret_store
from core.schemas import AssetView, LockView, MemberView, PolicyView, Principal, SecretInfo, TenantSettingsView
from core.transactions import session_scope
from db.enums import ActionClass, Connection, OverLevelBehaviour, Role, SlaClass, TenantMode


def list_members(principal: Principal) -> list[MemberView]:
    """The tenant's users and roles."""
    with session_scope() as session:
        rbac.require(session, principal, Permission.READ)
        return members.list_members(session, principal.tenant_id)


def set_member(
    principal: Principal, username: str, role: Role, *, max_action_class: ActionClass | None = None
) -> MemberView:
    """Create the user if needed and give them ``role`` in the principal's tenant (admin).

    Raises:
        PermissionDenied: not an admin, or the name belongs to another tenant (a tenant admin never takes
            over another tenant's user; a system administrator may add them here too).
    """
    with session_scope() as session:
        rbac.require(session, principal, Permission.ADMIN)
        user = members.claim_user(session, principal, username)
        members.set_membership(session, principal.tenant_id, user, role, max_action_class=max_action_class)
        limit = max_action_class.value if max_action_class else None
        record_admin_event(session, principal, "member_set", username, {"role": role.value, "max_action_class": limit})
        return next(m for m in members.list_members(session, principal.tenant_id) if m.username == username)


def remove_member(principal: Principal, username: str) -> None:
    """Take away a user's role in the principal's tenant (admin; not your own)."""
    if username == principal.username:
        raise InvalidInput("you cannot remove your own role", path="username")
    with session_scope() as session:
        rbac.require(session, principal, Permission.ADMIN)
        members.remove_membership(session, principal.tenant_id, username)
        record_admin_event(session, principal, "member_removed", username)


def list_assets(principal: Principal) -> list[AssetView]:
    """The tenant's inventory."""
    with session_scope() as session:
        rbac.require(session, principal, Permission.READ)
        return assets.list_assets(session, principal.tenant_id)


def add_asset(
    principal: Principal,
    name: str,
    connection: Connection,
    *,
    host: str | None = None,
    port: int | None = None,
    base_url: str | None = None,
    tags: Iterable[str] = (),
    credential_ref: str | None = None,
    known_host_key: str | None = None,
    skip_host_key: bool = False,
) -> AssetView:
    """Add an asset to the tenant's inventory (admin).

    ``skip_host_key`` (labs only) lets ssh steps connect to it without a known host key; a known key, when
    there is one, is always checked. It is the asset's setting: no plan can turn host-key checks off.
    """
    with session_scope() as session:
        rbac.require(session, principal, Permission.ADMIN)
        view = assets.add_asset(
            session,
            principal.tenant_id,
            name=name,
            connection=connection,
            host=host,
            port=port,
            base_url=base_url,
            tags=tags,
            credential_ref=credential_ref,
            known_host_key=known_host_key,
            skip_host_key=skip_host_key,
        )
        details = {"connection": connection.value, "skip_host_key": skip_host_key}
        record_admin_event(session, principal, "asset_added", name, details)
        return view


def remove_asset(principal: Principal, name: str) -> None:
    """Remove an unused asset (admin)."""
    with session_scope() as session:
        rbac.require(session, principal, Permission.ADMIN)
        assets.remove_asset(session, principal.tenant_id, name)
        record_admin_event(session, principal, "asset_removed", name)


def list_secrets(principal: Principal) -> list[SecretInfo]:
    """Secret names and versions (admin; values are never shown)."""
    with session_scope() as session:
        rbac.require(session, principal, Permission.ADMIN)
        return secret_store.list_secrets(session, principal.tenant_id)


def set_secret(principal: Principal, name: str, value: str, *, assets: Iterable[str] | None = None) -> SecretInfo:
    """Create or rotate a secret (admin). The value is encrypted before it is stored.

    Args:
        assets: limit the secret to these assets of the tenant (a step using it elsewhere is refused);
            None keeps the current limit (a new secret: usable on any asset).
    """
    with session_scope() as session:
        rbac.require(session, principal, Permission.ADMIN)
        info = secret_store.set_secret(
            session, principal.tenant_id, name, value, actor_id=principal.user_id, assets=assets
        )
        details: dict[str, object] = {"version": info.version}  # never the value
        if info.allowed_assets is not None:
            details["assets"] = info.allowed_assets
        record_admin_event(session, principal, "secret_set", name, details)
        return info


def limit_secret(principal: Principal, name: str, assets: Iterable[str] | None) -> SecretInfo:
    """Limit a secret to named assets of the tenant, or (None) let every asset use it (admin)."""
    with session_scope() as session:
        rbac.require(session, principal, Permission.ADMIN)
        info = secret_store.limit_secret(session, principal.tenant_id, name, assets)
        record_admin_event(session, principal, "secret_limited", name, {"assets": info.allowed_assets})
        return info


def delete_secret(principal: Principal, name: str) -> None:
    """Delete a secret (admin)."""
    with session_scope() as session:
        rbac.require(session, principal, Permission.ADMIN)
        secret_store.delete_secret(session, principal.tenant_id, name)
        record_admin_event(session, principal, "secret_deleted", name)


def list_policies(principal: Principal) -> list[PolicyView]:
    """The timeout policy matrix."""
    with session_scope() as session:
        rbac.require(session, principal, Permission.READ)
        return policies.list_policies(session)


def update_policy(
    principal: Principal, sla_class: SlaClass, action_class: ActionClass, values: PolicyValues
) -> PolicyView:
    """Change one row of the timeout policy matrix (a system administrator: it applies to every tenant; validated).

    Raises:
        PermissionDenied: not a system administrator. InvalidInput: the values break a rule (§6).
    """
    with session_scope() as session:
        rbac.require_system_admin(session, principal, "edit the timeout policies (they apply to every tenant)")
        view = policies.update_policy(session, sla_class, action_class, values, actor_id=principal.user_id)
        record_admin_event(session, principal, "policy_updated", f"{sla_class.value}/{action_class.value}",
                           values._asdict())  # fmt: skip
        return view


def get_tenant_settings(principal: Principal) -> TenantSettingsView:
    """The tenant's execution mode."""
    with session_scope() as session:
        rbac.require(session, principal, Permission.READ)
        return tenants.settings_view(session, tenants.get_tenant(session, principal.tenant))


def set_tenant_mode(
    principal: Principal,
    mode: TenantMode,
    *,
    max_live_level: int | None = None,
    over_level: OverLevelBehaviour | None = None,
) -> TenantSettingsView:
    """Switch the tenant's execution mode (admin)."""
    with session_scope() as session:
        rbac.require(session, principal, Permission.ADMIN)
        tenants.set_mode(
            session,
            principal.tenant_id,
            mode,
            max_live_level=max_live_level,
            over_level=over_level,
            actor_id=principal.user_id,
        )
        view = tenants.settings_view(session, tenants.get_tenant(session, principal.tenant))
        # The mode's own fields: the priority cap has its own entry when it changes (set_priority_cap).
        record_admin_event(
            session,
            principal,
            "tenant_mode",
            principal.tenant,
            view.model_dump(exclude={"tenant", "max_priority", "fanout_approval_targets"}),
        )
        return view


def set_priority_cap(principal: Principal, cap: int) -> TenantSettingsView:
    """Set the highest ``priority:`` a plan of the principal's tenant may request, 0 to ``MAX_PRIORITY`` (admin).

    Audited with the old and the new cap. Plans already submitted keep their priority.

    Raises:
        PermissionDenied: not an admin of the tenant. InvalidInput: out of range (path ``max_priority``).
    """
    return _set_limit(principal, "max_priority", cap, event="priority_cap")


def set_fanout_approval_targets(principal: Principal, targets: int) -> TenantSettingsView:
    """Set from how many targets a fan-out needs one approval level more (DESIGN §14), 0 (never) to 200 (admin).

    Audited with the old and the new value. Executions already submitted keep their level.

    Raises:
        PermissionDenied: not an admin of the tenant. InvalidInput: out of range (path ``fanout_approval_targets``).
    """
    return _set_limit(principal, "fanout_approval_targets", targets, event="fanout_approval_targets")


def _set_limit(principal: Principal, name: str, value: int, *, event: str) -> TenantSettingsView:
    with session_scope() as session:
        rbac.require(session, principal, Permission.ADMIN)
        old = tenants.set_limit(session, principal.tenant_id, name, value, actor_id=principal.user_id)
        record_admin_event(session, principal, event, principal.tenant, {"old": old, "new": value})
        return tenants.settings_view(session, tenants.get_tenant(session, principal.tenant))


def list_locks(principal: Principal) -> list[LockView]:
    """Who holds which asset lock since when, and how many executions wait for it."""
    with session_scope() as session:
        rbac.require(session, principal, Permission.READ)
        return locks.list_locks(session, principal.tenant_id)
