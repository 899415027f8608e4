"""OpsConductor's public API: the only names the console, the CLI and scripts should use.

Every call takes a ``Principal`` (resolve one with ``principal``), runs in its own transaction, checks
the principal's current role, is scoped to the principal's tenant, and returns read-only views.
Errors are ``CoreError`` subclasses (see core.errors)::

    from core import principal, submit, approve
    alice = principal("alice", "demo")
    result = submit(alice, open("plan.yaml").read())
    approve(principal("bob", "demo"), result.execution.execution_id)

``core`` never imports ``jobs``, ``ui`` or ``streamlit``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.accounts import AuthenticationFailed, authenticate, needs_reauthentication, reauthenticate, set_password
from core.admin import (
    add_asset,
    delete_secret,
    get_tenant_settings,
    list_assets,
    list_locks,
    list_members,
    list_policies,
    list_secrets,
    remove_asset,
    remove_member,
    set_member,
    set_secret,
    set_tenant_mode,
    update_policy,
)
from core.approvals import approve, reject
from core.cancellation import cancel
from core.dlq import discard, list_dlq, requeue
from core.errors import (
    Conflict,
    CoreError,
    DeadlineExceeded,
    InvalidInput,
    InvalidTransition,
    NotFound,
    PermissionDenied,
    SafetyRefused,
    ServiceUnavailable,
)
from core.executions import get_execution, list_events, list_executions, wait_for
from core.fsm import TERMINAL as TERMINAL_STATUSES
from core.gates import approve_gate
from core.plans import parse_plan
from core.policies import PolicyValues
from core.principals import principal, principal_for
from core.runbooks import delete_runbook, list_runbooks, save_runbook
from core.safety.masking import install_log_masking
from core.schemas import (
    ApprovalView,
    AssetView,
    DlqView,
    EventView,
    ExecutionSummary,
    ExecutionView,
    LockView,
    MemberView,
    PlanPreview,
    PolicyView,
    Principal,
    RunbookView,
    SecretInfo,
    StepView,
    SubmitResult,
    TenantSettingsView,
    WorkerView,
)
from core.submission import preview, submit
from core.workers import list_workers
from db.enums import (
    ActionClass,
    Connection,
    ExecutionMode,
    ExecutionStatus,
    OverLevelBehaviour,
    Role,
    RunMode,
    SlaClass,
    StepStatus,
    TenantMode,
)
from db.settings import Settings, get_settings

if TYPE_CHECKING:
    from core.setup import InitReport, initialize


def __getattr__(name: str) -> Any:
    # Setting up pulls in Alembic (~0.5 s); only `init` and `up` need it, so it is imported on first use.
    if name in {"initialize", "InitReport"}:
        from core import setup

        return getattr(setup, name)
    raise AttributeError(f"module 'core' has no attribute {name!r}")


__all__ = [
    "TERMINAL_STATUSES",
    "ActionClass",
    "ApprovalView",
    "AssetView",
    "AuthenticationFailed",
    "Conflict",
    "Connection",
    "CoreError",
    "DeadlineExceeded",
    "DlqView",
    "EventView",
    "ExecutionMode",
    "ExecutionStatus",
    "ExecutionSummary",
    "ExecutionView",
    "InitReport",
    "InvalidInput",
    "InvalidTransition",
    "LockView",
    "MemberView",
    "NotFound",
    "OverLevelBehaviour",
    "PermissionDenied",
    "PlanPreview",
    "PolicyValues",
    "PolicyView",
    "Principal",
    "Role",
    "RunMode",
    "RunbookView",
    "SafetyRefused",
    "SecretInfo",
    "ServiceUnavailable",
    "Settings",
    "SlaClass",
    "StepStatus",
    "StepView",
    "SubmitResult",
    "TenantMode",
    "TenantSettingsView",
    "WorkerView",
    "add_asset",
    "approve",
    "approve_gate",
    "authenticate",
    "cancel",
    "delete_runbook",
    "delete_secret",
    "discard",
    "get_execution",
    "get_settings",
    "get_tenant_settings",
    "initialize",
    "install_log_masking",
    "list_assets",
    "list_dlq",
    "list_events",
    "list_executions",
    "list_locks",
    "list_members",
    "list_policies",
    "list_runbooks",
    "list_secrets",
    "list_workers",
    "needs_reauthentication",
    "parse_plan",
    "preview",
    "principal",
    "principal_for",
    "reauthenticate",
    "reject",
    "remove_asset",
    "remove_member",
    "requeue",
    "save_runbook",
    "set_member",
    "set_password",
    "set_secret",
    "set_tenant_mode",
    "submit",
    "update_policy",
    "wait_for",
]
