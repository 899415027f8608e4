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

from core.admin import (
    add_asset,
    delete_secret,
    get_tenant_settings,
    list_assets,
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
from core.errors import (
    Conflict,
    CoreError,
    DeadlineExceeded,
    InvalidInput,
    InvalidTransition,
    NotFound,
    PermissionDenied,
    SafetyRefused,
)
from core.executions import get_execution, list_events, list_executions, wait_for
from core.plans import parse_plan
from core.policies import PolicyValues
from core.principals import principal, principal_for
from core.schemas import (
    ApprovalView,
    AssetView,
    EventView,
    ExecutionSummary,
    ExecutionView,
    MemberView,
    PlanPreview,
    PolicyView,
    Principal,
    SecretInfo,
    StepView,
    SubmitResult,
    TenantSettingsView,
)
from core.setup import InitReport, initialize
from core.submission import preview, submit
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

__all__ = [
    # enums
    "ActionClass",
    # views
    "ApprovalView",
    "AssetView",
    # errors
    "Conflict",
    "Connection",
    "CoreError",
    "DeadlineExceeded",
    "EventView",
    "ExecutionMode",
    "ExecutionStatus",
    "ExecutionSummary",
    "ExecutionView",
    "InitReport",
    "InvalidInput",
    "InvalidTransition",
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
    "SafetyRefused",
    "SecretInfo",
    "SlaClass",
    "StepStatus",
    "StepView",
    "SubmitResult",
    "TenantMode",
    "TenantSettingsView",
    # use cases
    "add_asset",
    "approve",
    "cancel",
    "delete_secret",
    "get_execution",
    "get_tenant_settings",
    "initialize",
    "list_assets",
    "list_events",
    "list_executions",
    "list_members",
    "list_policies",
    "list_secrets",
    "parse_plan",
    "preview",
    "principal",
    "principal_for",
    "reject",
    "remove_asset",
    "remove_member",
    "set_member",
    "set_secret",
    "set_tenant_mode",
    "submit",
    "update_policy",
    "wait_for",
]
