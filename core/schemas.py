"""DTOs: the read-only views the public API returns. Never ORM rows, so callers can cache them freely."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from db.clock import utcnow
from db.enums import ActionClass, Role


class View(BaseModel):
    # defer_build: a view's validator and serializer are built when it is first used, not when this module is
    # imported; a one-shot command uses a handful of the ~40 views (issue 15: show's CPU).
    model_config = ConfigDict(frozen=True, defer_build=True)


class Principal(View):
    """Who is acting: a user in a tenant, with the role they held when resolved.

    Use cases re-read the role from the database before acting, so a revoked role takes effect at once.
    Only core's issuers (password sign-in, API token, single sign-on, a claimed name on a demo box) make
    one that use cases accept: ``proof`` seals the other fields (core/identity/principals.py), so a
    Principal built by hand, or copied with a field changed, is refused.

    ``auth`` says how the identity was verified (``password``, ``token``, ``sso``, ``claimed``);
    ``scopes`` limit what it may do on top of the role (a token's; every scope otherwise);
    ``authenticated_at`` is when the credential was presented (a token: when it was created).
    """

    tenant_id: str
    tenant: str
    user_id: str
    username: str
    role: Role
    max_action_class: ActionClass | None = None
    auth: str = ""
    scopes: tuple[str, ...] = ()
    authenticated_at: datetime | None = None
    token_id: str | None = None
    proof: str = Field(default="", repr=False)


class TokenView(View):
    """An API token as lists show it: never its value (shown once, at creation), only its first characters."""

    id: str
    name: str
    username: str
    tenant: str
    scopes: list[str]
    prefix: str
    created_by: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


class FanoutView(View):
    """Where a step expanded from a fan-out sits in it (DESIGN §14): the step as written, this target's place
    among ``of`` targets, and the limits it runs under (counts, as resolved at submit)."""

    step: str
    position: int
    of: int
    max_concurrency: int
    max_errors: int


class FanoutTargetView(View):
    """One target of a fan-out: its step and how it went (the per-target grid)."""

    index: int
    target: str
    status: str
    attempts: int
    started_at: datetime | None
    finished_at: datetime | None


class FanoutGroupView(View):
    """A fan-out step of an execution: its targets, its limits and how many ended each way."""

    step: str
    max_concurrency: int
    max_errors: int
    targets: list[FanoutTargetView]
    counts: dict[str, int]


class PlanStepView(View):
    """One step as the hashed plan says it runs (DESIGN §13 "what the approver sees is what runs").

    Read from the execution's canonical plan, the text its hash covers and the worker executes from: the
    action, the target (``target_id`` is the asset id the plan names; ``target`` its current name), the
    effective class, the timeout and ``params`` in canonical form with defaults filled and secret
    references as written (``{{ secret:NAME }}``), never a value. ``dry_run`` is what the action's dry run
    says it would do (secrets masked); ``dry_run_ok`` False when the dry run already sees a problem.
    """

    index: int
    name: str
    action: str
    target: str
    target_id: str
    action_class: str
    timeout_s: int | None
    params: dict[str, Any]
    dry_run: str
    dry_run_ok: bool
    # The timeout the step runs with: ``timeout_s`` capped by the current policy (None: no policy row).
    step_limit_s: int | None = None
    # main, or the rollback list it is in (on_failure, on_cancel: DESIGN §14); its index follows the main steps.
    phase: str = "main"
    fanout: FanoutView | None = None  # set on each step a fan-out step was expanded into


class StepView(View):
    """A step of an execution: what runs (from the hashed plan, as ``PlanStepView``) and how it went.

    ``params`` and ``dry_run`` are None only when the stored plan cannot be read (``plan_intact`` False on
    the execution); the worker then refuses to run it.
    """

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
    params: dict[str, Any] | None = None
    dry_run: str | None = None
    step_limit_s: int | None = None  # the timeout it runs with (``PlanStepView.step_limit_s``)
    phase: str = "main"  # main, on_failure or on_cancel (DESIGN §14)
    fanout: FanoutView | None = None  # the fan-out it is a target of (``ExecutionView.fanouts`` groups them)


class OutputChunkView(View):
    """A piece of one attempt's output (masked), in the order written: what live views append."""

    id: int  # increasing within an execution: read the next ones with ``after_id``
    step_index: int
    run: int  # the execution's run (``ExecutionView.attempt``: a DLQ requeue starts the next)
    attempt: int  # the step's attempt within that run
    text: str
    created_at: datetime


class AttemptOutputView(View):
    """One attempt of a step and its whole output (masked, capped), kept apart from the other attempts."""

    step_index: int
    run: int
    attempt: int
    output: str
    latest: bool  # the step's current attempt (the one its row describes)


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
    # False when the stored plan no longer matches its hash or its step rows (tampered): approving is refused
    # and the worker refuses to run it.
    plan_intact: bool = True
    # A unified diff of the rendered steps against the last earlier approved execution of the same plan name
    # in the tenant (``compared_with``); None when there is none or nothing changed.
    changes_since_approved: str | None = None
    compared_with: str | None = None
    # Seconds of running time the execution gets under the current policy (waits at level-3 gates do not
    # count); ``deadline_at`` is when it runs out, once started (a gate's go moves it by the wait).
    execution_limit_s: int | None = None
    deadline_at: datetime | None = None
    # The values the plan's declared inputs were bound with, from the hashed plan (a secret_ref as its
    # reference, never a value); None when the plan declares none (DESIGN §14).
    inputs: dict[str, Any] | None = None
    # The execution this one reran (``rerun``: a new execution of the same plan); None for a fresh submit.
    rerun_of: str | None = None
    # Rollback (DESIGN §14): the plan's on_failure and on_cancel steps, apart from ``steps`` (``skipped``
    # when the execution ended without them), and how the rollback went: None (none ran), running,
    # completed or failed. The execution's status stays the outcome the rollback was run for.
    rollback_steps: list[StepView] = []
    rollback_status: str | None = None
    # Which work workers take first (core/priority.py): the SLA class's base plus the plan's ``priority:``.
    priority: int = 0
    # Each fan-out step with its targets (DESIGN §14); their steps are in ``steps`` too, one per target.
    fanouts: list[FanoutGroupView] = []


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
    # Labs only, set by an admin on the asset (never by a plan): ssh connects without a known host key.
    skip_host_key: bool = False


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
    # The assets it may be used on (DESIGN §13); None = any asset of the tenant.
    allowed_assets: list[str] | None = None


class TenantSettingsView(View):
    tenant: str
    mode: str
    max_live_level: int
    over_level: str
    max_priority: int  # the highest ``priority:`` a plan of the tenant may request (core/priority.py)
    # From this many targets a fan-out needs one approval level more (core/plan_fanout.py); 0: never.
    fanout_approval_targets: int = 10


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
    # Each step's dict carries its declared ``timeout_s`` and ``step_limit_s``, the timeout it runs with.
    steps: list[dict[str, Any]]
    secret_names: list[str]
    execution_limit_s: int | None = None  # seconds of running time the execution gets (gate waits excluded)
    # The values the plan's declared inputs were bound with (a secret_ref as its reference); None: it declares none.
    inputs: dict[str, Any] | None = None


class PlanInputView(View):
    """One input a plan or runbook declares (DESIGN §14): what a form asks for, and what it accepts."""

    name: str
    type: Literal["string", "int", "bool", "choice", "asset", "secret_ref"]
    required: bool
    default: str | int | bool | None = None
    pattern: str | None = None
    description: str = ""
    choices: list[str | int] | None = None


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
    # Only an execution of the viewer's tenant is named; ``busy`` says whether the worker runs a step at all.
    current_execution_id: str | None
    current_step_index: int | None
    busy: bool = False

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
    # True while an admin's publication vouches for exactly this text (its steps may then run as `read`);
    # any edit ends it. ``published_by``/``published_at`` tell who vouched, even after an edit.
    published: bool = False
    published_by: str | None = None
    published_at: datetime | None = None
    # SHA-256 of ``plan_text``: pass it to ``publish_runbook`` to publish exactly the text you reviewed.
    text_hash: str = ""
    # Who may change it besides a tenant admin (None: admins only), and its current version (issue 13 item 5).
    owner: str | None = None
    version: int = 1
    # What the server derives from its steps under the tenant's declarations, exactly as a submit would: the
    # level to show, never a claim in ``description``. None when its text no longer validates.
    action_class: str | None = None
    approval_level: int | None = None


class RunbookVersionView(View):
    """One saved text of a runbook (every change adds one; none is rewritten)."""

    name: str
    version: int
    description: str
    plan_text: str
    text_hash: str
    owner: str | None
    created_by: str
    created_at: datetime


class ReadOnlyCommandView(View):
    """An argv prefix an admin declared read-only: ``shell`` steps whose argv starts with it are ``read``."""

    id: str
    argv: list[str]
    created_by: str
    created_at: datetime


class ExecutionPage(View):
    """One page of the Executions list, newest first, and the cursor of the next page (None: this is the last).

    Pass ``next_cursor`` back as ``before=`` to read the next page; it is opaque and stays valid while rows
    are added (keyset pagination: no row is skipped or repeated when new executions arrive).
    """

    items: list[ExecutionSummary]
    next_cursor: str | None


class InboxItem(View):
    """A decision waiting in an approver's inbox: a plan to approve (``kind="plan"``) or, for a level-3
    execution, the go for one step (``kind="gate"``; ``step_*`` fields set).

    ``approval_expires_at`` is when the wait ends: the approval window of a plan, the gate's deadline of a step.
    ``approved_by`` lists who already approved the current plan hash.
    """

    kind: Literal["plan", "gate"]
    execution_id: str
    name: str
    requested_by: str
    action_class: str
    approval_level: int
    sla_class: str
    run_mode: str
    plan_hash: str
    approvals_required: int
    approved_by: list[str]
    created_at: datetime
    approval_expires_at: datetime | None
    step_index: int | None = None
    step_name: str | None = None
    step_target: str | None = None
    step_action_class: str | None = None
    # What will run (the hashed plan's steps, rendered, with their dry runs), and what changed since the last
    # approved run of the same plan name (as ``ExecutionView``). Empty / None when asked for without detail.
    steps: list[PlanStepView] = Field(default_factory=list)
    plan_intact: bool = True
    changes_since_approved: str | None = None
    compared_with: str | None = None

    @property
    def time_left_s(self) -> float | None:
        """Seconds until the wait ends (negative once past), or None when it has no deadline."""
        return None if self.approval_expires_at is None else (self.approval_expires_at - utcnow()).total_seconds()


class DurationStats(View):
    """Run times (``finished_at - started_at``) of one (SLA class, action class), beside the policy's limit.

    ``breaches``: runs longer than ``limit_s`` or ended ``timeout``.
    """

    sla_class: str
    action_class: str
    runs: int
    p50_s: float | None
    p95_s: float | None
    limit_s: int | None
    breaches: int


class HourCount(View):
    """Executions created in one hour of the window (UTC), and how the ended ones came out."""

    hour: datetime
    total: int
    completed: int
    failed: int


class RunModeStats(View):
    """Dry-run or live executions of the window: how many, how many ran to an end, how many completed."""

    run_mode: str
    total: int
    ended: int
    completed: int
    success_rate: float | None


class DashboardView(View):
    """The Dashboard: the tenant's executions created since ``since`` plus the current queues.

    ``success_rate`` = completed / (completed + failed + partial + timeout); None without such runs.
    ``sampled`` is True when percentiles come from a bounded sample (SQLite) rather than the database.
    """

    tenant: str
    since: datetime
    until: datetime
    total: int
    by_status: dict[str, int]
    success_rate: float | None
    durations: list[DurationStats]
    sla_breaches: int
    queue_wait_p50_s: float | None
    queue_wait_p95_s: float | None
    dlq_open: int
    approvals_waiting: int
    oldest_approval_at: datetime | None
    per_hour: list[HourCount]
    run_modes: list[RunModeStats]
    sampled: bool

    @property
    def oldest_approval_age_s(self) -> float | None:
        """Age of the oldest execution waiting for approval, in seconds (None if none waits)."""
        return None if self.oldest_approval_at is None else (utcnow() - self.oldest_approval_at).total_seconds()


class ChainBreak(View):
    """A broken link of a tenant's audit chain (core/ops/audit_chain.py).

    ``problem``: ``modified`` (a link no longer matches its HMAC, or its predecessor), ``deleted`` (links are
    missing: a gap in the numbers, e.g. a deleted event or a whole deleted execution; or an execution's trail
    ends before its last change of status), ``inserted`` (a row the chain does not pass through), ``truncated``
    (the head or a signed checkpoint says the chain is longer than what is stored), ``wrong_key`` (no link
    matches under this installation's key: recomputed without it, or the secret key changed) or
    ``bad_signature`` (a checkpoint whose signature does not verify).
    ``source`` says what is broken: an ``execution`` event, an ``admin`` event, the ``chain`` itself (gaps,
    head) or a ``checkpoint``; ``execution_id``/``event_id`` name the row where it shows, ``seq`` the link
    number, when there is one.
    """

    execution_id: str | None
    event_id: int | None
    problem: str
    detail: str
    source: str = "execution"
    seq: int | None = None


class ChainReport(View):
    """What verifying the tenant's audit chain found (for one execution: the chain, judged where it concerns it).

    ``unchained_events`` were written before the chain existed (no link number): reported, not judged, as
    long as they all precede the tenant's first link. ``pruned_executions`` have a ``pruned`` event (retention
    removed their older events, and that event vouches for the links it removed). ``links`` counts the links
    read, ``head_seq`` the head's link number, ``checkpoints`` the signed checkpoints checked (the newest at
    ``checkpoint_seq``). ``breaks`` lists what is broken, in chain order (capped); ``first_break`` is the first.
    """

    tenant: str
    execution_id: str | None
    executions: int
    events: int
    unchained_events: int
    unchained_executions: int
    pruned_executions: int
    intact: bool
    first_break: ChainBreak | None
    breaks: list[ChainBreak]
    admin_events: int = 0
    links: int = 0
    head_seq: int = 0
    checkpoints: int = 0
    checkpoint_seq: int | None = None


class CheckpointView(View):
    """A signed checkpoint of a tenant's audit chain: Ed25519 over ``payload`` (core/ops/audit_checkpoints.py)."""

    tenant: str
    seq: int
    head_hash: str
    event_count: int
    created_at: datetime
    signature: str
    payload: str


class PruneReport(View):
    """What ``prune`` removed (or, with ``dry_run``, would remove) from a tenant's ended executions."""

    tenant: str
    cutoff: datetime
    dry_run: bool
    executions: int
    events_deleted: int
    outputs_cleared: int
    batches: int


class CheckItem(View):
    """One item of the GO/NO-GO check: GO when ``ok``; ``reason`` says what was seen either way."""

    name: str
    ok: bool
    reason: str


class DryRunStep(View):
    """What one step would do, as its action's ``dry_run`` describes it (secrets masked)."""

    index: int
    name: str
    action: str
    target: str
    ok: bool
    description: str
    error: str | None


class QueueDepth(View):
    """Work in the queue of one SLA class: waiting to start, running (leased), parked for an asset lock."""

    sla_class: str
    waiting: int
    running: int
    parked: int


class AdminEventView(View):
    """One entry of the tenant's administration trail."""

    id: int
    actor: str
    action: str
    subject: str
    data: dict[str, Any]
    created_at: datetime


class ChannelView(View):
    """A notification channel (core/notify/channels.py). ``target`` is what may be shown: an email address,
    or a webhook URL's scheme and host only (the rest may carry a token)."""

    id: str
    kind: str
    target: str
    format: str
    events: list[str]
    owner: str | None  # the user whose own opt-in it is; None: the tenant's
    created_at: datetime
    only_when_asked: bool = False  # an opt-in hearing only of executions submitted with ``notify_on_finish``


class NotificationTestResult(View):
    """What a test notification to one channel came to."""

    channel_id: str
    delivered: bool
    detail: str


class ChangeWindowsView(View):
    """A tenant's change windows (core/usecases/windows.py): the rules as a document ``set_change_windows`` takes
    back, and whether an untagged asset may be changed now (``next_opening``: when next, None: not within a year)."""

    tenant: str
    mode: str  # wait | refuse
    max_wait_s: int
    windows: list[dict[str, Any]]
    blackouts: list[dict[str, Any]]
    open_now: bool
    next_opening: datetime | None
    updated_at: datetime | None
    updated_by: str | None  # a username


class WindowOverrideView(View):
    """An override of the change windows for one execution: ``active`` once a second admin confirmed it."""

    execution_id: str
    requested_by: str  # usernames
    reason: str
    created_at: datetime
    confirmed_by: str | None
    confirmed_at: datetime | None
    active: bool
