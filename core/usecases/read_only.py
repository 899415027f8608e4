"""Admin use cases for the tenant's read-only argv prefixes (DESIGN §13): list, declare, withdraw.

A ``shell`` step is ``read`` (level 0, no approval) only when its argv starts with one of these prefixes,
word for word. Declaring one is a decision about risk, so each change is in the admin trail.
"""

from __future__ import annotations

from collections.abc import Sequence

from core.admin_audit import record_admin_event
from core.identity import rbac
from core.identity.permissions import Permission
from core.inventory import trust
from core.schemas import Principal, ReadOnlyCommandView
from core.transactions import session_scope


def list_read_only_commands(principal: Principal) -> list[ReadOnlyCommandView]:
    """The tenant's read-only prefixes (any role: operators should know what runs at once)."""
    with session_scope() as session:
        rbac.require(session, principal, Permission.READ)
        return trust.list_commands(session, principal.tenant_id)


def add_read_only_command(principal: Principal, argv: Sequence[str]) -> ReadOnlyCommandView:
    """Declare an argv prefix read-only for the tenant (admin), e.g. ``["df"]`` or ``["systemctl", "status"]``.

    The words are matched one by one against a step's argv: ``["df"]`` covers ``df -h`` but not ``dfx``,
    nor ``sh -c "df"``. Anything an interpreter (``sh``, ``bash``, ``python3``) is given runs as it says, so
    declare one only if you mean every script it could run.

    Raises:
        InvalidInput: empty prefix or bad word (with its path). Conflict: already declared.
        PermissionDenied: not an admin.
    """
    with session_scope() as session:
        rbac.require(session, principal, Permission.ADMIN)
        view = trust.add_command(session, principal.tenant_id, argv, actor=principal.username)
        record_admin_event(session, principal, "read_only_command_added", view.id, {"argv": view.argv})
        return view


def remove_read_only_command(principal: Principal, command_id: str) -> ReadOnlyCommandView:
    """Withdraw a read-only prefix by id (admin); later submissions of such steps need approval again.

    Raises:
        NotFound: no such prefix in the tenant. PermissionDenied: not an admin.
    """
    with session_scope() as session:
        rbac.require(session, principal, Permission.ADMIN)
        view = trust.remove_command(session, principal.tenant_id, command_id)
        record_admin_event(session, principal, "read_only_command_removed", view.id, {"argv": view.argv})
        return view
