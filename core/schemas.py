"""DTOs: the read-only views the public API returns. Never ORM rows, so callers can cache them freely."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from db.clock import utcnow
from db.enums import ActionClass, Role


class View(BaseModel):
    model_config = ConfigDict(frozen=True)


class Principal(View):
    """Who is acting: a user in a tenant, with the role they held when resolved.

    Use cases re-read the role from the database before acting, so a revoked role takes effect at once.
    """

    tenant_id: str
    tenant: str
    user_id: str
    username: str
    role: Role
    max_action_class: ActionClass | None = None


class StepView(View):
    index: int
    name: str
    action: str
    target: str
    action_class: str
    status: str
    attempts: int
    timeout_s: int | None
    started_at: datetime | None
    finished_at: datetime | None
    output: str | None
    error: str | None


class ApprovalView(View):
    approver: str
    decision: str
    comment: str | None
    plan_hash: str
    step_index: int | None
    created_at: datetime


class EventView(View):
    id: int
    kind: str
    from_status: str | None
    to_status: str | None
    step_index: int | None
    actor: str | None
    message: str
    data: dict[str, Any]
    created_at: datetime


class ExecutionSummary(View):
    """One row of a list: enough to filter and pick, no steps."""

    execution_id: str
    name: str
    status: str
    tenant_id: str
    tenant: str
    requested_by: str
    action_class: str
    approval_level: int
    sla_class: str
    execution_mode: str
    run_mode: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class ExecutionView(ExecutionSummary):
    """An execution in full: the §11 JSON contract plus what the console shows."""

    description: str
    plan_hash: str
    idempotency_key: str
    continue_on_error: bool
    attempt: int
    error: str | None
    approvals_required: int
    approval_expires_at: datetime | None
    cancel_requested_at: datetime | None
    approvals: list[ApprovalView]
    steps: list[StepView]


class SubmitResult(View):
    """What submit returns: the execution, and whether this call created it (False = idempotent duplicate)."""

    execution: ExecutionView
    created: bool


class PolicyView(View):
    sla_class: str
    action_class: str
    step_s: int
    execution_s: int
    lease_s: int
    approval_s: int
    max_attempts: int


class AssetView(View):
    id: str
    name: str
    connection: str
    host: str | None
    port: int | None
    base_url: str | None
    tags: list[str]
    credential_ref: str | None
    has_known_host_key: bool
    known_host_key: str | None = None  # public (an OpenSSH key line): the ssh action checks the host against it


class MemberView(View):
    username: str
    display_name: str
    role: str
    max_action_class: str | None
    disabled: bool


class SecretInfo(View):
    """A secret's metadata. There is deliberately no field for the value."""

    name: str
    version: int
    updated_at: datetime


class TenantSettingsView(View):
    tenant: str
    mode: str
    max_live_level: int
    over_level: str


class PlanPreview(View):
    """What the server derives from a plan before it is submitted."""

    name: str
    plan_hash: str
    action_class: str
    approval_level: int
    approvals_required: int
    sla_class: str
    execution_mode: str
    run_mode: str
    estimated_s: float
    policy: PolicyView
    steps: list[dict[str, Any]]
    secret_names: list[str]


class LockView(View):
    """A held asset lock: who holds it since when, and how many executions wait for the asset."""

    asset: str
    execution_id: str
    execution_name: str
    fencing_token: int
    acquired_at: datetime
    expires_at: datetime
    waiters: int


class DlqView(View):
    """An entry of the dead-letter queue with its execution's name, requester and status."""

    id: str
    execution_id: str
    execution_name: str
    requested_by: str
    status: str
    reason: str
    step_index: int | None
    attempts: int
    last_error: str | None
    created_at: datetime
    resolved_at: datetime | None
    resolution: str | None
    comment: str | None


class WorkerView(View):
    """A worker process and its heartbeat."""

    id: str
    host: str
    pid: int
    kind: str
    threads: int
    started_at: datetime
    last_seen_at: datetime
    stopped_at: datetime | None
    current_execution_id: str | None
    current_step_index: int | None

    @property
    def heartbeat_age_s(self) -> float:
        return (utcnow() - self.last_seen_at).total_seconds()


class RunbookView(View):
    """A saved plan of the tenant's runbook library."""

    name: str
    description: str
    plan_text: str
    updated_by: str | None
    updated_at: datetime
