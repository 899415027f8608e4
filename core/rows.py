"""The columns core's pure rules read from a row, as Protocols (one per table, only the columns read).

Two sources feed those rules: the ORM's rows (db/tables.py, through a Session) and the plain records of the
one-shot reader (core/reads/direct_sql.py, through a DB-API connection, for ``show`` without SQLAlchemy,
issue 15). A table class and a record both fit these shapes, so the identity checks (core/identity/proofs.py,
token_rules.py, permissions.py), the plan review (core/reads/plan_review.py) and the execution view
(core/reads/execution_view.py) exist once. Times are aware UTC datetimes in both (db/clock.py).

Must not import SQLAlchemy, SQLModel or db/tables.py (the point of it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


class UserRow(Protocol):
    id: str
    username: str
    disabled: bool
    credentials_changed_at: datetime | None


class TenantRow(Protocol):
    id: str
    name: str


class MembershipRow(Protocol):
    role: str
    max_action_class: str | None


class TokenRow(Protocol):
    id: str
    user_id: str
    tenant_id: str
    scopes: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


class ExecutionRow(Protocol):
    id: str
    tenant_id: str
    requested_by: str
    name: str
    description: str
    plan_json: str
    plan_hash: str
    action_class: str
    approval_level: int
    sla_class: str
    execution_mode: str
    run_mode: str
    continue_on_error: bool
    status: str
    idempotency_key: str
    attempt: int
    error: str | None
    approval_expires_at: datetime | None
    cancel_requested_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    deadline_at: datetime | None
    finished_at: datetime | None
    rerun_of: str | None
    rollback_status: str | None
    priority: int


class StepRow(Protocol):
    step_index: int
    name: str
    action: str
    target_asset_id: str
    target_name: str
    action_class: str
    params_json: str
    timeout_s: int | None
    status: str
    attempts: int
    output: str | None
    error: str | None
    started_at: datetime | None
    finished_at: datetime | None
    phase: str


class ApprovalRow(Protocol):
    decision: str
    comment: str | None
    plan_hash: str
    step_index: int | None
    created_at: datetime


class AssetRow(Protocol):
    id: str
    name: str
    connection: str
    host: str | None
    port: int | None
    base_url: str | None
    tags_json: str
    credential_ref: str | None
    known_host_key: str | None
    skip_host_key: bool


class PolicyRow(Protocol):
    sla_class: str
    action_class: str
    step_s: int
    execution_s: int


# -- plain records -------------------------------------------------------------------------------------
# What a source without the ORM hands the rules: the same columns as the Protocols above, as slotted
# dataclasses (the one-shot reader, core/reads/direct_sql.py; a submit's view of what it wrote,
# core/usecases/submitted_views.py).


@dataclass(slots=True)
class UserRecord:
    id: str
    username: str
    disabled: bool
    credentials_changed_at: datetime | None


@dataclass(slots=True)
class TenantRecord:
    id: str
    name: str


@dataclass(slots=True)
class MembershipRecord:
    role: str
    max_action_class: str | None


@dataclass(slots=True)
class TokenRecord:
    id: str
    user_id: str
    tenant_id: str
    scopes: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


@dataclass(slots=True)
class ExecutionRecord:
    id: str
    tenant_id: str
    requested_by: str
    name: str
    description: str
    plan_json: str
    plan_hash: str
    action_class: str
    approval_level: int
    sla_class: str
    execution_mode: str
    run_mode: str
    continue_on_error: bool
    status: str
    idempotency_key: str
    attempt: int
    error: str | None
    approval_expires_at: datetime | None
    cancel_requested_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    deadline_at: datetime | None
    finished_at: datetime | None
    rerun_of: str | None = None  # the execution this one reran (issue 16)
    rollback_status: str | None = None  # how its rollback went (DESIGN §14); None: none ran
    priority: int = 0  # the effective priority (core/priority.py)


@dataclass(slots=True)
class StepRecord:
    step_index: int
    name: str
    action: str
    target_asset_id: str
    target_name: str
    action_class: str
    params_json: str
    timeout_s: int | None
    status: str
    attempts: int
    output: str | None
    error: str | None
    started_at: datetime | None
    finished_at: datetime | None
    phase: str = "main"  # main, on_failure or on_cancel (DESIGN §14)


@dataclass(slots=True)
class ApprovalRecord:
    decision: str
    comment: str | None
    plan_hash: str
    step_index: int | None
    created_at: datetime


@dataclass(slots=True)
class AssetRecord:
    id: str
    name: str
    connection: str
    host: str | None
    port: int | None
    base_url: str | None
    tags_json: str
    credential_ref: str | None
    known_host_key: str | None
    skip_host_key: bool


@dataclass(slots=True)
class PolicyRecord:
    sla_class: str
    action_class: str
    step_s: int
    execution_s: int
