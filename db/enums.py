"""Values stored in columns. Stored as plain strings (no database ENUM types) so migrations stay simple."""

from __future__ import annotations

from enum import StrEnum


class ExecutionStatus(StrEnum):
    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    PARTIAL = "partial"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"


class StepStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"
    UNKNOWN = "unknown"


class StepPhase(StrEnum):
    """Which of a plan's step lists a step row belongs to (DESIGN §14): the plan's own steps, or a rollback."""

    MAIN = "main"
    ON_FAILURE = "on_failure"
    ON_CANCEL = "on_cancel"


class RollbackStatus(StrEnum):
    """How an execution's rollback went (``executions.rollback_status``; NULL: none ran)."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


class ActionClass(StrEnum):
    """Risk of an action, ordered: read < modify < deploy."""

    READ = "read"
    MODIFY = "modify"
    DEPLOY = "deploy"

    @property
    def rank(self) -> int:
        return _ACTION_RANK[self]


_ACTION_RANK = {ActionClass.READ: 0, ActionClass.MODIFY: 1, ActionClass.DEPLOY: 2}


class SlaClass(StrEnum):
    FAST = "fast"
    MEDIUM = "medium"
    LONG = "long"


class ExecutionMode(StrEnum):
    IMMEDIATE = "immediate"
    BACKGROUND = "background"


class RunMode(StrEnum):
    DRY_RUN = "dry_run"
    LIVE = "live"


class TenantMode(StrEnum):
    OFF = "off"
    DRY_RUN = "dry_run"
    LIVE = "live"


class OverLevelBehaviour(StrEnum):
    """What a live tenant does with an execution above its highest live approval level."""

    DRY_RUN = "dry_run"
    REFUSE = "refuse"


class Role(StrEnum):
    """Roles per tenant, ordered: each includes the rights of the ones before it."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    APPROVER = "approver"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _ROLE_RANK[self]


_ROLE_RANK = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.APPROVER: 2, Role.ADMIN: 3}


class Connection(StrEnum):
    LOCAL = "local"
    SSH = "ssh"
    HTTP = "http"


class Decision(StrEnum):
    APPROVED = "approved"
    REJECTED = "rejected"


class DlqResolution(StrEnum):
    REQUEUED = "requeued"
    DISCARDED = "discarded"
    SUPERSEDED = "superseded"  # requeued with changes: a new execution of the edited plan took its place


class NotifyEvent(StrEnum):
    """What a notification tells (core/notify): an approval waits, work entered the DLQ, an execution ended."""

    APPROVAL_WAITING = "approval_waiting"
    DLQ = "dlq"
    FINISHED = "finished"


class ChannelKind(StrEnum):
    WEBHOOK = "webhook"
    EMAIL = "email"


class ChannelFormat(StrEnum):
    """The body a webhook gets: our JSON, or a Slack-compatible ``{"text": ...}``."""

    JSON = "json"
    SLACK = "slack"


class NotificationStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class WindowMode(StrEnum):
    """What a tenant does with a ``modify`` or ``deploy`` plan outside its change windows (core/change_windows.py)."""

    WAIT = "wait"  # it is queued and starts when a window opens (bounded by the tenant's max_wait_s)
    REFUSE = "refuse"  # the submit is refused, naming the next opening
