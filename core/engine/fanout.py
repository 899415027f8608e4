"""Running a fan-out (DESIGN §14): one step's targets, up to ``max_concurrency`` at once, under the execution's lease.

A fan-out step was expanded at submit into one step per asset (core/plan_fanout.py); the hashed plan records
the group (core/plan_phases.py ``fanout_group``). When a worker claims a step of a group, ``run_group`` runs the
whole group in that worker:

- **slots**: ``max_concurrency`` threads. Each claims a pending target (core/engine/claim.py ``claim_target``:
  the target's own plan-hash, approval, permission, secret and credential checks, its own attempt and masker),
  runs it with its own watcher (core/engine/watch.py: its output streamed, its process killed on a stop), and
  persists it in a transaction of its own, only while the lease is still this worker's and the target's
  fencing token unchanged. A read target that fails is retried in its slot after the backoff (DESIGN §3.5).
- **the limit**: once more than ``max_errors`` targets failed, no slot starts another; the targets not started
  end ``skipped``, and the execution ``failed`` (DLQ ``max_errors``), or goes on under ``continue_on_error``.
  Fewer failures let the plan go on; it ends ``partial``.
- **the driver** (the calling thread) keeps the lease while slots wait out a backoff, and turns a cancel, the
  execution's deadline or a shutdown into a stop for every slot; when all slots are idle it decides the group's
  end in one transaction (the next step, the end, a rollback, the DLQ).

The queue row points at the group's lowest target not yet ended, so a worker that dies mid-group is resumed
there: core/engine/recovery.py treats every ``running`` target of the group as lost (retried, or ``unknown``).
Locks: the execution took every target's lock at its start, all or nothing (DESIGN §3.9); each target's
result is fenced by its asset's token.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from sqlalchemy import bindparam, update
from sqlmodel import Session, col, select

from core.engine import claim, outbox, reachability, workers
from core.engine.claim import PLAN_MISMATCH, StepPlan, StopReason
from core.engine.finish import (
    DlqNote,
    cancelled_by,
    dead_letter,
    end_or_roll_back,
    next_or_end,
    retry_delay_s,
    time_out,
)
from core.engine.outcome import Outcome
from core.engine.watch import RunResult, run_step, shutting_down, stop_reason
from core.logs import log_context
from core.plan_phases import FanoutGroup
from core.transactions import session_scope
from db.clock import utcnow
from db.enums import ExecutionStatus as S
from db.enums import StepStatus
from db.settings import get_settings
from db.tables import Execution, ExecutionStep

log = logging.getLogger(__name__)

_FAILED = frozenset({StepStatus.FAILED.value, StepStatus.TIMEOUT.value, StepStatus.UNKNOWN.value})


@dataclass
class _Tally:
    """The group's state, shared by its slots and the driver (every field under ``lock``)."""

    group: FanoutGroup
    pending: list[int]  # targets to start, lowest first
    errors: int  # targets failed for good
    running: set[int] = field(default_factory=set)
    stop: StopReason | None = None  # a cancel, the deadline, a lost lease or a shutdown: nothing new starts
    crashed: bool = False  # a slot raised: its target's outcome is unknown here, recovery decides (lease expiry)
    refused: tuple[str, int, str] | None = None  # (DLQ reason, step, message): a target must not run; none may
    last_error: str | None = None
    lock: threading.Condition = field(default_factory=threading.Condition)

    def over_limit(self) -> bool:
        return self.errors > self.group.max_errors

    def halted(self) -> bool:
        stopped = self.stop is not None or self.refused is not None or self.crashed
        return stopped or self.over_limit() or shutting_down()

    def next_target(self) -> int | None:
        """The next target to start, lowest first, or None: the slot is done."""
        with self.lock:
            if self.halted() or not self.pending:
                return None
            index = self.pending.pop(0)
            self.running.add(index)
            return index

    def cursor(self, ending: int, *, keep: bool) -> int | None:
        """The lowest target still to end once ``ending`` is persisted (the queue row's step, where a resume
        starts), or None: all ended. ``keep``: ``ending`` is itself still to end (retried, handed back)."""
        left = (self.running - {ending}) | set(self.pending) | ({ending} if keep else set())
        return min(left) if left else None

    def wait_out(self, delay_s: float) -> bool:
        """Wait ``delay_s`` (a retry's backoff); False if the group halted meanwhile."""
        until = time.monotonic() + delay_s
        with self.lock:
            while not self.halted() and (left := until - time.monotonic()) > 0:
                self.lock.wait(timeout=left)
            return not self.halted()

    def halt(self, why: StopReason) -> None:
        with self.lock:
            if self.stop is None:
                self.stop = why
            self.lock.notify_all()


def run_group(first: StepPlan) -> Outcome:
    """Run the fan-out ``first`` (claimed, ``running``) belongs to, to the group's end; see the module docstring."""
    group = first.fanout
    assert group is not None
    tally = _start_tally(first, group)
    # ``first`` runs in the first slot, unless its claim found it ended (the group is resumed, or concluded).
    claimed = [first] if first.started else []
    slots = [
        threading.Thread(target=_slot, args=(first, tally, plan), name=f"opsc-fanout-{n}", daemon=True)
        # Never more slots than targets, whatever the stored record says (plans from before the clamp).
        for n, plan in enumerate(
            claimed + [None] * (min(group.max_concurrency, group.stop - group.start) - len(claimed))
        )
    ]
    for slot in slots:
        slot.start()
    _keep_lease(first, tally, slots)
    return reachability.through_outages("fan-out end", partial(_conclude, first, tally))


def _start_tally(first: StepPlan, group: FanoutGroup) -> _Tally:
    """The group as stored: its pending targets (``first`` aside, claimed) and the failures before a resume."""
    with session_scope() as session:
        rows = session.exec(
            select(ExecutionStep.step_index, ExecutionStep.status).where(
                ExecutionStep.execution_id == first.execution_id,
                col(ExecutionStep.step_index) >= group.start,
                col(ExecutionStep.step_index) < group.stop,
            )
        ).all()
    running = {first.step_index} if first.started else set()
    pending = sorted(i for i, status in rows if status == StepStatus.PENDING.value and i not in running)
    errors = sum(status in _FAILED for _i, status in rows)
    return _Tally(group=group, pending=pending, errors=errors, running=running)


def _slot(first: StepPlan, tally: _Tally, claimed: StepPlan | None) -> None:
    """One of the group's slots: run targets one after the other until none is left or the group halts. A
    target tried again keeps its slot through the backoff (``max_concurrency`` counts it as running)."""
    plan = claimed
    while True:
        if plan is None:
            index = tally.next_target()
            if index is None:
                return
            plan = _claim_or_crash(first, tally, index)
            if plan is None:
                return
        index, retry_in = plan.step_index, None
        try:
            with log_context(step=index, tenant=plan.tenant_id, actor=plan.requested_by):
                ran = run_step(plan)
                retry_in = reachability.through_outages("step result", partial(_persist, plan, ran, tally))
        except Exception:  # a slot must not die silently and leave the group waiting on it
            log.exception("fan-out target %s of %s failed in its slot", index, plan.execution_id)
            with tally.lock:  # its result is unknown here: the lease is left to expire, recovery decides
                tally.crashed = True
                tally.lock.notify_all()
        finally:
            plan.masker.close()
        plan = None
        if retry_in is not None and tally.wait_out(retry_in):
            plan = _claim_or_crash(first, tally, index)
            if plan is None:
                return
            continue
        with tally.lock:  # ended, or left pending by a halt during its backoff
            tally.running.discard(index)
            tally.lock.notify_all()


def _claim_or_crash(first: StepPlan, tally: _Tally, index: int) -> StepPlan | None:
    """``_claim``; a claim that raises (not an outage) marks the group crashed: it is left to recovery, never
    concluded with a target still pending."""
    try:
        return _claim(first, tally, index)
    except Exception:
        log.exception("fan-out target %s of %s could not be claimed", index, first.execution_id)
        with tally.lock:
            tally.running.discard(index)
            tally.crashed = True
            tally.lock.notify_all()
        return None


def _claim(first: StepPlan, tally: _Tally, index: int) -> StepPlan | None:
    """Claim target ``index`` under ``first``'s lease (None: the lease is gone, or the target is not pending)."""
    try:
        plan = reachability.through_outages("claim", lambda: claim.claim_target(first, index), give_up=shutting_down)
    except Exception as exc:
        if not reachability.is_outage(exc):
            raise
        plan = None
    if plan is None:
        with tally.lock:
            tally.running.discard(index)
        tally.halt(StopReason.LEASE_LOST)
    return plan


def _keep_lease(first: StepPlan, tally: _Tally, slots: list[threading.Thread]) -> None:
    """While the slots run: renew the lease (a slot may be waiting out a backoff, with no watcher of its own)
    and stop the group on a cancel, the deadline, a lost lease or a shutdown."""
    settings = get_settings()
    last = time.monotonic()
    while any(s.is_alive() for s in slots):
        for slot in slots:
            slot.join(timeout=settings.watch_interval_s / max(1, len(slots)))
        if shutting_down():
            tally.halt(StopReason.SHUTDOWN)
        due = time.monotonic() - last >= settings.heartbeat_s
        why, renewed = stop_reason(first, renew_due=due)
        if renewed:
            last = time.monotonic()
        if why is not None and why is not StopReason.SHUTDOWN:
            tally.halt(why)


def _persist(plan: StepPlan, ran: RunResult, tally: _Tally) -> float | None:
    """Store one target's result in its own transaction, if the lease is still ours and its fencing holds.

    Returns the backoff before its next attempt when it is tried again (None: it ended, or the group halts).
    """
    error = plan.masker.mask(ran.result.error)
    retry = _retries(plan, ran)
    with tally.lock:  # a target tried again or handed back is still to end: the queue row may point at it
        cursor = tally.cursor(plan.step_index, keep=retry or ran.reason is StopReason.SHUTDOWN)
    with session_scope() as session:
        now = utcnow()
        held = outbox.settle_lease(
            session, plan.execution_id, token=plan.token, lease_s=plan.lease_s, advance_to=cursor
        )
        if held is None:
            claim.stale_result(session, plan, ok=ran.result.ok, error=error)
            tally.halt(StopReason.LEASE_LOST)
            return None
        if plan.refusal is None and not plan.cancelled and not _fenced_ok(plan, held):
            message = "fencing token changed while the step ran: its result was refused"
            claim.update_step(session, plan, status=StepStatus.UNKNOWN.value, error=message, finished_at=now)
            claim.step_event(session, plan, "fencing_refused", message)
            _refuse(tally, ("lock_lost", plan.step_index, message))
            return None
        done = {"output": ran.output or None, "error": error, "finished_at": now}
        if ran.reason is StopReason.SHUTDOWN:
            claim.update_step(
                session, plan, status=StepStatus.PENDING.value, attempts=plan.attempts - 1, finished_at=None
            )
            claim.step_event(session, plan, "step_released", "worker shutting down; step handed back")
            if ran.live is not None:
                ran.live.discard(session)
            tally.halt(StopReason.SHUTDOWN)
            return None
        if ran.live is not None:
            ran.live.finish(session, ran.output, keep=retry)
        return _record(session, plan, ran, tally, error, done, retry=retry)


def _retries(plan: StepPlan, ran: RunResult) -> bool:
    """Whether this failed attempt is tried again (a read target with attempts left, not stopped, not refused)."""
    stopped = ran.reason is not None
    return (
        not ran.result.ok
        and not stopped
        and plan.refusal is None
        and plan.retryable
        and plan.attempts < plan.max_attempts
    )


def _fenced_ok(plan: StepPlan, held: dict[str, int]) -> bool:
    """The target's asset is still locked with the token the group's first claim saw."""
    asset = plan.asset.id
    return held.get(asset) is not None and held.get(asset) == plan.lock_tokens.get(asset)


def _record(
    session: Session,
    plan: StepPlan,
    ran: RunResult,
    tally: _Tally,
    error: str | None,
    done: dict[str, Any],
    *,
    retry: bool,
) -> float | None:
    """Write the target's row and event, and count it in the tally; the backoff when it is tried again."""
    if ran.result.ok:
        claim.update_step(session, plan, status=StepStatus.COMPLETED.value, **done)
        claim.step_event(session, plan, "step_finished", f"{plan.step_name}: done")
        return None
    if ran.reason is StopReason.CANCEL:
        execution = session.get(Execution, plan.execution_id)
        why = cancelled_by(session, execution) if execution is not None else "cancelled"
        claim.update_step(session, plan, status=StepStatus.CANCELLED.value, **(done | {"error": why}))
        tally.halt(StopReason.CANCEL)
        return None
    if ran.reason is StopReason.EXECUTION_TIMEOUT:
        claim.update_step(session, plan, status=StepStatus.TIMEOUT.value, **done)
        tally.halt(StopReason.EXECUTION_TIMEOUT)
        return None
    status = StepStatus.TIMEOUT.value if ran.result.stopped else StepStatus.FAILED.value
    if retry:
        delay_s = retry_delay_s(plan.attempts)
        claim.update_step(session, plan, status=StepStatus.PENDING.value, **done)
        claim.step_event(session, plan, "step_retry", f"{status}: {error}; retry in {delay_s:.2f}s")
        return delay_s
    claim.update_step(session, plan, status=status, **done)
    claim.step_event(session, plan, "step_failed", f"{status}: {error}")
    if plan.refusal is not None:
        code = plan.refusal_code
        _refuse(tally, (code, plan.step_index, f"step {plan.step_index} ({plan.step_name}): {error}"))
        return None
    with tally.lock:
        tally.errors += 1
        tally.last_error = f"step {plan.step_index} ({plan.step_name}): {error}"
        tally.lock.notify_all()
    return None


def _refuse(tally: _Tally, refusal: tuple[str, int, str]) -> None:
    with tally.lock:
        if tally.refused is None:
            tally.refused = refusal
        tally.lock.notify_all()


def _conclude(first: StepPlan, tally: _Tally) -> Outcome:
    """Every slot is idle: decide the group's end in one transaction (see the module docstring)."""
    group = tally.group
    if tally.crashed:
        log.warning("fan-out %s of %s left to recovery: a slot failed", group.step, first.execution_id)
        return Outcome.STALE
    with session_scope() as session:
        held = outbox.settle_lease(session, first.execution_id, token=first.token, lease_s=first.lease_s)
        if held is None:
            return Outcome.STALE
        workers.report_position(session, first.worker_id, None, None)
        execution = session.get(Execution, first.execution_id)
        assert execution is not None
        locks = list(held)
        if tally.refused is not None:
            return _refused(session, first, execution, tally.refused, locks)
        if tally.stop is StopReason.SHUTDOWN:
            outbox.hand_back(session, first.execution_id, token=first.token)
            return Outcome.RELEASED
        if tally.stop is StopReason.LEASE_LOST:
            # A slot could not claim or persist: the lease is ours again here, so hand the group back to run on.
            outbox.hand_back(session, first.execution_id, token=first.token)
            return Outcome.RELEASED
        if tally.stop is StopReason.CANCEL:
            why = cancelled_by(session, execution)
            ended = end_or_roll_back(
                session, execution, S.CANCELLED, actor=first.worker_id, message="cancelled", error=why, held_locks=locks
            )
            return Outcome.FINISHED if ended else Outcome.ADVANCED
        if tally.stop is StopReason.EXECUTION_TIMEOUT:
            ended = time_out(
                session,
                execution,
                during=f"fan-out {group.step}",
                step_index=group.start,
                attempts=first.attempts,
                actor=first.worker_id,
                held_locks=locks,
            )
            return Outcome.FINISHED if ended else Outcome.ADVANCED
        return _ended(session, first, execution, tally, locks)


def _refused(
    session: Session, first: StepPlan, execution: Execution, refusal: tuple[str, int, str], locks: Collection[str]
) -> Outcome:
    """A target was refused (its plan, its lock, a right or a secret): the execution ends ``failed`` in the DLQ."""
    reason, step_index, message = refusal
    if reason in {PLAN_MISMATCH, "lock_lost"}:
        dead_letter(
            session, execution, S.FAILED, actor=first.worker_id, reason=reason, message=message, step_index=step_index
        )
        return Outcome.FINISHED
    note = DlqNote(reason, step_index, 1, message)
    ended = end_or_roll_back(
        session, execution, S.FAILED, actor=first.worker_id, message=message, error=message, dlq=note, held_locks=locks
    )
    return Outcome.FINISHED if ended else Outcome.ADVANCED


def _ended(session: Session, first: StepPlan, execution: Execution, tally: _Tally, locks: Collection[str]) -> Outcome:
    """The group ran out of targets, or stopped at its error limit: the next step, the end, or the DLQ."""
    group = tally.group
    counts = _counts(session, first.execution_id, group)
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    limit = f"max_errors {group.max_errors}"
    if tally.over_limit():
        skipped = session.execute(  # type: ignore[attr-defined]  # an UPDATE's result has a rowcount
            update(ExecutionStep)
            .where(
                col(ExecutionStep.execution_id) == bindparam("e_id"),
                col(ExecutionStep.step_index) >= group.start,
                col(ExecutionStep.step_index) < group.stop,
                col(ExecutionStep.status) == StepStatus.PENDING.value,
            )
            .values(status=StepStatus.SKIPPED.value)
            .execution_options(synchronize_session=False),
            {"e_id": first.execution_id},
        ).rowcount
        message = f"fan-out {group.step}: {tally.errors} of {group.stop - group.start} targets failed ({limit})"
        _group_event(first, session, "fanout_stopped", f"{message}; {skipped} not started, skipped", counts)
        if not first.continue_on_error:
            note = DlqNote("max_errors", group.start, 1, tally.last_error)
            ended = end_or_roll_back(
                session,
                execution,
                S.FAILED,
                actor=first.worker_id,
                message=message,
                error=f"{message}; last: {tally.last_error}",
                dlq=note,
                held_locks=locks,
            )
            return Outcome.FINISHED if ended else Outcome.ADVANCED
    else:
        _group_event(first, session, "fanout_finished", f"fan-out {group.step}: {summary} ({limit})", counts)
    ended = next_or_end(
        session,
        first.execution_id,
        next_index=group.stop,
        step_count=first.step_count,
        actor=first.worker_id,
        held_locks=locks,
    )
    return Outcome.FINISHED if ended else Outcome.ADVANCED


def _counts(session: Session, execution_id: str, group: FanoutGroup) -> dict[str, int]:
    rows = session.exec(
        select(ExecutionStep.status).where(
            ExecutionStep.execution_id == execution_id,
            col(ExecutionStep.step_index) >= group.start,
            col(ExecutionStep.step_index) < group.stop,
        )
    ).all()
    counts: dict[str, int] = {}
    for status in rows:
        counts[status] = counts.get(status, 0) + 1
    return counts


def _group_event(first: StepPlan, session: Session, kind: str, message: str, counts: dict[str, int]) -> None:
    group = first.fanout
    assert group is not None
    data = {"step": group.step, "targets": group.stop - group.start, "max_errors": group.max_errors, "statuses": counts}
    claim.step_event(session, first, kind, message, data=data)
