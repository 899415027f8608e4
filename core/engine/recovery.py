"""Recovery: what the sweeper does about work nobody is doing (DESIGN §3.3, §3.5, §3.10).

Each function handles one execution in its own transaction and is safe to run in every worker at
once: rows are picked with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (SQLite serialises writers anyway)
and every status change is a compare-and-set.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from core import metrics
from core.audit import record_event
from core.engine import locks, orphans, outbox
from core.engine.finish import DlqNote, end_or_roll_back, execution_timeout, is_retryable, may_retry
from core.fsm import transition
from core.plan_integrity import verified_plan
from core.plan_phases import FanoutGroup, fanout_group
from core.policies import get_policy
from core.transactions import session_scope
from db.clock import utcnow
from db.enums import ExecutionStatus as S
from db.enums import StepStatus
from db.settings import get_settings
from db.tables import Execution, ExecutionStep, QueueItem

BATCH = outbox.BATCH


def due_redispatch(*, older_than_s: float) -> list[str]:
    """Queued work whose message the broker lost (looked at once ``older_than_s`` old): announce it again
    (after commit); its ids."""
    with session_scope() as session:
        return outbox.due_redispatch(
            session, older_than_s=older_than_s, ask_broker=get_settings().redispatch_ask_broker
        )


def expired_leases() -> list[str]:
    """Ids of executions whose step lease has expired (their worker died or hung)."""
    with session_scope() as session:
        return list(
            session.exec(
                select(QueueItem.execution_id)
                .where(col(QueueItem.lease_token).is_not(None), col(QueueItem.lease_expires_at) < utcnow())
                .limit(BATCH)
            ).all()
        )


def reclaim_lease(execution_id: str) -> str | None:
    """Take back an expired heartbeat lease (its worker stopped renewing it, DESIGN §15).

    A read (or idempotent) step is retried at once, counting the attempt; a modify/deploy step's outcome
    is unknown: it is not run again, and the execution goes to the DLQ.

    Returns what happened ("retry", "unknown", "exhausted") or None if someone else got there first.
    """
    with session_scope() as session:
        now = utcnow()
        item = session.exec(
            select(QueueItem)
            .where(QueueItem.execution_id == execution_id, col(QueueItem.lease_expires_at) < now)
            .with_for_update(skip_locked=True)
        ).first()
        if item is None or item.lease_token is None:
            return None
        if _slow_not_dead(item, now):
            return None
        execution = session.get(Execution, execution_id)
        step = session.exec(
            select(ExecutionStep).where(
                ExecutionStep.execution_id == execution_id, ExecutionStep.step_index == item.step_index
            )
        ).one()
        assert execution is not None
        if (group := _fanout_of(execution, item.step_index)) is not None:
            return _reclaim_fanout(session, item, execution, group, now)
        orphans.stop_lost_step(session, step, actor="sweeper")  # before the step can run again or its lock goes
        lost_by = item.claimed_by
        retryable = is_retryable(step.action_class, step.action)
        policy = get_policy(session, execution.sla_class, step.action_class)
        max_attempts = policy.max_attempts
        message = f"lease of {lost_by} expired during {step.name} (attempt {step.attempts})"
        will_retry = may_retry(retryable=retryable, attempts=step.attempts, max_attempts=max_attempts)
        if will_retry and (credit := _give_back_lost_attempt(session, execution, step, policy.step_s, now)):
            message += f"; its {credit:.1f} s are given back to the execution limit"
        record_event(
            session,
            execution_id=execution_id,
            tenant_id=execution.tenant_id,
            kind="lease_expired",
            actor="sweeper",
            step_index=step.step_index,
            message=message,
        )
        step.finished_at = now
        if will_retry:
            step.status, step.error = StepStatus.PENDING.value, "worker lost; retrying"
            session.add(step)
            # No backoff: the worker died, not the target, and the policy's execution limit was validated
            # to hold one reclaim plus one more run of the step (core/policies.py), not a backoff too.
            outbox.retry_now(session, execution_id)
            metrics.LEASE_EXPIRATIONS.labels("retry").inc()
            return "retry"
        return _dead_letter_lost(session, execution, step, retryable=retryable, message=message)


def _fanout_of(execution: Execution, step_index: int) -> FanoutGroup | None:
    """The fan-out the queue row's step belongs to, from the hashed plan (None: a one-target step)."""
    plan = verified_plan(execution)
    return fanout_group(plan, step_index) if plan is not None else None


def _reclaim_fanout(session: Session, item: QueueItem, execution: Execution, group: FanoutGroup, now: datetime) -> str:
    """A lost worker ran a fan-out (core/engine/fanout.py): each of its ``running`` targets is lost, as a lost
    step is: read targets with attempts left go back to ``pending``; any other one's outcome is unknown, and
    the execution goes to the DLQ. With none unknown, the group resumes at its lowest target not ended."""
    lost = session.exec(
        select(ExecutionStep)
        .where(
            ExecutionStep.execution_id == execution.id,
            col(ExecutionStep.step_index) >= group.start,
            col(ExecutionStep.step_index) < group.stop,
            ExecutionStep.status == StepStatus.RUNNING.value,
        )
        .order_by(col(ExecutionStep.step_index))
    ).all()
    unknown: list[ExecutionStep] = []
    for step in lost:
        orphans.stop_lost_step(session, step, actor="sweeper")  # before it can run again or its lock goes
        policy = get_policy(session, execution.sla_class, step.action_class)
        retryable = is_retryable(step.action_class, step.action)
        step.finished_at = now
        if may_retry(retryable=retryable, attempts=step.attempts, max_attempts=policy.max_attempts):
            step.status, step.error = StepStatus.PENDING.value, "worker lost; retrying"
        else:
            unknown.append(step)
        session.add(step)
    names = ", ".join(s.name for s in lost) or "no target running"
    message = f"lease of {item.claimed_by} expired during fan-out {group.step} ({names})"
    record_event(
        session,
        execution_id=execution.id,
        tenant_id=execution.tenant_id,
        kind="lease_expired",
        actor="sweeper",
        step_index=lost[0].step_index if lost else item.step_index,
        message=message,
    )
    if unknown:
        # The first that cannot be retried goes the way of a lost one-target step; the rest are marked alike.
        for step in unknown[1:]:
            if is_retryable(step.action_class, step.action):
                step.status, step.error = StepStatus.FAILED.value, "worker lost; no attempts left"
            else:
                step.status = StepStatus.UNKNOWN.value
                step.error = "worker lost mid-step: outcome unknown; not retried (decide in the DLQ)"
            session.add(step)
        first = unknown[0]
        return _dead_letter_lost(
            session, execution, first, retryable=is_retryable(first.action_class, first.action), message=message
        )
    if lost:  # the attempts lost with the worker are given back once, from the earliest start
        earliest = min(lost, key=lambda s: s.started_at or now)
        policy = get_policy(session, execution.sla_class, earliest.action_class)
        _give_back_lost_attempt(session, execution, earliest, policy.step_s, now)
        # The row resumes at the group's lowest target not ended (it may already point lower).
        item.step_index = min(item.step_index, *(s.step_index for s in lost))
        session.add(item)
    outbox.retry_now(session, execution.id)
    metrics.LEASE_EXPIRATIONS.labels("retry").inc()
    return "retry"


def _give_back_lost_attempt(
    session: Session, execution: Execution, step: ExecutionStep, step_s: int, now: datetime
) -> float:
    """Move the execution's deadline (and its locks' expiry with it) by the time the lost attempt took, from
    its start to this reclaim; returns the seconds given back (0 when there is no deadline).

    The policy's execution limit was validated to hold one reclaim plus one more run of a step
    (core/policies.py), but the steps before it use the same limit: a plan that had spent most of it when its
    worker died would time out before its retry ran. A dead worker is not the plan's doing, so its attempt
    does not count, as an approval wait at a level-3 gate does not (core/engine/gates.py). The credit is
    bounded by what an attempt can take (the step limit plus a reclaim and the late-renewal grace), and an
    execution gets it at most once per attempt the policy allows.
    """
    if execution.deadline_at is None or step.started_at is None:
        return 0.0
    settings = get_settings()
    bound = timedelta(seconds=step_s + settings.reclaim_s + 2 * settings.lease_ttl_s)
    lost = min(max(now - step.started_at, timedelta(0)), bound)
    execution.deadline_at += lost
    session.add(execution)
    run_policy = get_policy(session, execution.sla_class, execution.action_class)
    locks.extend(session, execution.id, locks.lock_expiry(execution.deadline_at, run_policy.lease_s))
    return lost.total_seconds()


def _slow_not_dead(item: QueueItem, now: datetime) -> bool:
    """A lease that ran out while its worker still runs on this host (not stopped): on a loaded machine a
    renewal can be late, and reclaiming would kill a live step; it gets two more lease periods. A worker
    elsewhere, gone, or stopped (SIGSTOP) is judged by its lease alone."""
    assert item.lease_expires_at is not None
    grace = timedelta(seconds=2 * get_settings().lease_ttl_s)
    return item.lease_expires_at + grace > now and orphans.worker_runs_here(item.claimed_by)


def _dead_letter_lost(
    session: Session, execution: Execution, step: ExecutionStep, *, retryable: bool, message: str
) -> str:
    """The lost step will not run again: out of attempts (a read), or its outcome is unknown (§3.5)."""
    if retryable:
        outcome, reason = "exhausted", "retries_exhausted"
        step.status, step.error = StepStatus.FAILED.value, "worker lost; no attempts left"
    else:
        outcome, reason = "unknown", "unknown_outcome"
        step.status = StepStatus.UNKNOWN.value
        step.error = "worker lost mid-step: outcome unknown; not retried (decide in the DLQ)"
    session.add(step)
    why = f"{message}: {step.error}"
    note = DlqNote(reason, step.step_index, step.attempts, why)
    end_or_roll_back(session, execution, S.FAILED, actor="sweeper", message=why, error=why, dlq=note)
    metrics.LEASE_EXPIRATIONS.labels(outcome).inc()
    return outcome


def expire_approvals() -> int:
    """Pending executions whose approval window has passed become ``expired``. Returns how many."""
    count = 0
    with session_scope() as session:
        rows = session.exec(
            select(Execution)
            .where(Execution.status == S.PENDING_APPROVAL.value, col(Execution.approval_expires_at) < utcnow())
            .limit(BATCH)
            .with_for_update(skip_locked=True)
        ).all()
        for execution in rows:
            transition(
                session,
                execution_id=execution.id,
                tenant_id=execution.tenant_id,
                to=S.EXPIRED,
                expected=S.PENDING_APPROVAL,
                actor="sweeper",
                message="approval window passed",
            )
            count += 1
    return count


def time_out_idle_executions() -> int:
    """Running executions past their deadline that no worker holds (between steps, in backoff) end
    ``timeout`` with a DLQ entry. Held ones are stopped by their own worker's watcher."""
    count = 0
    with session_scope() as session:
        rows = session.exec(
            select(Execution)
            .join(QueueItem, QueueItem.execution_id == Execution.id)  # type: ignore[arg-type]
            .where(
                Execution.status == S.RUNNING.value,
                col(Execution.deadline_at) < utcnow(),
                col(QueueItem.lease_token).is_(None),
            )
            .limit(BATCH)
            .with_for_update(skip_locked=True)
        ).all()
        for execution in rows:
            why = f"{execution_timeout(execution)} (between steps)"
            note = DlqNote("execution_timeout", None, 0, why)
            end_or_roll_back(session, execution, S.TIMEOUT, actor="sweeper", message=why, error=why, dlq=note)
            count += 1
    return count


def release_worker_leases(worker_id: str) -> int:
    """Free the leases a stopping worker still holds on steps that had not started (graceful shutdown)."""
    with session_scope() as session:
        return outbox.release_worker_leases(session, worker_id)


def reap_locks() -> int:
    """Delete expired asset locks (their holder died or hung) and wake the next waiter of each asset."""
    with session_scope() as session:
        orphans.stop_for_expired_locks(session)  # a lock outlived its holder: its process goes first
        return locks.reap_expired(session)
