"""SQLModel tables: the product's durable state. Column enums live in db/enums.py.

Conventions: ids are 32-char hex UUIDs; timestamps are naive UTC (db/clock.py); every row that belongs
to a tenant carries ``tenant_id`` so every query can be scoped by it; JSON is stored as text we write
ourselves (canonical JSON for plans), which keeps both databases identical.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Column, ForeignKey, Index, Integer, Text, UniqueConstraint, false, text
from sqlmodel import Field, SQLModel

from db.clock import utcnow


def new_id() -> str:
    """A fresh 32-char hex id."""
    return uuid.uuid4().hex


class Tenant(SQLModel, table=True):
    __tablename__ = "tenants"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    name: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(default_factory=utcnow)


class TenantSettings(SQLModel, table=True):
    """Execution mode of a tenant (the dark-launch switch)."""

    __tablename__ = "tenant_settings"

    tenant_id: str = Field(sa_column=Column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True))
    mode: str = Field(default="dry_run", max_length=16)
    max_live_level: int = Field(default=0)
    # The highest ``priority:`` a plan of the tenant may request (core/priority.py).
    max_priority: int = Field(default=3, sa_column=Column(Integer, nullable=False, server_default="3"))
    # A plan fanning out to this many assets or more needs one level more (core/plan_fanout.py); 0: never.
    fanout_approval_targets: int = Field(default=10, sa_column=Column(Integer, nullable=False, server_default="10"))
    over_level: str = Field(default="dry_run", max_length=16)
    updated_at: datetime = Field(default_factory=utcnow)
    updated_by: str | None = Field(default=None, max_length=32)


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    username: str = Field(max_length=64, unique=True)
    display_name: str = Field(default="", max_length=128)
    password_hash: str | None = Field(default=None, max_length=256)
    disabled: bool = Field(default=False)
    # Lock-out after repeated bad passwords (core/usecases/accounts.py): the count since the last good one,
    # and until when.
    failed_logins: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    locked_until: datetime | None = Field(default=None)
    # DESIGN §13: a system administrator owns global settings (the policy matrix, tenants, global users);
    # a tenant admin never does.
    system_admin: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, server_default=false()))
    # Console sessions and API tokens issued before this moment are no longer valid (password changed).
    credentials_changed_at: datetime | None = Field(default=None)
    created_at: datetime = Field(default_factory=utcnow)


class Membership(SQLModel, table=True):
    """A user's role in one tenant; ``max_action_class`` optionally limits what an operator may run."""

    __tablename__ = "memberships"
    __table_args__ = (Index("ix_memberships_user", "user_id"),)

    tenant_id: str = Field(sa_column=Column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True))
    user_id: str = Field(sa_column=Column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True))
    role: str = Field(max_length=16)
    max_action_class: str | None = Field(default=None, max_length=16)
    created_at: datetime = Field(default_factory=utcnow)


class Asset(SQLModel, table=True):
    __tablename__ = "assets"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_assets_tenant_name"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    tenant_id: str = Field(sa_column=Column(ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False))
    name: str = Field(max_length=128)
    connection: str = Field(max_length=16)
    host: str | None = Field(default=None, max_length=255)
    port: int | None = Field(default=None)
    base_url: str | None = Field(default=None, max_length=512)
    tags_json: str = Field(default="[]", sa_column=Column(Text, nullable=False, server_default="[]"))
    credential_ref: str | None = Field(default=None, max_length=128)
    known_host_key: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # Labs only, set by an admin on the asset (never by a plan): ssh without checking the host key.
    skip_host_key: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, server_default=false()))
    # The last fencing token handed out for this asset's lock (core/engine/locks.py): only ever grows.
    lock_fence: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    created_at: datetime = Field(default_factory=utcnow)


class Secret(SQLModel, table=True):
    """A tenant's secret, encrypted (Fernet). The plaintext is never stored."""

    __tablename__ = "secrets"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_secrets_tenant_name"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    tenant_id: str = Field(sa_column=Column(ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False))
    name: str = Field(max_length=128)
    ciphertext: str = Field(sa_column=Column(Text, nullable=False))
    # DESIGN §13: the asset names this secret may be used on (JSON list); NULL = every asset of the tenant.
    allowed_assets_json: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    version: int = Field(default=1)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    updated_by: str | None = Field(default=None, max_length=32)


class TimeoutPolicy(SQLModel, table=True):
    """DESIGN §6: one row per (sla_class, action_class)."""

    __tablename__ = "timeout_policies"

    sla_class: str = Field(primary_key=True, max_length=16)
    action_class: str = Field(primary_key=True, max_length=16)
    step_s: int
    execution_s: int
    lease_s: int
    approval_s: int
    max_attempts: int
    updated_at: datetime = Field(default_factory=utcnow)
    updated_by: str | None = Field(default=None, max_length=32)


class Execution(SQLModel, table=True):
    """One submitted plan and its life (DESIGN §4). ``status`` changes only through core.fsm."""

    __tablename__ = "executions"
    __table_args__ = (
        # Covering on PostgreSQL (migration 0005): the Dashboard's aggregates over a window read the index only.
        Index(
            "ix_executions_tenant_created",
            "tenant_id",
            "created_at",
            postgresql_include=["status", "run_mode", "sla_class", "action_class", "started_at", "finished_at"],
        ),
        Index("ix_executions_tenant_status_created", "tenant_id", "status", "created_at"),
        Index("ix_executions_tenant_requester_created", "tenant_id", "requested_by", "created_at"),
        Index("ix_executions_status_updated", "status", "updated_at"),
        Index("ix_executions_status_deadline", "status", "deadline_at"),
        Index("ix_executions_status_approval_expires", "status", "approval_expires_at"),
        # The Executions list's name search (name ILIKE '%term%'): trigram GIN on PostgreSQL (migration 0005;
        # a plain index where pg_trgm cannot be created, and on SQLite).
        Index(
            "ix_executions_name_trgm",
            "name",
            postgresql_using="gin",
            postgresql_ops={"name": "gin_trgm_ops"},
        ),
        # Idempotency (core/idempotency.py): at most one *active* execution per key and tenant.
        # A partial unique index, so the database settles a race of two submits, not our code.
        Index(
            "ux_executions_idempotency_active",
            "tenant_id",
            "idempotency_key",
            unique=True,
            sqlite_where=text("idempotency_active = 1"),
            postgresql_where=text("idempotency_active"),
        ),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    tenant_id: str = Field(sa_column=Column(ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False))
    requested_by: str = Field(sa_column=Column(ForeignKey("users.id"), nullable=False))
    name: str = Field(max_length=200)
    description: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    plan_json: str = Field(sa_column=Column(Text, nullable=False))
    plan_hash: str = Field(max_length=64)
    # HMAC over what an approval binds to (core/approval_rules.py); NULL only for rows from before 0010.
    seal: str | None = Field(default=None, max_length=64)
    action_class: str = Field(max_length=16)
    approval_level: int
    sla_class: str = Field(max_length=16)
    execution_mode: str = Field(max_length=16)
    run_mode: str = Field(max_length=16)
    continue_on_error: bool = Field(default=False)
    status: str = Field(max_length=24)
    idempotency_key: str = Field(max_length=128)
    idempotency_active: bool = Field(default=True)
    attempt: int = Field(default=1)
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    approval_expires_at: datetime | None = Field(default=None)
    cancel_requested_at: datetime | None = Field(default=None)
    cancel_requested_by: str | None = Field(default=None, max_length=32)
    cancel_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # The execution this one reran (issue 16): a plain id, no foreign key, so retention may delete either.
    rerun_of: str | None = Field(default=None, max_length=32)
    # The requester asked, at submit, to be told when it ends (their own channels: core/notify/outbox.py).
    notify_on_finish: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, server_default=false()))
    # The effective priority: SLA class base plus the plan's requested ``priority:`` (core/priority.py).
    priority: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = Field(default=None)
    # started_at + the policy's execution timeout; the sweeper's "time out running executions" reads it.
    deadline_at: datetime | None = Field(default=None)
    finished_at: datetime | None = Field(default=None)
    # The rollback (DESIGN §14, core/engine/rollback.py): how it went (NULL: none ran), and while it runs the
    # outcome it was started for (JSON: status, message, error, DLQ note), which the execution ends with.
    rollback_status: str | None = Field(default=None, max_length=16)
    rollback_pending: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class ExecutionCount(SQLModel, table=True):
    """How many executions each (tenant, status, run mode) has: signed rows whose sum is the count.

    Kept by database triggers on ``executions`` (migration 0013), in the transaction of every insert, delete
    and change of status, so no writer can forget it: each adds a +1 row for the new state and a -1 row for
    the old one. Only ever inserted by writers, so they never wait for each other on a counter row; the
    sweeper folds the rows into one per group now and then (core/ops/execution_counts.py). The metrics
    scrape sums them instead of counting the executions' history. No foreign key: a deleted tenant's rows
    fold to zero and go. A migration that rebuilds ``executions`` on SQLite (batch mode copies the table)
    must create the triggers again (``COUNT_TRIGGERS`` in 0013).
    """

    __tablename__ = "execution_counts"

    id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    )
    tenant_id: str = Field(max_length=32)
    status: str = Field(max_length=24)
    run_mode: str = Field(max_length=16)
    n: int = Field(sa_column=Column(BigInteger, nullable=False))


class ExecutionStep(SQLModel, table=True):
    __tablename__ = "execution_steps"
    __table_args__ = (
        UniqueConstraint("execution_id", "step_index", name="uq_execution_steps_index"),
        # Read index-only by the Executions list's asset filter (asset -> execution ids).
        Index("ix_execution_steps_tenant_target_execution", "tenant_id", "target_asset_id", "execution_id"),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    execution_id: str = Field(sa_column=Column(ForeignKey("executions.id", ondelete="CASCADE"), nullable=False))
    tenant_id: str = Field(sa_column=Column(ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False))
    step_index: int
    name: str = Field(max_length=200)
    action: str = Field(max_length=64)
    target_asset_id: str = Field(sa_column=Column(ForeignKey("assets.id"), nullable=False))
    target_name: str = Field(max_length=128)
    action_class: str = Field(max_length=16)
    params_json: str = Field(sa_column=Column(Text, nullable=False))
    timeout_s: int | None = Field(default=None)
    # main, on_failure or on_cancel (db/enums.py StepPhase): rollback steps follow the main ones in step_index.
    phase: str = Field(default="main", max_length=16, sa_column_kwargs={"server_default": "main"})
    status: str = Field(default="pending", max_length=16)
    attempts: int = Field(default=0)
    output: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    started_at: datetime | None = Field(default=None)
    finished_at: datetime | None = Field(default=None)
    # Where the step's local process runs (core/engine/orphans.py): set when it starts one, never cleared (the
    # start time tells a later process that reuses the pid from it).
    process_host: str | None = Field(default=None, max_length=255)
    process_boot_id: str | None = Field(default=None, max_length=64)
    process_pgid: int | None = Field(default=None)
    process_start: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))


class StepOutputChunk(SQLModel, table=True):
    """A piece of one attempt's output, masked, written while the step runs (issue 16 item 1).

    Chunks of an attempt are appended in order (``seq``) in small batches by the step's watcher; their text
    joined is that attempt's output (masked whole, capped like ``execution_steps.output``). ``run`` is the
    execution's run (``executions.attempt``: a DLQ requeue starts a new one), ``attempt`` the step's attempt
    in that run. A step that ends before its first batch writes none: its output is on its step row only.
    """

    __tablename__ = "step_output_chunks"
    __table_args__ = (
        UniqueConstraint("execution_id", "step_index", "run", "attempt", "seq", name="uq_step_output_chunks_seq"),
        # The live views read "this execution's chunks after id N", always with the tenant.
        Index("ix_step_output_chunks_tenant_execution", "tenant_id", "execution_id", "id"),
    )

    id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    )
    execution_id: str = Field(sa_column=Column(ForeignKey("executions.id", ondelete="CASCADE"), nullable=False))
    tenant_id: str = Field(sa_column=Column(ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False))
    step_index: int
    run: int
    attempt: int
    seq: int
    text: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class Approval(SQLModel, table=True):
    """One approver's decision, bound to the plan hash they saw. ``step_index`` set = a level-3 step gate."""

    __tablename__ = "approvals"
    __table_args__ = (
        Index("ix_approvals_execution", "execution_id"),
        Index("ix_approvals_tenant_approver", "tenant_id", "approver_id"),
        Index(
            "ux_approvals_plan_decision",
            "execution_id",
            "approver_id",
            unique=True,
            sqlite_where=text("step_index IS NULL"),
            postgresql_where=text("step_index IS NULL"),
        ),
        Index(
            "ux_approvals_gate_decision",
            "execution_id",
            "approver_id",
            "step_index",
            unique=True,
            sqlite_where=text("step_index IS NOT NULL"),
            postgresql_where=text("step_index IS NOT NULL"),
        ),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    execution_id: str = Field(sa_column=Column(ForeignKey("executions.id", ondelete="CASCADE"), nullable=False))
    tenant_id: str = Field(sa_column=Column(ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False))
    approver_id: str = Field(sa_column=Column(ForeignKey("users.id"), nullable=False))
    decision: str = Field(max_length=16)
    plan_hash: str = Field(max_length=64)
    # HMAC over what an approval binds to (core/approval_rules.py); NULL only for rows from before 0010.
    seal: str | None = Field(default=None, max_length=64)
    step_index: int | None = Field(default=None)
    comment: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(default_factory=utcnow)


class ExecutionEvent(SQLModel, table=True):
    """The audit trail: every change of state of an execution, in order."""

    __tablename__ = "execution_events"
    __table_args__ = (
        Index("ix_execution_events_execution", "execution_id", "id"),
        Index("ix_execution_events_tenant_created", "tenant_id", "created_at"),
        # The tenant's audit chain in order (core/audit_links.py, core/ops/audit_chain.py); one link per number.
        Index("ux_execution_events_tenant_chain", "tenant_id", "chain_seq", unique=True),
        # The "→ queued" and "→ running" events only: the Dashboard pairs them for the queue wait.
        Index(
            "ix_execution_events_queue_flow",
            "tenant_id",
            "to_status",
            "created_at",
            "execution_id",
            sqlite_where=text("to_status = 'queued' OR to_status = 'running'"),
            postgresql_where=text("to_status = 'queued' OR to_status = 'running'"),
        ),
    )

    id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    )
    execution_id: str = Field(sa_column=Column(ForeignKey("executions.id", ondelete="CASCADE"), nullable=False))
    tenant_id: str = Field(sa_column=Column(ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False))
    kind: str = Field(max_length=32)
    from_status: str | None = Field(default=None, max_length=24)
    to_status: str | None = Field(default=None, max_length=24)
    step_index: int | None = Field(default=None)
    actor: str | None = Field(default=None, max_length=64)
    message: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    data_json: str = Field(default="{}", sa_column=Column(Text, nullable=False, server_default="{}"))
    created_at: datetime = Field(default_factory=utcnow)
    # The tenant's audit chain (core/audit_links.py), set when the transaction that wrote the event commits:
    # the link's number in the tenant's chain (gapless, shared with admin_events), the previous link's hash
    # and this link's HMAC-SHA256 under the tenant's key. NULL chain_seq: written before the chain existed.
    chain_seq: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    prev_hash: str | None = Field(default=None, max_length=64)
    hash: str | None = Field(default=None, max_length=64)


class QueueItem(SQLModel, table=True):
    """The outbox and the work lease: the next step of an execution that is queued or running.

    Committed before any broker message is sent. A worker owns the step while ``lease_token`` is set and
    ``lease_expires_at`` is in the future; ``available_at`` delays retries (backoff).
    """

    __tablename__ = "execution_queue"
    __table_args__ = (
        Index("ix_execution_queue_available", "available_at"),
        Index("ix_execution_queue_tenant_sla", "tenant_id", "sla_class"),
        Index("ix_execution_queue_lease", "lease_expires_at"),
        Index("ix_execution_queue_waiting", "waiting_for_asset_id", "waiting_since"),
        Index("ix_execution_queue_sort", "sort_at"),
        Index("ix_execution_queue_message", "message_id"),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    execution_id: str = Field(
        sa_column=Column(ForeignKey("executions.id", ondelete="CASCADE"), nullable=False, unique=True)
    )
    tenant_id: str = Field(sa_column=Column(ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False))
    sla_class: str = Field(max_length=16)
    step_index: int = Field(default=0)
    available_at: datetime = Field(default_factory=utcnow)
    # Its place in the order workers take work (core/priority.py); NULL for rows from before migration 0020.
    sort_at: datetime | None = Field(default=None)
    # The row's current broker message: its id (the job runner sends it under this id, after commit) and when
    # it was sent or last found still held by the broker. NULL dispatched_at: never sent (no dispatcher then).
    # The sweeper re-sends only a message the broker no longer holds (core/engine/outbox.py due_redispatch).
    dispatched_at: datetime | None = Field(default=None)
    message_id: str | None = Field(default=None, max_length=36)
    lease_token: str | None = Field(default=None, max_length=32)
    lease_expires_at: datetime | None = Field(default=None)
    claimed_by: str | None = Field(default=None, max_length=128)
    # Set while the execution waits for another execution's asset lock: FIFO hand-off per asset.
    waiting_for_asset_id: str | None = Field(default=None, max_length=32)
    # When it first queued for a lock: its place in line (kept after it is woken, until it gets the lock).
    waiting_since: datetime | None = Field(default=None)
    created_at: datetime = Field(default_factory=utcnow)


class DlqEntry(SQLModel, table=True):
    """Failed work waiting for an operator's decision (requeue or discard)."""

    __tablename__ = "execution_dlq"
    __table_args__ = (
        Index("ix_execution_dlq_tenant_open", "tenant_id", "resolved_at", "created_at"),
        Index("ix_execution_dlq_execution", "execution_id"),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    execution_id: str = Field(sa_column=Column(ForeignKey("executions.id", ondelete="CASCADE"), nullable=False))
    tenant_id: str = Field(sa_column=Column(ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False))
    reason: str = Field(max_length=64)
    step_index: int | None = Field(default=None)
    attempts: int = Field(default=0)
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(default_factory=utcnow)
    resolved_at: datetime | None = Field(default=None)
    resolution: str | None = Field(default=None, max_length=16)
    resolved_by: str | None = Field(default=None, max_length=32)
    comment: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class ExecutionLock(SQLModel, table=True):
    """Per-asset mutex (DESIGN §3.9): one row per locked (tenant, asset)."""

    __tablename__ = "execution_locks"
    __table_args__ = (
        Index("ix_execution_locks_execution", "execution_id"),
        Index("ix_execution_locks_expires", "expires_at"),
    )

    tenant_id: str = Field(sa_column=Column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True))
    asset_id: str = Field(sa_column=Column(ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True))
    execution_id: str = Field(sa_column=Column(ForeignKey("executions.id", ondelete="CASCADE"), nullable=False))
    fencing_token: int
    acquired_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime


class Worker(SQLModel, table=True):
    """A worker process (or the embedded runtime) and its heartbeat, for the console and the GO/NO-GO check."""

    __tablename__ = "workers"
    __table_args__ = (Index("ix_workers_last_seen", "last_seen_at"),)

    id: str = Field(primary_key=True, max_length=64)
    host: str = Field(max_length=255)
    pid: int
    kind: str = Field(default="dramatiq", max_length=16)
    threads: int = Field(default=1)
    started_at: datetime = Field(default_factory=utcnow)
    last_seen_at: datetime = Field(default_factory=utcnow)
    stopped_at: datetime | None = Field(default=None)
    current_execution_id: str | None = Field(default=None, max_length=32)
    current_step_index: int | None = Field(default=None)


class Runbook(SQLModel, table=True):
    """A saved plan in a tenant's runbook library (the console's Submit page)."""

    __tablename__ = "runbooks"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_runbooks_tenant_name"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    tenant_id: str = Field(sa_column=Column(ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False))
    name: str = Field(max_length=128)
    description: str = Field(default="", max_length=512)
    plan_text: str = Field(sa_column=Column(Text, nullable=False))
    updated_by: str | None = Field(default=None, max_length=64)
    updated_at: datetime = Field(default_factory=utcnow)
    # DESIGN §13: an admin's publication vouches for exactly this text (SHA-256 of ``plan_text``); any
    # later edit leaves the hash behind, so the runbook is unpublished until an admin publishes it again.
    published_hash: str | None = Field(default=None, max_length=64)
    published_by: str | None = Field(default=None, max_length=64)
    published_at: datetime | None = Field(default=None)
    # Issue 13 item 5: the user who created it; only they or a tenant admin change or delete it. None (rows from
    # before ownership existed, or seeded by ``init``): admins only.
    owner: str | None = Field(default=None, max_length=64)
    version: int = Field(default=1, sa_column=Column(Integer, nullable=False, server_default=text("1")))


class RunbookVersion(SQLModel, table=True):
    """One saved text of a runbook: every change adds a row, none is ever rewritten (issue 13 item 5).

    Keyed by the tenant and the runbook's *name*, not its row: the history outlives a deletion, and a runbook
    created again under the same name continues the numbering (the unique key also makes two concurrent saves
    of the same version collide instead of both winning).
    """

    __tablename__ = "runbook_versions"
    __table_args__ = (UniqueConstraint("tenant_id", "name", "version", name="uq_runbook_versions_tenant_name_version"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    tenant_id: str = Field(sa_column=Column(ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False))
    name: str = Field(max_length=128)
    version: int
    description: str = Field(default="", max_length=512)
    plan_text: str = Field(sa_column=Column(Text, nullable=False))
    text_hash: str = Field(max_length=64)
    owner: str | None = Field(default=None, max_length=64)
    created_by: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow)


class AdminEvent(SQLModel, table=True):
    """The tenant's administration trail: who changed a setting, a member, a secret (name only), an asset."""

    __tablename__ = "admin_events"
    __table_args__ = (
        Index("ix_admin_events_tenant_created", "tenant_id", "created_at"),
        Index("ux_admin_events_tenant_chain", "tenant_id", "chain_seq", unique=True),
    )

    id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    )
    tenant_id: str = Field(sa_column=Column(ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False))
    actor: str = Field(max_length=64)
    action: str = Field(max_length=64)
    subject: str = Field(default="", max_length=256)
    data_json: str = Field(default="{}", sa_column=Column(Text, nullable=False, server_default="{}"))
    created_at: datetime = Field(default_factory=utcnow)
    # The same tenant chain as execution_events' (core/audit_links.py).
    chain_seq: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    prev_hash: str | None = Field(default=None, max_length=64)
    hash: str | None = Field(default=None, max_length=64)


class AuditHead(SQLModel, table=True):
    """The head of a tenant's audit chain: its last link's number and hash (core/audit_links.py).

    Locked (``FOR UPDATE``) only at the very end of a transaction that wrote events, right before its commit.
    """

    __tablename__ = "audit_heads"

    tenant_id: str = Field(sa_column=Column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True))
    seq: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    hash: str | None = Field(default=None, max_length=64)
    updated_at: datetime = Field(default_factory=utcnow)


class AuditCheckpoint(SQLModel, table=True):
    """A signed statement of a tenant chain's head at a moment (core/ops/audit_checkpoints.py): what detects a
    truncated tail after the fact, and what a SIEM keeps to check the chain without the database."""

    __tablename__ = "audit_checkpoints"
    __table_args__ = (UniqueConstraint("tenant_id", "chain_seq", name="uq_audit_checkpoints_tenant_seq"),)

    id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    )
    tenant_id: str = Field(sa_column=Column(ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False))
    chain_seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    head_hash: str = Field(max_length=64)
    event_count: int = Field(sa_column=Column(BigInteger, nullable=False))  # links stored at that moment
    created_at: datetime = Field(default_factory=utcnow)
    signature: str = Field(max_length=128)  # Ed25519, base64 of the 64 bytes


class ApiToken(SQLModel, table=True):
    """A user's API token for one tenant (DESIGN §13): only its SHA-256 is stored; the value is shown once."""

    __tablename__ = "api_tokens"
    __table_args__ = (Index("ix_api_tokens_user", "user_id"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    token_hash: str = Field(max_length=64, unique=True)
    prefix: str = Field(max_length=16)  # the value's first characters, to tell tokens apart in lists
    user_id: str = Field(sa_column=Column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False))
    tenant_id: str = Field(sa_column=Column(ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False))
    name: str = Field(max_length=64)
    scopes: str = Field(max_length=64)  # comma-separated: read, submit, approve, admin
    created_by: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    revoked_at: datetime | None = Field(default=None)
    last_used_at: datetime | None = Field(default=None)


class ConsoleSession(SQLModel, table=True):
    """A console sign-in that survives reload and a second tab (core/identity/console_sessions.py).

    The browser holds ``opsc1.<id>.<mac>``: the MAC (HMAC-SHA256 under the console's session key, never
    stored) binds the id to ``user_id``, ``tenant_id`` and ``created_at``, so neither a guessed id nor a row
    edited in the database makes a valid token. ``handoff_hash``: SHA-256 of the one-time code the browser
    trades for its HttpOnly cookie (60 s, used once).
    """

    __tablename__ = "console_sessions"
    __table_args__ = (Index("ix_console_sessions_user", "user_id"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    user_id: str = Field(sa_column=Column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False))
    tenant_id: str = Field(sa_column=Column(ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False))
    auth: str = Field(max_length=16)  # how the user proved it: password or sso
    created_at: datetime = Field(default_factory=utcnow)
    last_seen_at: datetime = Field(default_factory=utcnow)  # idle expiry counts from here
    expires_at: datetime  # absolute: however active, a session ends here
    revoked_at: datetime | None = Field(default=None)  # signed out
    handoff_hash: str | None = Field(default=None, max_length=64)
    handoff_expires_at: datetime | None = Field(default=None)


class ReadOnlyCommand(SQLModel, table=True):
    """An argv prefix an admin declared read-only for the tenant: ``shell`` steps starting with it are ``read``."""

    __tablename__ = "read_only_commands"
    __table_args__ = (UniqueConstraint("tenant_id", "argv_json", name="uq_read_only_commands_tenant_argv"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    tenant_id: str = Field(sa_column=Column(ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False))
    argv_json: str = Field(max_length=1024)  # canonical JSON list of the prefix's words
    created_by: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow)


class Installation(SQLModel, table=True):
    """Facts about this installation as a whole (one row, id 1)."""

    __tablename__ = "installation"

    id: int = Field(default=1, primary_key=True)
    # A demo or single-operator box (``init --demo``): claimed names (``--as``, ``principal(name)``) are
    # accepted there, and ``check`` says NO-GO for production (DESIGN §13).
    claimed_identity: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, server_default=false()))
    created_at: datetime = Field(default_factory=utcnow)


class NotificationChannel(SQLModel, table=True):
    """Where a tenant's notifications go (core/notify/channels.py): a webhook URL or an email address.

    ``owner_user_id`` NULL: a tenant channel an admin set up (its ``events``); else a user's own opt-in to hear
    when their executions finish. The target is stored encrypted (a webhook URL often carries a token).
    """

    __tablename__ = "notification_channels"
    __table_args__ = (Index("ix_notification_channels_tenant", "tenant_id"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    tenant_id: str = Field(sa_column=Column(ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False))
    kind: str = Field(max_length=16)
    target_ciphertext: str = Field(sa_column=Column(Text, nullable=False))
    # What may be shown of the target: an address, or a URL's scheme and host only.
    target_hint: str = Field(max_length=256)
    format: str = Field(default="json", max_length=16)
    events: str = Field(max_length=128)  # comma-separated db/enums.py NotifyEvent values
    owner_user_id: str | None = Field(
        default=None, sa_column=Column(ForeignKey("users.id", ondelete="CASCADE"), nullable=True)
    )
    # A user's opt-in that hears only of the executions submitted with ``notify_on_finish``, not of all theirs.
    only_when_asked: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, server_default=false()))
    created_by: str = Field(max_length=32)
    created_at: datetime = Field(default_factory=utcnow)


class NotificationKey(SQLModel, table=True):
    """A tenant's webhook signing secret (HMAC-SHA256), encrypted like the secret store's values."""

    __tablename__ = "notification_keys"

    tenant_id: str = Field(sa_column=Column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True))
    ciphertext: str = Field(sa_column=Column(Text, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow)
    updated_by: str = Field(max_length=32)


class Notification(SQLModel, table=True):
    """The notification outbox (core/notify/outbox.py): one row per event and channel, written in the
    transaction of the change that causes it, delivered after commit with retries (core/notify/delivery.py)."""

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_due", "status", "next_attempt_at"),
        Index("ix_notifications_execution", "execution_id"),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    tenant_id: str = Field(sa_column=Column(ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False))
    channel_id: str = Field(
        sa_column=Column(ForeignKey("notification_channels.id", ondelete="CASCADE"), nullable=False)
    )
    execution_id: str = Field(sa_column=Column(ForeignKey("executions.id", ondelete="CASCADE"), nullable=False))
    event: str = Field(max_length=32)
    # The execution's status when the event happened, and who caused it (a username, a worker id).
    execution_status: str = Field(max_length=32)
    actor: str | None = Field(default=None, max_length=128)
    status: str = Field(default="pending", max_length=16)
    attempts: int = Field(default=0)
    next_attempt_at: datetime = Field(default_factory=utcnow)
    lease_expires_at: datetime | None = Field(default=None)
    last_error: str | None = Field(default=None, max_length=512)
    created_at: datetime = Field(default_factory=utcnow)
    delivered_at: datetime | None = Field(default=None)


class ChangeWindowSettings(SQLModel, table=True):
    """A tenant's change windows (core/change_windows.py): the validated rules document and what happens to a
    ``modify``+ plan outside them (``mode``: db/enums.py WindowMode; a wait is bounded by ``max_wait_s``)."""

    __tablename__ = "change_windows"

    tenant_id: str = Field(sa_column=Column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True))
    mode: str = Field(default="wait", max_length=16)
    max_wait_s: int = Field(default=86400)
    rules_json: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow)
    updated_by: str = Field(max_length=32)


class ChangeWindowOverride(SQLModel, table=True):
    """An admin's override of the change windows for one execution (four-eyes, core/usecases/windows.py): it
    counts once a second admin, neither the execution's requester nor the first admin, confirmed it."""

    __tablename__ = "change_window_overrides"
    __table_args__ = (UniqueConstraint("execution_id", name="uq_change_window_overrides_execution"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    tenant_id: str = Field(sa_column=Column(ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False))
    execution_id: str = Field(sa_column=Column(ForeignKey("executions.id", ondelete="CASCADE"), nullable=False))
    requested_by: str = Field(max_length=32)  # user ids
    reason: str = Field(max_length=512)
    created_at: datetime = Field(default_factory=utcnow)
    confirmed_by: str | None = Field(default=None, max_length=32)
    confirmed_at: datetime | None = Field(default=None)
