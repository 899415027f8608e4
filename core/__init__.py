"""OpsConductor's public API: the only names the console, the CLI and scripts should use.

Every call takes a ``Principal``, runs in its own transaction, checks that core issued the principal
(a hand-built one is refused), its scopes and its current role, is scoped to the principal's tenant, and
returns read-only views. Errors are ``CoreError`` subclasses (see core.errors)::

    from core import principal_from_token, submit, approve
    alice = principal_from_token(os.environ["OPSC_TOKEN"])          # or authenticate(name, password)
    result = submit(alice, open("plan.yaml").read())
    approve(principal_from_token(bobs_token), result.execution.execution_id)

``principal("alice", "demo")`` (a claimed name) works only on a demo / single-operator box (README
Security model).

``core`` never imports ``jobs``, ``ui`` or ``streamlit``.
"""

from __future__ import annotations

from core.admin_audit import list_admin_events
from core.engine.workers import list_workers, queue_depths
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
from core.fsm import TERMINAL as TERMINAL_STATUSES
from core.identity.installation import IDENTITY_HINT
from core.identity.principals import principal, principal_for, session_valid, sso_principal
from core.identity.scopes import SCOPES
from core.identity.tokens import create_token, list_tokens, principal_from_token, revoke_token
from core.logs import configure_logging
from core.ops.audit_chain import verify_chain
from core.ops.audit_checkpoints import checkpoint as audit_checkpoint
from core.ops.audit_checkpoints import public_key as audit_public_key
from core.ops.audit_export import export_audit
from core.ops.readiness import CheckThresholds, MaskingSink, default_masking_sinks
from core.ops.readiness import check as check_readiness
from core.ops.retention import prune
from core.ops.setup import DEMO_PASSWORD, DEMO_USERS, InitReport, demo_installed, initialize
from core.plans import parse_plan
from core.policies import PolicyValues
from core.ports import set_dispatcher
from core.reads.dashboard import dashboard
from core.reads.executions import get_execution, list_events, list_executions, list_executions_page, wait_for
from core.reads.inbox import approval_inbox
from core.safety.masking import install_log_masking
from core.schemas import (
    AdminEventView,
    ApprovalView,
    AssetView,
    ChainBreak,
    ChainReport,
    CheckItem,
    CheckpointView,
    DashboardView,
    DlqView,
    DryRunStep,
    DurationStats,
    EventView,
    ExecutionPage,
    ExecutionSummary,
    ExecutionView,
    HourCount,
    InboxItem,
    LockView,
    MemberView,
    PlanPreview,
    PlanStepView,
    PolicyView,
    Principal,
    PruneReport,
    QueueDepth,
    ReadOnlyCommandView,
    RunbookVersionView,
    RunbookView,
    RunModeStats,
    SecretInfo,
    StepView,
    SubmitResult,
    TenantSettingsView,
    TokenView,
    WorkerView,
)
from core.usecases.accounts import (
    AuthenticationFailed,
    authenticate,
    needs_reauthentication,
    reauthenticate,
    recently_authenticated,
    set_password,
    set_user_disabled,
)
from core.usecases.admin import (
    add_asset,
    delete_secret,
    get_tenant_settings,
    limit_secret,
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
from core.usecases.approvals import approve, approve_gate, reject
from core.usecases.cancellation import cancel
from core.usecases.dlq import discard, list_dlq, requeue
from core.usecases.dry_run import dry_run_plan
from core.usecases.read_only import add_read_only_command, list_read_only_commands, remove_read_only_command
from core.usecases.runbooks import (
    delete_runbook,
    list_runbook_versions,
    list_runbooks,
    publish_runbook,
    save_runbook,
    unpublish_runbook,
)
from core.usecases.submission import preview, rerun, submit
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

__all__ = [
    "DEMO_PASSWORD",
    "DEMO_USERS",
    "IDENTITY_HINT",
    "SCOPES",
    "TERMINAL_STATUSES",
    "ActionClass",
    "AdminEventView",
    "ApprovalView",
    "AssetView",
    "AuthenticationFailed",
    "ChainBreak",
    "ChainReport",
    "CheckItem",
    "CheckThresholds",
    "CheckpointView",
    "Conflict",
    "Connection",
    "CoreError",
    "DashboardView",
    "DeadlineExceeded",
    "DlqView",
    "DryRunStep",
    "DurationStats",
    "EventView",
    "ExecutionMode",
    "ExecutionPage",
    "ExecutionStatus",
    "ExecutionSummary",
    "ExecutionView",
    "HourCount",
    "InboxItem",
    "InitReport",
    "InvalidInput",
    "InvalidTransition",
    "LockView",
    "MaskingSink",
    "MemberView",
    "NotFound",
    "OverLevelBehaviour",
    "PermissionDenied",
    "PlanPreview",
    "PlanStepView",
    "PolicyValues",
    "PolicyView",
    "Principal",
    "PruneReport",
    "QueueDepth",
    "ReadOnlyCommandView",
    "Role",
    "RunMode",
    "RunModeStats",
    "RunbookVersionView",
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
    "TokenView",
    "WorkerView",
    "add_asset",
    "add_read_only_command",
    "approval_inbox",
    "approve",
    "approve_gate",
    "audit_checkpoint",
    "audit_public_key",
    "authenticate",
    "cancel",
    "check_readiness",
    "configure_logging",
    "create_token",
    "dashboard",
    "default_masking_sinks",
    "delete_runbook",
    "delete_secret",
    "demo_installed",
    "discard",
    "dry_run_plan",
    "export_audit",
    "get_execution",
    "get_settings",
    "get_tenant_settings",
    "initialize",
    "install_log_masking",
    "limit_secret",
    "list_admin_events",
    "list_assets",
    "list_dlq",
    "list_events",
    "list_executions",
    "list_executions_page",
    "list_locks",
    "list_members",
    "list_policies",
    "list_read_only_commands",
    "list_runbook_versions",
    "list_runbooks",
    "list_secrets",
    "list_tokens",
    "list_workers",
    "needs_reauthentication",
    "parse_plan",
    "preview",
    "principal",
    "principal_for",
    "principal_from_token",
    "prune",
    "publish_runbook",
    "queue_depths",
    "reauthenticate",
    "recently_authenticated",
    "reject",
    "remove_asset",
    "remove_member",
    "remove_read_only_command",
    "requeue",
    "rerun",
    "revoke_token",
    "save_runbook",
    "session_valid",
    "set_dispatcher",
    "set_member",
    "set_password",
    "set_secret",
    "set_tenant_mode",
    "set_user_disabled",
    "sso_principal",
    "submit",
    "unpublish_runbook",
    "update_policy",
    "verify_chain",
    "wait_for",
]
