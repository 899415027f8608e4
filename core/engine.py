"""The engine: runs the next step of an execution, durably (DESIGN §3.2-3.5, §6, §7).

``process(execution_id)`` is what a worker does with a message (which carries the id only):

1. **claim** (one transaction): take the queue row's lease with a compare-and-set; a duplicate, late or
   early message finds no free lease and is a no-op. Start the execution on its first step (deadline
   from the policy), re-check the plan hash, the approvals and the requester's permission, mark the step
   ``running`` and count the attempt. Secrets are resolved here, in memory only, into a per-step masker.
2. **run** the action with a stop event; a watcher thread renews the lease, and sets the stop event
   within ``watch_interval_s`` of a cancel request, the execution deadline, a lost lease or a shutdown.
3. **persist** (one transaction): only while the lease is still ours (a stale result is refused and
   audited). Decide the next state: next step (dispatched after commit), retry with backoff (read or
   idempotent steps, up to the policy's attempts), or the end: completed, partial, failed, cancelled,
   timeout, with a DLQ entry for failed and timed-out work.

Crashed workers are handled by core/recovery.py (the sweeper), which shares ``finish_execution`` and ``dead_letter``.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import random
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from core import metrics, rbac
from core.actions import registry
from core.actions.context import ActionResult, OutputSink, StepContext
from core.approvals import approvals_satisfied
from core.audit import record_event
from core.fsm import TERMINAL, transition
from core.gates import gate_open, needs_gate, park_for_gate, waiting_since
from core.inventory import asset_view
from core.logs import current_trace_id, log_context
from core.plans import plan_hash
from core.policies import cached_policy
from core.ports import dispatch_committed
from core.safety import mutex, secret_resolution
from core.safety.masking import Masker
from core.transactions import session_scope
from db.clock import utcnow
from db.enums import ActionClass, Role, RunMode, StepStatus
from db.enums import ExecutionStatus as S
from db.settings import get_settings
from db.tables import Asset, DlqEntry, Execution, ExecutionStep, Membership, QueueItem, Worker, new_id

log = logging.getLogger(__name__)

_shutdown = threading.Event()


class Outcome(StrEnum):
    """What ``process`` did with a message."""

    NOOP = "noop"  # nothing to do: duplicate, late, early, or already ended
    ADVANCED = "advanced"  # a step finished and the next one was queued
    RETRY = "retry"  # the step failed and will be retried after a backoff
    RELEASED = "released"  # the worker is shutting down; the step was handed back untouched
    FINISHED = "finished"  # the execution ended
    STALE = "stale"  # the lease was lost while the step ran; its result was refused


class StopReason(StrEnum):
    CANCEL = "cancel"
    EXECUTION_TIMEOUT = "execution_timeout"
    LEASE_LOST = "lease_lost"
    SHUTDOWN = "shutdown"


@dataclass
class Claim:
    """A step this worker holds the lease for, with everything needed to run and persist it."""

    execution_id: str
    tenant_id: str
    step_index: int
    step_count: int
    token: str
    worker_id: str
    lease_s: int
    step_timeout_s: float
    deadline_at_epoch: float
    action: str
    params: dict[str, Any]
    asset: Any
    run_mode: RunMode
    retryable: bool
    attempts: int
    max_attempts: int
    continue_on_error: bool
    masker: Masker = field(default_factory=Masker)
    refusal: str | None = None  # a run-time check failed: the step must not run
    cancelled: bool = False  # a cancel was requested before the step could start
    step_name: str = ""
    lock_tokens: dict[str, int] = field(default_factory=dict)  # asset id → fencing token held at claim
    gated: bool = False  # level 3: every step waits for its go, so steps are never chained
    credential: str | None = None  # the asset's credential, resolved just in time (never persisted)
    reported_position: bool = False  # the watcher told the workers table which step this worker runs
    action_class: str = ""  # the step's (metrics label)
    sla_class: str = ""  # the execution's (metrics label)
    requested_by: str = ""  # the user the work runs for (log context)


def worker_identity(kind: str = "inline") -> str:
    """An id naming this process: kind, host and pid, plus a random suffix so restarts differ."""
    return f"{kind}:{socket.gethostname()}:{os.getpid()}:{new_id()[:6]}"


def request_shutdown() -> None:
    """Ask running retryable steps of this process to stop and hand their work back (graceful stop)."""
    _shutdown.set()


def reset_shutdown() -> None:
    """Clear a previous shutdown request (a runtime started again in the same process, e.g. in tests)."""
    _shutdown.clear()


def process(execution_id: str, *, worker_id: str) -> Outcome:
    """Run the next step of ``execution_id`` if its lease is free; see the module docstring.

    With ``OPSC_CHAIN_STEPS`` (the default) a worker that completes a step keeps the lease and claims the
    next one in the same transaction, so a plan's steps run back to back without a broker round trip;
    the queue row stays the outbox, and a message is sent only when the chain breaks.
    """
    # Every log record of this call carries the execution, worker and trace (the message's id, bound by
    # the worker middleware, or a fresh one); each claimed step adds its index, tenant and requester.
    with log_context(execution_id=execution_id, worker=worker_id, trace_id=current_trace_id()):
        return _process(execution_id, worker_id)


def _process(execution_id: str, worker_id: str) -> Outcome:
    claim = _claim(execution_id, worker_id)
    if claim is None:
        return Outcome.NOOP
    while True:
        try:
            with log_context(step=claim.step_index, tenant=claim.tenant_id, actor=claim.requested_by):
                result, reason, output = _run(claim)
                outcome, delay_s, chained = _persist(claim, result, reason, output)
        finally:
            claim.masker.close()  # the step is over: its secret values leave memory with it
        if chained is None:
            break
        claim = chained
    if outcome in {Outcome.ADVANCED, Outcome.RETRY, Outcome.RELEASED}:
        dispatch_committed([execution_id], delay_s=delay_s)
    return outcome


def run_inline(execution_id: str, *, max_steps: int = 1000) -> Outcome:
    """Run an execution to its end in the calling thread (immediate mode), through the same code.

    Stops at the first step it cannot run at once (a retry backoff, a lease held elsewhere) and hands
    the execution to the background workers instead.
    """
    worker_id = worker_identity("inline")
    outcome = Outcome.NOOP
    for _ in range(max_steps):
        outcome = process(execution_id, worker_id=worker_id)
        if outcome is not Outcome.ADVANCED:
            break
    if outcome is Outcome.NOOP:
        dispatch_committed([execution_id])  # could not start here: the background takes it
    return outcome


# -- claim -------------------------------------------------------------------------------------------


def _claim(execution_id: str, worker_id: str) -> Claim | None:
    with session_scope() as session:
        return _claim_in(session, execution_id, worker_id, held=None)


def _claim_in(session: Session, execution_id: str, worker_id: str, held: Claim | None) -> Claim | None:
    """Claim the queue row's step: take its free lease, or (``held``: chaining) keep the one we hold.

    The hot path: one read (queue row, execution, step, asset and the requester's membership together),
    one compare-and-set, one step update, one event. Policies come from a short-lived cache.
    """
    now = utcnow()
    row = session.execute(
        sa_select(QueueItem, Execution, ExecutionStep, Asset, Membership)
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
        .where(col(QueueItem.execution_id) == execution_id)
    ).first()
    if row is None:
        return None
    item, execution, step, asset, membership = row
    if held is None and (item.lease_token is not None or item.available_at > now):
        return None
    if S(execution.status) in TERMINAL:
        session.delete(item)  # an ended execution keeps no work
        return None
    policy = cached_policy(session, execution.sla_class, step.action_class)
    gated = needs_gate(execution) and execution.cancel_requested_at is None
    if gated and not gate_open(session, execution, step.step_index):
        _hold_at_gate(session, item, execution, step.step_index, policy.approval_s, worker_id)
        return None
    token = held.token if held is not None else new_id()
    if held is None:
        taken = session.execute(
            _QUEUE.update()
            .where(_QUEUE.c.id == item.id, _QUEUE.c.lease_token.is_(None))
            .values(lease_token=token, lease_expires_at=now + timedelta(seconds=policy.lease_s), claimed_by=worker_id)
        )
        if taken.rowcount != 1:  # type: ignore[attr-defined]
            return None
    plan = json.loads(execution.plan_json)
    targets = {s["target"] for s in plan["steps"]}
    deadline_at = execution.deadline_at
    if execution.status in {S.APPROVED, S.QUEUED}:
        run_policy = cached_policy(session, execution.sla_class, execution.action_class)
        deadline_at = now + timedelta(seconds=run_policy.execution_s)
        tokens = mutex.acquire(
            session,
            tenant_id=execution.tenant_id,
            execution_id=execution.id,
            asset_ids=sorted(targets),
            expires_at=mutex.lock_expiry(deadline_at, policy.lease_s),
            waiting_since=item.waiting_since,
        )
        if isinstance(tokens, mutex.Busy):
            _wait_for_lock(session, item, execution, tokens, run_policy.approval_s, worker_id)
            return None
        if item.waiting_since is not None:  # it got its turn: no longer in line
            metrics.LOCK_WAIT_SECONDS.observe((utcnow() - item.waiting_since).total_seconds())
            session.execute(
                _QUEUE.update().where(_QUEUE.c.id == item.id).values(waiting_for_asset_id=None, waiting_since=None)
            )
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
    else:
        tokens = held.lock_tokens if held is not None else mutex.held(session, execution.id)
    action = registry.get_action(step.action)
    claim = Claim(
        execution_id=execution.id,
        tenant_id=execution.tenant_id,
        step_index=step.step_index,
        step_count=len(plan["steps"]),
        token=token,
        worker_id=worker_id,
        lease_s=policy.lease_s,
        step_timeout_s=float(min(step.timeout_s or policy.step_s, policy.step_s)),
        deadline_at_epoch=deadline_at.timestamp() if deadline_at else time.time() + 3600,
        action=step.action,
        params={},
        asset=asset_view(asset),
        run_mode=RunMode(execution.run_mode),
        retryable=ActionClass(step.action_class) is ActionClass.READ or bool(action and action.idempotent),
        attempts=step.attempts + 1,
        max_attempts=policy.max_attempts,
        continue_on_error=execution.continue_on_error,
        cancelled=execution.cancel_requested_at is not None,
        step_name=step.name,
        lock_tokens=tokens,
        gated=needs_gate(execution),
        action_class=step.action_class,
        sla_class=execution.sla_class,
        requested_by=execution.requested_by,
    )
    claim.refusal = _refusal(session, execution, step, membership) if action else f"unknown action {step.action!r}"
    if claim.refusal is None and set(tokens) != targets:
        claim.refusal = "lock lost: another execution may hold this execution's assets"
    if claim.refusal is None and not claim.cancelled:
        claim.params, claim.refusal = secret_resolution.resolve_params(session, execution.tenant_id, step, claim.masker)
    if claim.refusal is None and not claim.cancelled and asset.credential_ref:
        claim.credential, claim.refusal = secret_resolution.resolve_credential(
            session, execution.tenant_id, step, asset, claim.masker
        )
    _update_step(
        session,
        claim,
        status=StepStatus.RUNNING.value,
        attempts=claim.attempts,
        started_at=now,
        finished_at=None,
    )
    _event(
        session,
        claim,
        "step_started",
        f"{step.name}: attempt {claim.attempts} of {claim.max_attempts if claim.retryable else 1}",
    )
    return claim


def _wait_for_lock(
    session: Session, item: QueueItem, execution: Execution, busy: mutex.Busy, bound_s: int, worker_id: str
) -> None:
    """An asset is busy: give back the lease and park in that asset's FIFO, or give up after ``bound_s``."""
    session.execute(
        _QUEUE.update().where(_QUEUE.c.id == item.id).values(lease_token=None, lease_expires_at=None, claimed_by=None)
    )
    waited = utcnow() - item.created_at
    if waited >= timedelta(seconds=bound_s):
        message = f"{busy.describe()}: gave up after {waited.total_seconds():.0f}s"
        dead_letter(session, execution, S.TIMEOUT, actor=worker_id, reason="queue_timeout", message=message)
        return
    mutex.park(session, item, busy, until=item.created_at + timedelta(seconds=bound_s), actor=worker_id)
    if busy.holder is None and busy.ahead is not None:
        mutex.wake(session, busy.ahead)  # the lock is free: whoever is first in line must not sleep on


def _hold_at_gate(
    session: Session, item: QueueItem, execution: Execution, step_index: int, wait_s: int, worker_id: str
) -> None:
    """A level-3 step without its go: park it, or (parked before and the wait is over) end the execution."""
    if waiting_since(session, execution.id, step_index) is None:
        park_for_gate(session, item, step_index, wait_s, actor=worker_id)
        return
    message = f"no approver gave the go for step {step_index} within {wait_s}s"
    dead_letter(
        session, execution, S.TIMEOUT, actor=worker_id, reason="gate_timeout", message=message, step_index=step_index
    )


def _refusal(session: Session, execution: Execution, step: ExecutionStep, membership: Membership | None) -> str | None:
    """Run-time authorisation (DESIGN §3.7): plan hash, approvals, the requester's current right."""
    if plan_hash(execution.plan_json) != execution.plan_hash:
        return "plan hash mismatch: the stored plan was changed after approval"
    if not approvals_satisfied(session, execution):
        return "approvals no longer valid (an approver lost their role, or the plan changed)"
    role = Role(membership.role) if membership else None
    limit = ActionClass(membership.max_action_class) if membership and membership.max_action_class else None
    if not rbac.may_run_class(role, limit, ActionClass(step.action_class)):
        metrics.PERMISSION_DENIALS.labels(f"run_{step.action_class}", "run").inc()
        return f"permission denied: the requester may no longer run {step.action_class} actions"
    return None


# -- run ---------------------------------------------------------------------------------------------


def _run(claim: Claim) -> tuple[ActionResult, StopReason | None, str]:
    """Run the claimed step with a watcher; returns the result, why it was stopped (if it was), its output."""
    sink = OutputSink(claim.masker)
    if claim.cancelled:
        return ActionResult(ok=False, stopped=True, error="cancelled before start"), StopReason.CANCEL, ""
    if claim.refusal is not None:
        return ActionResult(ok=False, error=claim.refusal), None, ""
    stop = threading.Event()
    reason: list[StopReason] = []
    done = threading.Event()
    watcher = threading.Thread(  # in a copy of this context: the watcher's log records carry the step's fields
        target=contextvars.copy_context().run, args=(_watch, claim, stop, reason, done), daemon=True, name="opsc-watch"
    )
    watcher.start()
    now = time.monotonic()
    deadline = now + min(claim.step_timeout_s, max(0.0, claim.deadline_at_epoch - time.time()))
    ctx = StepContext(
        execution_id=claim.execution_id,
        step_index=claim.step_index,
        params=claim.params,
        asset=claim.asset,
        deadline=deadline,
        stop=stop,
        output=sink,
        masker=claim.masker,
        credential=claim.credential,
        dry_run=claim.run_mode is RunMode.DRY_RUN,
    )
    runner = registry.get_action(claim.action)()  # type: ignore[misc]
    try:
        result = runner.dry_run(ctx) if ctx.dry_run else runner.run(ctx)
    except Exception as exc:  # noqa: BLE001  a runner bug must end the step, not the worker
        log.warning("action %s raised: %s", claim.action, claim.masker.mask(f"{type(exc).__name__}: {exc}"))
        result = ActionResult(ok=False, error=f"{type(exc).__name__}: {exc}")
    finally:
        done.set()
        watcher.join(timeout=5)
    metrics.STEP_SECONDS.labels(claim.action_class, claim.sla_class).observe(time.monotonic() - now)
    if not result.ok and time.time() >= claim.deadline_at_epoch and not reason:
        reason.append(StopReason.EXECUTION_TIMEOUT)
    return result, (reason[0] if reason else None), sink.text()


def _watch(claim: Claim, stop: threading.Event, reason: list[StopReason], done: threading.Event) -> None:
    """Renew the lease and turn cancel requests, the execution deadline and shutdown into ``stop``."""
    settings = get_settings()
    renew_every = max(0.5, claim.lease_s / 3)
    last_renewal = time.monotonic()
    while not done.wait(settings.watch_interval_s):
        if not claim.reported_position:
            # Only steps that outlive one tick are worth showing in the workers table.
            with contextlib.suppress(Exception), session_scope() as session:
                _worker_at(session, claim.worker_id, claim.execution_id, claim.step_index)
                claim.reported_position = True
        why: StopReason | None = None
        if _shutdown.is_set() and claim.retryable:
            why = StopReason.SHUTDOWN
        elif time.time() >= claim.deadline_at_epoch:
            why = StopReason.EXECUTION_TIMEOUT
        else:
            try:
                with session_scope() as session:
                    row = session.exec(
                        select(Execution.cancel_requested_at, Execution.deadline_at).where(
                            Execution.id == claim.execution_id
                        )
                    ).first()
                    if row is not None and row[1] is not None:
                        claim.deadline_at_epoch = row[1].timestamp()  # the sweeper or an admin may move it
                    if row is not None and row[0] is not None:
                        why = StopReason.CANCEL
                    elif time.time() >= claim.deadline_at_epoch:
                        why = StopReason.EXECUTION_TIMEOUT
                    elif time.monotonic() - last_renewal >= renew_every:
                        if not _renew(session, claim):
                            why = StopReason.LEASE_LOST
                        last_renewal = time.monotonic()
            except Exception:
                log.warning("watcher of %s could not reach the database", claim.execution_id, exc_info=True)
        if why is not None:
            reason.append(why)
            stop.set()
            return


def _renew(session: Session, claim: Claim) -> bool:
    result = session.execute(
        update(QueueItem)
        .where(col(QueueItem.execution_id) == claim.execution_id, col(QueueItem.lease_token) == claim.token)
        .values(lease_expires_at=utcnow() + timedelta(seconds=claim.lease_s))
        .execution_options(synchronize_session=False)
    )
    mutex.extend(session, claim.execution_id, utcnow() + timedelta(seconds=claim.lease_s))
    session.execute(
        update(Worker)
        .where(col(Worker.id) == claim.worker_id)
        .values(last_seen_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


# -- persist -----------------------------------------------------------------------------------------


def _persist(
    claim: Claim, result: ActionResult, reason: StopReason | None, output: str
) -> tuple[Outcome, float, Claim | None]:
    """Store the step's result and decide what comes next, in one transaction, if the lease is still ours."""
    settings = get_settings()
    error = claim.masker.mask(result.error)
    with session_scope() as session:
        now = utcnow()
        still_ours = session.execute(
            _QUEUE.update()
            .where(_QUEUE.c.execution_id == claim.execution_id, _QUEUE.c.lease_token == claim.token)
            .values(lease_expires_at=now + timedelta(seconds=claim.lease_s))
        )
        if still_ours.rowcount != 1:  # type: ignore[attr-defined]
            record_event(
                session,
                execution_id=claim.execution_id,
                tenant_id=claim.tenant_id,
                kind="stale_result",
                actor=claim.worker_id,
                step_index=claim.step_index,
                message="lease lost while the step ran; this worker's result was refused",
                data={"ok": result.ok, "error": error},
            )
            return Outcome.STALE, 0.0, None
        if claim.reported_position:
            _worker_at(session, claim.worker_id, None, None)
        if (
            claim.refusal is None
            and not claim.cancelled
            and mutex.held(session, claim.execution_id) != claim.lock_tokens
        ):
            return _refuse_fenced(session, claim), 0.0, None
        done = {"output": output or None, "error": error, "finished_at": now}

        if result.ok:
            _update_step(session, claim, status=StepStatus.COMPLETED.value, **done)
            chain = settings.chain_steps and not claim.gated and not _shutdown.is_set()
            outcome = _advance(session, claim, now, keep_lease=chain)
            if outcome is Outcome.ADVANCED and chain:
                chained = _claim_in(session, claim.execution_id, claim.worker_id, held=claim)
                if chained is not None:
                    return outcome, 0.0, chained
                _release(session, claim)
            return outcome, 0.0, None
        if reason is StopReason.SHUTDOWN:
            _update_step(session, claim, status=StepStatus.PENDING.value, attempts=claim.attempts - 1, finished_at=None)
            _event(session, claim, "step_released", "worker shutting down; step handed back")
            _release(session, claim)
            return Outcome.RELEASED, 0.0, None
        execution = session.get(Execution, claim.execution_id)
        assert execution is not None
        if reason is StopReason.CANCEL:
            _update_step(session, claim, status=StepStatus.CANCELLED.value, **done)
            finish_execution(session, execution, S.CANCELLED, actor=claim.worker_id, message="cancelled")
            return Outcome.FINISHED, 0.0, None
        if reason is StopReason.EXECUTION_TIMEOUT:
            _update_step(session, claim, status=StepStatus.TIMEOUT.value, **done)
            finish_execution(
                session,
                execution,
                S.TIMEOUT,
                actor=claim.worker_id,
                message="execution timeout",
                dlq=("execution_timeout", claim.step_index, claim.attempts, error or "execution timeout"),
            )
            return Outcome.FINISHED, 0.0, None
        status = StepStatus.TIMEOUT.value if result.stopped else StepStatus.FAILED.value
        if claim.refusal is None and claim.retryable and claim.attempts < claim.max_attempts:
            delay_s = backoff_s(claim.attempts, settings.retry_backoff_s, settings.retry_backoff_max_s)
            _update_step(session, claim, status=StepStatus.PENDING.value, **done)
            _event(session, claim, "step_retry", f"{status}: {error}; retry in {delay_s:.2f}s")
            metrics.STEP_RETRIES.labels(claim.action_class).inc()
            _move_queue(session, claim, step_index=claim.step_index, available_at=now + timedelta(seconds=delay_s))
            return Outcome.RETRY, delay_s, None
        _update_step(session, claim, status=status, **done)
        _event(session, claim, "step_failed", f"{status}: {error}")
        if claim.continue_on_error and claim.refusal is None:
            return _advance(session, claim, now), 0.0, None
        why = "permission_denied" if claim.refusal else ("retries_exhausted" if claim.retryable else "step_failed")
        finish_execution(
            session,
            execution,
            S.FAILED,
            actor=claim.worker_id,
            message=f"step {claim.step_name} {status}",
            error=f"step {claim.step_index} ({claim.step_name}): {error}",
            dlq=(why, claim.step_index, claim.attempts, error),
        )
        return Outcome.FINISHED, 0.0, None


def _refuse_fenced(session: Session, claim: Claim) -> Outcome:
    """The locks changed hands while the step ran: refuse its result, record it, send it to the DLQ."""
    message = "fencing token changed while the step ran: its result was refused"
    _update_step(session, claim, status=StepStatus.UNKNOWN.value, error=message, finished_at=utcnow())
    _event(session, claim, "fencing_refused", message)
    execution = session.get(Execution, claim.execution_id)
    assert execution is not None
    dead_letter(
        session,
        execution,
        S.FAILED,
        actor=claim.worker_id,
        reason="lock_lost",
        message=message,
        step_index=claim.step_index,
        attempts=claim.attempts,
    )
    return Outcome.FINISHED


def _advance(session: Session, claim: Claim, now: datetime, *, keep_lease: bool = False) -> Outcome:
    _event(session, claim, "step_finished", f"{claim.step_name}: done")
    if claim.step_index + 1 < claim.step_count:
        _move_queue(session, claim, step_index=claim.step_index + 1, available_at=now, keep_lease=keep_lease)
        return Outcome.ADVANCED
    unfinished = session.exec(
        select(ExecutionStep.id).where(
            ExecutionStep.execution_id == claim.execution_id, ExecutionStep.status != StepStatus.COMPLETED.value
        )
    ).first()
    final = S.PARTIAL if unfinished else S.COMPLETED
    execution = session.get(Execution, claim.execution_id)
    assert execution is not None
    finish_execution(session, execution, final, actor=claim.worker_id, message=final.value)
    return Outcome.FINISHED


# The per-step writes below go through the tables (SQLAlchemy Core), not the ORM: they run for every
# step, nobody holds these rows as objects in the session, and the ORM's bulk layer doubles their cost.
_QUEUE = QueueItem.__table__  # type: ignore[attr-defined]
_STEPS = ExecutionStep.__table__  # type: ignore[attr-defined]
_WORKERS = Worker.__table__  # type: ignore[attr-defined]


def _move_queue(
    session: Session, claim: Claim, *, step_index: int, available_at: datetime, keep_lease: bool = False
) -> None:
    """Point the queue row (the outbox) at its next step; give the lease back unless we chain into it."""
    values: dict[str, Any] = {"step_index": step_index, "available_at": available_at, "dispatched_at": utcnow()}
    if not keep_lease:
        values |= {"lease_token": None, "lease_expires_at": None, "claimed_by": None}
    session.execute(_QUEUE.update().where(_QUEUE.c.execution_id == claim.execution_id).values(**values))


def _release(session: Session, claim: Claim) -> None:
    session.execute(
        _QUEUE.update()
        .where(_QUEUE.c.execution_id == claim.execution_id, _QUEUE.c.lease_token == claim.token)
        .values(lease_token=None, lease_expires_at=None, claimed_by=None)
    )


def _update_step(session: Session, claim: Claim, **values: Any) -> None:
    session.execute(
        _STEPS.update()
        .where(_STEPS.c.execution_id == claim.execution_id, _STEPS.c.step_index == claim.step_index)
        .values(**values)
    )


def finish_execution(
    session: Session,
    execution: Execution,
    status: S,
    *,
    actor: str,
    message: str,
    error: str | None = None,
    dlq: tuple[str, int | None, int, str | None] | None = None,
) -> None:
    """End an execution: its status, its unfinished steps, its queue row, and a DLQ entry when given.

    Args:
        dlq: (reason, step_index, attempts, last_error) for failed or timed-out work.
    """
    values: dict[str, Any] = {"error": error} if error else {}
    transition(
        session,
        execution_id=execution.id,
        tenant_id=execution.tenant_id,
        to=status,
        expected=S(execution.status),
        actor=actor,
        message=message,
        values=values,
    )
    if status in {S.CANCELLED, S.TIMEOUT}:
        session.execute(
            update(ExecutionStep)
            .where(
                col(ExecutionStep.execution_id) == execution.id, col(ExecutionStep.status) == StepStatus.PENDING.value
            )
            .values(status=StepStatus.CANCELLED.value)
            .execution_options(synchronize_session=False)
        )
    session.execute(delete(QueueItem).where(col(QueueItem.execution_id) == execution.id))
    mutex.release(session, execution.id)  # wakes the next execution waiting for each asset, after commit
    if dlq is not None:
        reason, step_index, attempts, last_error = dlq
        session.add(
            DlqEntry(
                execution_id=execution.id,
                tenant_id=execution.tenant_id,
                reason=reason,
                step_index=step_index,
                attempts=attempts,
                last_error=last_error,
            )
        )
    session.flush()


def dead_letter(
    session: Session,
    execution: Execution,
    status: S,
    *,
    actor: str,
    reason: str,
    message: str,
    step_index: int | None = None,
    attempts: int = 0,
) -> None:
    """End an execution ``failed`` or ``timeout`` with ``message`` as its error and a DLQ entry for ``reason``."""
    finish_execution(
        session,
        execution,
        status,
        actor=actor,
        message=message,
        error=message,
        dlq=(reason, step_index, attempts, message),
    )


def backoff_s(attempt: int, base_s: float, max_s: float) -> float:
    """Exponential backoff with jitter: base·2^(attempt-1), capped, plus up to 50 % random extra."""
    delay = min(max_s, base_s * 2.0 ** max(0, attempt - 1))
    return float(delay * (1 + random.random() / 2))  # noqa: S311  jitter, not cryptography


def _event(session: Session, claim: Claim, kind: str, message: str) -> None:
    record_event(
        session,
        execution_id=claim.execution_id,
        tenant_id=claim.tenant_id,
        kind=kind,
        actor=claim.worker_id,
        step_index=claim.step_index,
        message=message,
    )


def _worker_at(session: Session, worker_id: str, execution_id: str | None, step_index: int | None) -> None:
    session.execute(
        _WORKERS.update()
        .where(_WORKERS.c.id == worker_id)
        .values(current_execution_id=execution_id, current_step_index=step_index, last_seen_at=utcnow())
    )
