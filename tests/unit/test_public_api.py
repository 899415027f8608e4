"""The public API is a contract (STYLE: a test guards the exported names, as httpx does)."""

from __future__ import annotations

import inspect
import subprocess
import sys

import core

# Every name the console, the CLI and scripts may use. Adding one is a decision: add it here too.
EXPORTED = {
    "DEMO_PASSWORD", "DEMO_USERS", "IDENTITY_HINT", "SCOPES", "TERMINAL_STATUSES",
    "ActionClass", "AdminEventView", "ApprovalView", "AssetView", "AuthenticationFailed", "ChainBreak", "ChainReport",
    "CheckItem", "CheckThresholds", "Conflict", "Connection", "CoreError", "DashboardView", "DeadlineExceeded",
    "DlqView", "DryRunStep", "DurationStats", "EventView", "ExecutionMode", "ExecutionPage", "ExecutionStatus",
    "ExecutionSummary", "ExecutionView", "HourCount", "InboxItem", "InitReport", "InvalidInput", "InvalidTransition",
    "LockView", "MaskingSink", "MemberView", "NotFound", "OverLevelBehaviour", "PermissionDenied", "PlanPreview", "PlanStepView",
    "PolicyValues", "PolicyView", "Principal", "PruneReport", "QueueDepth", "Role", "RunMode", "RunModeStats",
    "ReadOnlyCommandView", "RunbookVersionView", "RunbookView", "SafetyRefused", "SecretInfo", "ServiceUnavailable", "Settings", "SlaClass",
    "StepStatus", "StepView", "SubmitResult", "TenantMode", "TenantSettingsView", "TokenView", "WorkerView",
    "add_asset", "add_read_only_command", "approval_inbox", "approve", "approve_gate", "authenticate", "cancel",
    "check_readiness",
    "configure_logging", "dashboard", "default_masking_sinks", "delete_runbook", "delete_secret", "demo_installed",
    "discard", "dry_run_plan", "get_execution", "get_settings", "get_tenant_settings", "initialize",
    "install_log_masking", "limit_secret", "list_admin_events", "list_assets", "list_dlq", "list_events", "list_executions",
    "list_executions_page", "list_locks", "list_members", "list_policies", "list_read_only_commands", "list_runbook_versions", "list_runbooks", "list_secrets",
    "list_workers", "needs_reauthentication", "parse_plan", "preview", "principal", "principal_for", "prune",
    "publish_runbook", "queue_depths", "reauthenticate", "reject", "remove_asset", "remove_member", "remove_read_only_command", "requeue", "rerun", "save_runbook",
    "set_dispatcher", "set_member", "set_password", "set_secret", "set_tenant_mode", "submit", "submit_many", "unpublish_runbook", "update_policy",
    "verify_chain", "wait_for",
    # identity (DESIGN §13): API tokens, the console's session check, single sign-on, disabling accounts
    "create_token", "list_tokens", "principal_from_token", "recently_authenticated", "revoke_token",
    "session_valid", "set_user_disabled", "sso_principal",
    # the tenant audit chain (DESIGN §13): signed checkpoints, their public key, the SIEM export
    "CheckpointView", "audit_checkpoint", "audit_public_key", "export_audit",
    # the one-shot reader of `opsconductor show` (issue 15): a DB-API connection, no ORM, the same rules
    "DirectReadUnavailable", "DirectReader", "direct_reader",
    # plan inputs (DESIGN §14): what a plan declares, values from a file
    "PlanInputView", "declared_inputs", "load_input_values",
    # issue 16 item 4: edit a rerun, requeue a DLQ entry with changes
    "rerun_plan", "requeue_with_changes", "plan_yaml",
    # issue 16: console sessions that survive reload (signed, expiring, revocable); ids by unique prefix
    "console_session_expires", "console_session_principal", "end_console_session", "session_token_for",
    "start_console_session", "resolve_execution_id", "MIN_ID_PREFIX",
    # issue 16: live output, each attempt's output kept apart
    "AttemptOutputView", "OutputChunkView", "list_attempt_outputs", "list_output_chunks",
    # issue 16 item 3: notification channels (webhooks, email), a user's opt-in, the signing secret, a test send
    "ChannelView", "NotificationTestResult", "add_webhook", "add_email", "subscribe_email", "list_channels",
    "remove_channel", "rotate_signing_secret", "test_channel",
    # issue 17 item 4: change windows per tenant and asset tag, an override with four eyes
    "ChangeWindowsView", "WindowMode", "WindowOverrideView", "get_change_windows", "list_window_overrides",
    "override_change_window", "set_change_windows",
    # issue 17 item 5: the tenant's cap on a plan's requested priority, and the plan field's bound
    "MAX_PRIORITY", "set_priority_cap",
    # issue 17 item 2: the fan-out groups of an execution, and the tenant's blast-radius threshold
    "FanoutGroupView", "set_fanout_approval_targets",
}  # fmt: skip


def test_the_exported_names_are_exactly_the_contract() -> None:
    """``core.__all__`` neither loses nor gains a name without this list changing with it."""
    assert set(core.__all__) == EXPORTED
    assert len(core.__all__) == len(EXPORTED)  # no name listed twice


def test_every_exported_name_resolves() -> None:
    """Each name in ``__all__`` is an attribute of ``core`` (no stale entry)."""
    missing = [name for name in core.__all__ if not hasattr(core, name)]
    assert missing == []


def test_public_functions_have_docstrings() -> None:
    """Every exported function says what it does (STYLE: short docstrings on public names)."""
    undocumented = [
        name
        for name in core.__all__
        if inspect.isfunction(obj := getattr(core, name)) and not (obj.__doc__ or "").strip()
    ]
    assert undocumented == []


def test_importing_the_cli_does_not_pay_for_alembic() -> None:
    """Only ``init`` and ``up`` migrate: every other CLI call starts without importing Alembic."""
    code = "import sys, ui.cli; print('alembic' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False"
