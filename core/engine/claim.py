"""Claiming a step: the claim's transaction, and what it yields (DESIGN §3.2, §3.7, §3.9).

``claim_step`` takes the queue row's free lease with a compare-and-set (a duplicate, late or early message
finds none and is a no-op), starts the execution on its first step (locks, deadline), re-checks the plan
hash, the approvals and the requester's permission, resolves secrets into the step's masker, and marks
the step ``running``. Its result is a ``StepPlan``: decided once, read by the run and the persist that
follow; only its ``WatchState`` moves while the step runs (the watcher thread writes it).

What runs comes from the verified hashed plan (DESIGN §13), parsed once per claim: the step's action,
target, class, params and timeout are read from ``plan_json`` at the step's index, never from the
``execution_steps`` row, which holds progress (and copies for reads). A stored plan that no longer
matches its hash, or an execution or step row whose copies disagree with it, is refused before any lock
is taken or secret read: the step fails with the reason, a ``plan_refused`` event names it, and the
execution ends ``failed`` in the dead-letter queue (reason ``plan_mismatch``).
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Update, bindparam, case, null
from sqlalchemy import select as sa_select
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, col

from core import metrics, plan_phases
from core.actions import registry
from core.approval_rules import approvals_satisfied, execution_sealed
from core.audit import record_event
from core.engine import gates, locks, outbox, rollback, secrets, windows_gate
from core.engine.finish import dead_letter, is_retryable
from core.fsm import TERMINAL, transition
from core.identity.permissions import may_run_class
from core.inventory.asset_view import asset_view
from core.plan_integrity import execution_differences, step_differences, verified_plan
from core.policies import cached_policy
from core.safety.masking import Masker
from core.schemas import AssetView, PolicyView
from core.transactions import lock_conflict, session_scope
from db.clock import utcnow
from db.enums import ActionClass, Role, RunMode, StepStatus
from db.enums import ExecutionStatus as S
from db.prepared import Prepared, record
from db.settings import get_settings
from db.tables import Asset, Execution, ExecutionStep, Membership, QueueItem, new_id

_STEPS = ExecutionStep.__table__  # type: ignore[attr-defined]
log = logging.getLogger(__name__)


class StopReason(StrEnum):
    """Why a running step was told to stop."""

    CANCEL = "cancel"
    EXECUTION_TIMEOUT = "execution_timeout"
    LEASE_LOST = "lease_lost"
    SHUTDOWN = "shutdown"


@dataclass
class WatchState:
    """What changes while the step runs: the deadline (the sweeper or a gate may move it) and whether
    the workers table was told which step this worker runs."""

    deadline_at_epoch: float
    reported_position: bool = False


@dataclass(frozen=True)
class StepPlan:
    """A step this worker holds the lease for, with everything needed to run and persist it."""

    execution_id: str
    tenant_id: str
    step_index: int
    step_count: int
    step_name: str
    action: str
    action_class: str  # the step's (metrics label)
    sla_class: str  # the execution's (metrics label)
    requested_by: str  # the user the work runs for (log context)
    token: str  # the lease
    worker_id: str
    lease_s: float  # the heartbeat lease (Settings.lease_ttl_s), not the policy's lock grace
    step_timeout_s: float
    asset: AssetView
    run_mode: RunMode
    retryable: bool
    attempts: int  # this attempt's number
    max_attempts: int
    continue_on_error: bool
    gated: bool  # level 3: every step waits for its go, so steps are never chained
    lock_tokens: dict[str, int]  # asset id → fencing token held at claim
    watch: WatchState
    masker: Masker = field(default_factory=Masker)  # this step's secret values; closed when the step ends
    params: dict[str, Any] = field(default_factory=dict)  # with secrets filled in (memory only)
    credential: str | None = None  # the asset's credential, resolved just in time (never persisted)
    refusal: str | None = None  # a run-time check failed: the step must not run
    refusal_code: str = "permission_denied"  # the DLQ reason when refused
    cancelled: bool = False  # a cancel was requested before the step could start
    run: int = 1  # the execution's run (``executions.attempt``: a DLQ requeue starts the next), keys its output
    fanout: plan_phases.FanoutGroup | None = None  # the fan-out this step is a target of (core/engine/fanout.py)
    # False: a fan-out's queue row pointed at a target that had ended (its worker died before concluding the
    # group); this claim took the lease for the group only, and the step does not run again.
    started: bool = True


PLAN_MISMATCH = "plan_mismatch"


@dataclass(frozen=True)
class _Spec:
    """The step as the verified plan says it runs; ``problem`` set (and the row's copies, never run) when the
    plan cannot be trusted."""

    name: str
    action: str
    target_id: str
    action_class: str
    params: dict[str, Any]
    timeout_s: int | None
    targets: frozenset[str]  # every asset id of the plan (the locks the execution takes)
    step_count: int
    problem: str | None = None
    fanout: plan_phases.FanoutGroup | None = None


@dataclass(frozen=True)
class ClaimRows:
    """The claim's one read: the queue row with its execution, step, target asset and requester's membership."""

    item: QueueItem
    execution: Execution
    step: ExecutionStep
    asset: Asset
    membership: Grant | None


@dataclass(frozen=True)
class Grant:
    """The requester's membership as the run-time check reads it (None on a ``ClaimRows``: no longer a member)."""

    role: str
    max_action_class: str | None


@dataclass(frozen=True)
class _Start:
    """Where the execution stands once it holds its locks: the fencing tokens and its deadline."""

    now: datetime
    lock_tokens: dict[str, int]
    deadline_at: datetime | None


def claim_step(execution_id: str, worker_id: str, message_id: str | None = None) -> StepPlan | None:
    """Claim the execution's next step in its own transaction (None: nothing for this worker to do).

    ``message_id``: the broker message this claim spends. When another free row sorts clearly before this one
    (core/priority.py), that row is claimed instead, and the two rows exchange their messages.

    A deadlock or serialization failure rolled the claim back whole, and nothing outside the database had
    happened yet: it is run once more at once; a second conflict logs one warning line and gives the
    message up (the sweeper sends it again), instead of a traceback per message.
    """
    for attempt in (1, 2):
        try:
            with session_scope() as session:
                execution_id, chosen = outbox.pick(session, execution_id, message_id)
                if chosen is None:
                    return claim_step_in(session, execution_id, worker_id, held=None)
                plan = claim_step_in(session, chosen.picked, worker_id, held=None)
                if plan is not None:  # the picked row is ours: its message goes to the own row, still live
                    assert message_id is not None  # pick returns None without one
                    outbox.swap_messages(session, chosen, message_id)
                    return plan
            # Another worker took the picked row first (or it parked in a line): this message is still the own
            # row's. Claimed in a transaction of its own, so its assets are locked in the one order.
            with session_scope() as session:
                return claim_step_in(session, execution_id, worker_id, held=None)
        except OperationalError as exc:
            if not lock_conflict(exc):
                raise
            if attempt == 2:
                reason = str(exc.orig).splitlines()[0]
                log.warning("claim of %s lost a lock conflict twice (%s); left to the sweeper", execution_id, reason)
    return None


def claim_step_in(
    session: Session,
    execution_id: str,
    worker_id: str,
    held: StepPlan | None,
    finished: dict[str, Any] | None = None,
    preloaded: ClaimRows | None = None,
) -> StepPlan | None:
    """Claim the queue row's step: take its free lease, or (``held``: chaining) keep the one we hold.

    The hot path: one read, one compare-and-set, one step update, one event. Policies come from a cache.
    ``finished`` (chaining only): the held step's completed columns, written by the same UPDATE that marks the
    next step running when the claim goes through (one statement for the two rows); when it returns None the
    caller writes them itself. ``preloaded`` (chaining only): the rows ``settle.into_next`` read already.
    """
    # A first step locks its plan's asset rows before anything else (the one order of core/engine/locks.py);
    # this is that lock when the execution has not started, so its rows are read once, under it.
    pre_locked = held is None and locks.lock_targets_if_unstarted(session, execution_id)
    row = preloaded if preloaded is not None and held is not None else _load(session, execution_id)
    if row is None or (held is None and not _free(row.item)):
        return None
    if S(row.execution.status) in TERMINAL:
        outbox.remove(session, execution_id)  # an ended execution keeps no work
        return None
    spec = _spec(row)
    if held is None and not pre_locked and spec.problem is None and row.execution.status in _NOT_STARTED:
        # It was started or ended when the lock looked, and is back to unstarted now (a requeue): lock, read again.
        row = _lock_first(session, row, spec)
        if row is None:
            return None
    policy = cached_policy(session, row.execution.sla_class, spec.action_class)
    if spec.problem is None and _held_at_gate(session, row, policy, worker_id):
        return None
    token = held.token if held is not None else new_id()
    if held is None and not outbox.take_lease(
        session,
        row.item.id,
        token=token,
        worker_id=worker_id,
        lease_s=get_settings().lease_ttl_s,
    ):
        return None
    if spec.problem is None and row.execution.status in {S.APPROVED, S.QUEUED}:
        start = _start(session, row, spec, policy, worker_id)
        if start is None:
            return None  # parked in an asset's line
    else:  # running, or refused: an untrusted plan takes no lock (it ends without running)
        tokens = held.lock_tokens if held is not None else locks.held(session, execution_id)
        start = _Start(now=utcnow(), lock_tokens=tokens, deadline_at=row.execution.deadline_at)
    plan = _plan(session, row, spec, policy, token=token, worker_id=worker_id, start=start)
    if spec.fanout is not None and row.step.status != StepStatus.PENDING.value:
        if finished is not None and held is not None:
            update_step(session, held, status=StepStatus.COMPLETED.value, **finished)
        return replace(plan, started=False)  # core/engine/fanout.py runs the group's other targets, or ends it
    if held is not None and finished is not None and held.step_index + 1 == plan.step_index:
        _complete_and_start(session, held, finished, attempts=plan.attempts, started_at=start.now)
    else:
        if finished is not None and held is not None:
            update_step(session, held, status=StepStatus.COMPLETED.value, **finished)
        running = {"attempts": plan.attempts, "started_at": start.now, "finished_at": None}
        update_step(session, plan, status=StepStatus.RUNNING.value, **running)
    _started(session, plan, spec)
    return plan


def _started(session: Session, plan: StepPlan, spec: _Spec) -> None:
    """The claimed step's ``step_started`` event, and ``plan_refused`` when its plan cannot be trusted."""
    tries = plan.max_attempts if plan.retryable else 1
    step_event(session, plan, "step_started", f"{plan.step_name}: attempt {plan.attempts} of {tries}")
    if spec.problem is not None:
        step_event(session, plan, "plan_refused", spec.problem, data={"reason": PLAN_MISMATCH})


_NOT_STARTED = frozenset({S.APPROVED, S.QUEUED})


def _lock_first(session: Session, row: ClaimRows, spec: _Spec) -> ClaimRows | None:
    """A first step: lock the plan's asset rows before the queue row (the one order of core/engine/locks.py).

    The claim waited for whoever held them (a release handing an asset on, another claim), so it reads its
    row again. An execution that started meanwhile is left alone: its row is a started execution's, which
    nobody holding asset rows may wait for, and the message that made it runnable again is on its way.
    """
    locks.lock_assets(session, spec.targets)
    fresh = _load(session, row.execution.id, again=True)
    if fresh is None or not _free(fresh.item) or fresh.execution.status not in _NOT_STARTED:
        return None
    if fresh.item.step_index != row.item.step_index:
        return None  # sent back to another step meanwhile: that step's own message claims it
    return fresh


def _spec(row: ClaimRows) -> _Spec:
    """The claimed step from the verified plan (parsed once per claim), or the reason it cannot be trusted."""
    execution, step = row.execution, row.step
    plan = verified_plan(execution)
    problem = None
    if plan is None:
        problem = "plan hash mismatch: the stored plan was changed after approval"
    elif not execution_sealed(execution):
        problem = (
            "seal mismatch: the plan hash, run mode, requester or level was changed outside the application"
            if execution.seal
            else "unsealed execution (submitted before migration 0010, or its seal was removed): submit it again"
        )
    elif (found := plan_phases.step_at(plan, step.step_index)) is None or found[0] != step.phase:
        problem = f"plan mismatch: step {step.step_index} is not in the approved plan"
    else:
        changed = execution_differences(execution, plan) + step_differences(found[1], step)
        if changed:
            fields = ", ".join(changed)
            problem = f"plan mismatch: the stored {fields} of step {step.step_index} differ from the approved plan"
    if plan is None or problem is not None:
        # Never run: these copies only label the refusal (the most cautious policy bounds it).
        return _Spec(
            name=step.name,
            action=step.action,
            target_id=step.target_asset_id,
            action_class=ActionClass.DEPLOY.value,
            params={},
            timeout_s=None,
            targets=frozenset(),
            step_count=len(plan["steps"]) if plan is not None else step.step_index + 1,
            problem=problem,
        )
    assert found is not None  # no problem: the lookup found the step
    phase, spec = found
    return _Spec(
        name=spec["name"],
        action=spec["action"],
        target_id=spec["target"],
        action_class=spec["action_class"],
        params=spec["params"],
        timeout_s=spec["timeout_s"],
        # Every step's target, rollback ones too: the execution holds them all from its start (DESIGN §3.9).
        targets=frozenset(s["target"] for _phase, s in plan_phases.flat_steps(plan)),
        # A rollback step runs on to the end of its own list (core/engine/rollback.py), not into the next.
        step_count=plan_phases.phase_range(plan, phase).stop,
        fanout=plan_phases.fanout_group(plan, step.step_index),
    )


def _load(session: Session, execution_id: str, *, again: bool = False) -> ClaimRows | None:
    """The claim's one read (``again``: read once more, overwriting what the session holds).

    Records, not ORM rows (db/prepared.py): the claim of an ordinary plan only reads them. A gated plan's
    claim may move its execution's deadline (a gate's wait) and a plan with rollback steps may record how its
    rollback went as it ends: those read their rows through the session, as ORM rows, instead.
    """
    found = _LOAD_RECORDS.first(session, {"claim_execution_id": execution_id})
    if found is None:
        return None
    values = [found[start:end] for start, end in _RECORD_SPANS]
    execution = record(Execution, values[1])
    if gates.needs_gate(execution) or rollback.has_rollback(execution):
        orm = session.execute(_LOAD[again], {"claim_execution_id": execution_id}).first()
        return None if orm is None else _row(*orm)
    role, max_action_class = found[_RECORD_SPANS[-1][1] :]
    grant = None if role is None else Grant(role, max_action_class)
    item, step, asset = record(QueueItem, values[0]), record(ExecutionStep, values[2]), record(Asset, values[3])
    return ClaimRows(item, execution, step, asset, grant)


def _row(
    item: QueueItem, execution: Execution, step: ExecutionStep, asset: Asset, member: Membership | None
) -> ClaimRows:
    grant = None if member is None else Grant(member.role, member.max_action_class)
    return ClaimRows(item, execution, step, asset, grant)


def _load_statement(*, again: bool, at_index: bool = False) -> Any:
    # ``at_index``: the step named by ``claim_step_index`` (a fan-out's further target), not the queue row's.
    step_index: Any = bindparam("claim_step_index") if at_index else QueueItem.step_index
    return (
        sa_select(QueueItem, Execution, ExecutionStep, Asset, Membership)
        .join(Execution, col(Execution.id) == QueueItem.execution_id)
        .join(
            ExecutionStep,
            (col(ExecutionStep.execution_id) == QueueItem.execution_id) & (col(ExecutionStep.step_index) == step_index),
        )
        .join(Asset, col(Asset.id) == ExecutionStep.target_asset_id)
        .outerjoin(
            Membership,
            (col(Membership.tenant_id) == Execution.tenant_id) & (col(Membership.user_id) == Execution.requested_by),
        )
        .where(col(QueueItem.execution_id) == bindparam("claim_execution_id"))
        .execution_options(populate_existing=again)
    )


# Built once: every claim sends it, and building a five-table join costs more CPU than running it.
_LOAD = {False: _load_statement(again=False), True: _load_statement(again=True)}


def _record_spans() -> list[tuple[int, int]]:
    spans, start = [], 0
    for entity in _RECORDED:
        end = start + len(entity.__table__.columns)
        spans.append((start, end))
        start = end
    return spans


def _load_records_statement() -> Any:
    """``_load_statement`` as plain columns (every column of the four tables, then the membership's two)."""
    return (
        sa_select(*(column for entity in _RECORDED for column in entity.__table__.columns))
        .add_columns(col(Membership.role), col(Membership.max_action_class))
        .select_from(QueueItem)
        .join(Execution, col(Execution.id) == QueueItem.execution_id)
        .join(
            ExecutionStep,
            (col(ExecutionStep.execution_id) == QueueItem.execution_id)
            & (col(ExecutionStep.step_index) == QueueItem.step_index),
        )
        .join(Asset, col(Asset.id) == ExecutionStep.target_asset_id)
        .outerjoin(
            Membership,
            (col(Membership.tenant_id) == Execution.tenant_id) & (col(Membership.user_id) == Execution.requested_by),
        )
        .where(col(QueueItem.execution_id) == bindparam("claim_execution_id"))
    )


_RECORDED: tuple[Any, ...] = (QueueItem, Execution, ExecutionStep, Asset)
_RECORD_SPANS = _record_spans()
_LOAD_RECORDS = Prepared(_load_records_statement())
_LOAD_AT = _load_statement(again=True, at_index=True)


def claim_target(held: StepPlan, step_index: int) -> StepPlan | None:
    """Claim another target of ``held``'s fan-out, in its own transaction, under the lease ``held`` holds.

    The run-time checks are each target's own (the plan's hash and rows, approvals, the requester's right, its
    asset's secrets and credential); the locks and deadline are the execution's, taken by the first claim.
    None: the lease was lost, or the step is no longer pending.
    """
    with session_scope() as session:
        if not outbox.renew_lease(session, held.execution_id, token=held.token, lease_s=held.lease_s):
            return None
        found = session.execute(
            _LOAD_AT, {"claim_execution_id": held.execution_id, "claim_step_index": step_index}
        ).first()
        if found is None:
            return None
        row = _row(*found)
        if row.step.status != StepStatus.PENDING.value or S(row.execution.status) is not S.RUNNING:
            return None
        spec = _spec(row)
        policy = cached_policy(session, row.execution.sla_class, spec.action_class)
        start = _Start(now=utcnow(), lock_tokens=held.lock_tokens, deadline_at=row.execution.deadline_at)
        plan = _plan(session, row, spec, policy, token=held.token, worker_id=held.worker_id, start=start)
        running = {"attempts": plan.attempts, "started_at": start.now, "finished_at": None}
        update_step(session, plan, status=StepStatus.RUNNING.value, **running)
        _started(session, plan, spec)
        return plan


def _free(item: QueueItem) -> bool:
    """Nobody holds the row's lease and it is due (a duplicate, early or late message finds it not free)."""
    return item.lease_token is None and item.available_at <= utcnow()


def _held_at_gate(session: Session, row: ClaimRows, policy: PolicyView, worker_id: str) -> bool:
    """A level-3 step without its go: park it, or (parked before and the wait is over) end the execution."""
    execution, step_index = row.execution, row.step.step_index
    cancelled = execution.cancel_requested_at is not None and not rollback.is_rollback(row.step)
    if not gates.needs_gate(execution) or cancelled:
        return False
    if gates.gate_open(session, execution, step_index):
        return False
    if gates.waiting_since(session, execution.id, step_index) is None:
        gates.park_for_gate(session, row.item, execution, step_index, policy.approval_s, actor=worker_id)
        return True
    message = f"no approver gave the go for step {step_index} within {policy.approval_s}s"
    dead_letter(
        session, execution, S.TIMEOUT, actor=worker_id, reason="gate_timeout", message=message, step_index=step_index
    )
    return True


def _start(session: Session, row: ClaimRows, spec: _Spec, policy: PolicyView, worker_id: str) -> _Start | None:
    """The first step: take every target's lock (or park in line) and move the execution to ``running``."""
    execution, item = row.execution, row.item
    if windows_gate.held(session, execution, item, spec.targets, worker_id):
        return None  # outside its change windows: parked until one opens, before any lock is taken
    run_policy = cached_policy(session, execution.sla_class, execution.action_class)
    targets = sorted(spec.targets)
    tokens = locks.acquire(
        session,
        tenant_id=execution.tenant_id,
        execution_id=execution.id,
        asset_ids=targets,
        expires_at=locks.lock_expiry(utcnow() + timedelta(seconds=run_policy.execution_s), policy.lease_s),
        waiting_since=item.waiting_since,
    )
    if isinstance(tokens, locks.Busy):
        _wait_for_lock(session, item, execution, tokens, run_policy.approval_s, worker_id)
        return None
    if item.waiting_since is not None:  # it got its turn: no longer in line
        metrics.LOCK_WAIT_SECONDS.observe((utcnow() - item.waiting_since).total_seconds())
        outbox.leave_line(session, item.id)
    # Acquiring may have waited for the previous holder's commit: the execution starts now.
    now = utcnow()
    deadline_at = now + timedelta(seconds=run_policy.execution_s)
    transition(
        session,
        execution_id=execution.id,
        tenant_id=execution.tenant_id,
        to=S.RUNNING,
        expected=S(execution.status),
        actor=worker_id,
        message="started",
        values={"started_at": now, "deadline_at": deadline_at},
    )
    metrics.QUEUE_WAIT_SECONDS.labels(execution.sla_class).observe((now - item.created_at).total_seconds())
    return _Start(now=now, lock_tokens=tokens, deadline_at=deadline_at)


def _wait_for_lock(
    session: Session, item: QueueItem, execution: Execution, busy: locks.Busy, bound_s: int, worker_id: str
) -> None:
    """An asset is busy: give back the lease and park in that asset's FIFO, or give up after ``bound_s``."""
    outbox.drop_lease(session, item.id)
    waited = utcnow() - item.created_at
    if waited >= timedelta(seconds=bound_s):
        message = f"{busy.describe()}: gave up after {waited.total_seconds():.0f}s"
        dead_letter(session, execution, S.TIMEOUT, actor=worker_id, reason="queue_timeout", message=message)
        return
    locks.park(session, item, busy, until=item.created_at + timedelta(seconds=bound_s), actor=worker_id)
    if busy.holder is None and busy.ahead is not None:
        locks.wake(session, busy.ahead)  # the lock is free: whoever is first in line must not sleep on


def _plan(
    session: Session, row: ClaimRows, spec: _Spec, policy: PolicyView, *, token: str, worker_id: str, start: _Start
) -> StepPlan:
    """Everything the run and the persist need, with the run-time checks done and secrets resolved."""
    execution, step, asset = row.execution, row.step, row.asset
    # A rollback step runs whatever cancel was asked: on_cancel steps run because of one (DESIGN §14).
    cancelled = execution.cancel_requested_at is not None and not rollback.is_rollback(step)
    bare = StepPlan(
        execution_id=execution.id,
        tenant_id=execution.tenant_id,
        step_index=step.step_index,
        step_count=spec.step_count,
        step_name=spec.name,
        action=spec.action,
        action_class=spec.action_class,
        sla_class=execution.sla_class,
        requested_by=execution.requested_by,
        token=token,
        worker_id=worker_id,
        lease_s=get_settings().lease_ttl_s,
        step_timeout_s=float(min(spec.timeout_s or policy.step_s, policy.step_s)),
        asset=asset_view(asset),
        run_mode=RunMode(execution.run_mode),
        retryable=spec.problem is None and is_retryable(spec.action_class, spec.action),
        attempts=step.attempts + 1,
        max_attempts=policy.max_attempts,
        continue_on_error=execution.continue_on_error,
        gated=gates.needs_gate(execution),
        lock_tokens=start.lock_tokens,
        watch=WatchState(deadline_at_epoch=start.deadline_at.timestamp() if start.deadline_at else time.time() + 3600),
        cancelled=cancelled and spec.problem is None,
        run=execution.attempt,
        fanout=spec.fanout,
    )
    if spec.problem is not None:
        return replace(bare, refusal=spec.problem, refusal_code=PLAN_MISMATCH)
    refusal = _refusal(session, row, spec, set(start.lock_tokens) == spec.targets)
    params: dict[str, Any] = {}
    credential = None
    if refusal is None and not cancelled:
        params, refusal = secrets.resolve_params(session, execution.tenant_id, step, spec.params, asset, bare.masker)
    if refusal is None and not cancelled and asset.credential_ref:
        credential, refusal = secrets.resolve_credential(session, execution.tenant_id, step, asset, bare.masker)
    return replace(bare, params=params, credential=credential, refusal=refusal)


def _refusal(session: Session, row: ClaimRows, spec: _Spec, holds_every_lock: bool) -> str | None:
    """Run-time authorisation (DESIGN §3.7): the action, approvals, the requester's current right, the locks.

    The plan's hash and its agreement with the rows were checked by ``_spec``.
    """
    execution, membership = row.execution, row.membership
    if registry.get_action(spec.action) is None:
        return f"unknown action {spec.action!r}"
    if not approvals_satisfied(session, execution):
        return "approvals no longer valid (an approver lost their role, or the plan changed)"
    role = Role(membership.role) if membership else None
    limit = ActionClass(membership.max_action_class) if membership and membership.max_action_class else None
    if not may_run_class(role, limit, ActionClass(spec.action_class)):
        metrics.PERMISSION_DENIALS.labels(f"run_{spec.action_class}", "run").inc()
        return f"permission denied: the requester may no longer run {spec.action_class} actions"
    if not holds_every_lock:
        return "lock lost: another execution may hold this execution's assets"
    return None


def update_step(session: Session, plan: StepPlan, **values: Any) -> None:
    """Write the claimed step's row (status, attempts, times, output)."""
    _step_update(tuple(sorted(values))).rowcount(
        session,
        {"row_execution_id": plan.execution_id, "row_step_index": plan.step_index}
        | {f"new_{name}": value for name, value in values.items()},
    )


@functools.cache
def _step_update(columns: tuple[str, ...]) -> Prepared:
    # Built once per set of columns: a step writes its row twice, and building the statement each time
    # (coercing every operand, then its cache key) cost more CPU than sending it.
    statement: Update = (
        _STEPS.update()
        .where(
            _STEPS.c.execution_id == bindparam("row_execution_id"), _STEPS.c.step_index == bindparam("row_step_index")
        )
        .values({name: bindparam(f"new_{name}") for name in columns})
    )
    return Prepared(statement)


def _complete_and_start(
    session: Session, held: StepPlan, finished: dict[str, Any], *, attempts: int, started_at: datetime
) -> None:
    """A chain's two step writes in one UPDATE: ``held``'s step completed (``finished``: output, error,
    finished_at), the next one running (its attempt counted, started now)."""
    _CHAIN_UPDATE.rowcount(
        session,
        {
            "row_execution_id": held.execution_id,
            "done_index": held.step_index,
            "next_index": held.step_index + 1,
            "done_status": StepStatus.COMPLETED.value,
            "run_status": StepStatus.RUNNING.value,
            "done_output": finished["output"],
            "done_error": finished["error"],
            "done_finished_at": finished["finished_at"],
            "run_attempts": attempts,
            "run_started_at": started_at,
        },
    )


def _chain_update() -> Update:
    done = _STEPS.c.step_index == bindparam("done_index")

    def pick(done_value: Any, run_value: Any) -> Any:
        return case((done, done_value), else_=run_value)

    statement: Update = (
        _STEPS.update()
        .where(
            _STEPS.c.execution_id == bindparam("row_execution_id"),
            _STEPS.c.step_index.in_([bindparam("done_index"), bindparam("next_index")]),
        )
        .values(
            status=pick(bindparam("done_status"), bindparam("run_status")),
            output=pick(bindparam("done_output"), _STEPS.c.output),
            error=pick(bindparam("done_error"), _STEPS.c.error),
            finished_at=pick(bindparam("done_finished_at"), null()),
            attempts=pick(_STEPS.c.attempts, bindparam("run_attempts")),
            started_at=pick(_STEPS.c.started_at, bindparam("run_started_at")),
        )
    )
    return statement


_CHAIN_UPDATE = Prepared(_chain_update())


def stale_result(session: Session, plan: StepPlan, *, ok: bool, error: str | None) -> None:
    """Record that the lease was lost while ``plan``'s step ran, so its result was refused (nothing else written)."""
    step_event(
        session,
        plan,
        "stale_result",
        "lease lost while the step ran; this worker's result was refused",
        data={"ok": ok, "error": error},
    )


def step_event(session: Session, plan: StepPlan, kind: str, message: str, data: dict[str, Any] | None = None) -> None:
    """Record an audit event about the claimed step, by this worker."""
    record_event(
        session,
        execution_id=plan.execution_id,
        tenant_id=plan.tenant_id,
        kind=kind,
        actor=plan.worker_id,
        step_index=plan.step_index,
        message=message,
        data=data,
    )
