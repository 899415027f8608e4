"""One step's state machine: claim, run, persist (DESIGN §3.2-3.5, §6, §7).

``process(execution_id)`` is what a worker does with a message (which carries the id only):

1. **claim** (one transaction): take the queue row's lease with a compare-and-set; a duplicate, late or
   early message finds no free lease and is a no-op. Start the execution on its first step (locks,
   deadline from the policy), re-check the plan hash, the approvals and the requester's permission,
   mark the step ``running`` and count the attempt. Secrets are resolved here, in memory only, into a
   per-step masker. The result is an immutable ``StepPlan`` (core/engine/claim.py).
2. **run** the action with a watcher (core/engine/watch.py).
3. **persist** (one transaction): only while the lease is still ours (a stale result is refused and
   audited). Decide the next state: next step (announced after commit), retry with backoff (the rule of
   core/engine/finish.py), or the end: completed, partial, failed, cancelled, timeout, with a DLQ entry
   for failed and timed-out work.

Crashed workers are handled by core/engine/recovery.py (the sweeper), which shares core/engine/finish.py.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from sqlmodel import Session, col, select

from core import metrics
from core.actions.context import ActionResult
from core.engine import claim, fanout, outbox, reachability, settle, workers
from core.engine.claim import StepPlan, StopReason
from core.engine.finish import (
    DlqNote,
    Ending,
    cancelled_by,
    dead_letter,
    end_or_roll_back,
    may_retry,
    next_or_end,
    retry_delay_s,
    time_out,
)
from core.engine.outcome import Outcome
from core.engine.watch import RunResult, request_shutdown, reset_shutdown, run_step, shutting_down
from core.logs import current_trace_id, log_context
from core.transactions import session_scope
from db.clock import utcnow
from db.enums import ExecutionStatus as S
from db.enums import StepStatus
from db.settings import get_settings
from db.tables import Execution, ExecutionStep, QueueItem, new_id

__all__ = ["Outcome", "process", "request_shutdown", "reset_shutdown", "run_inline", "worker_identity"]

_STEPS = ExecutionStep.__table__  # type: ignore[attr-defined]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Persisted:
    """What persisting a step decided, and the next step when the worker chains straight into it."""

    outcome: Outcome
    chained: StepPlan | None = None


def worker_identity(kind: str = "inline") -> str:
    """An id naming this process: kind, host and pid, plus a random suffix so restarts differ."""
    return f"{kind}:{socket.gethostname()}:{os.getpid()}:{new_id()[:6]}"


def process(execution_id: str, *, worker_id: str, message_id: str | None = None) -> Outcome:
    """Run the next step of ``execution_id`` if its lease is free; see the module docstring.

    With ``OPSC_CHAIN_STEPS`` (the default) a worker that completes a step keeps the lease and claims the
    next one in the same transaction, so a plan's steps run back to back without a broker round trip;
    the queue row stays the outbox, and a message is sent only when the chain breaks. ``message_id``: the
    broker message being processed (a worker's), which may be spent on higher-priority work (core/priority.py).
    """
    # Every log record of this call carries the execution, worker and trace (the message's id, bound by
    # the worker middleware, or a fresh one); each claimed step adds its index, tenant and requester.
    with log_context(execution_id=execution_id, worker=worker_id, trace_id=current_trace_id()):
        try:
            # While the database is away the message waits here, not in a traceback: the step starts as
            # soon as it is back (a shutdown stops waiting; the sweeper re-sends the work later).
            plan = reachability.through_outages(
                "claim", lambda: claim.claim_step(execution_id, worker_id, message_id), give_up=shutting_down
            )
        except Exception as exc:
            if not reachability.is_outage(exc):
                raise
            log.warning("gave up claiming %s: the database is still unreachable", execution_id)
            return Outcome.NOOP
        outcome = Outcome.NOOP
        while plan is not None:
            if plan.fanout is not None:  # a fan-out's targets run together, and end the chain
                return fanout.run_group(plan)
            try:
                with log_context(step=plan.step_index, tenant=plan.tenant_id, actor=plan.requested_by):
                    ran = run_step(plan)
                    # The step has run: its result is kept across a database outage while the lease may
                    # still be ours (no sweeper reclaims during one), then stored, or refused as stale.
                    persisted = reachability.through_outages("step result", partial(_persist, plan, ran))
            finally:
                plan.masker.close()  # the step is over: its secret values leave memory with it
            outcome, plan = persisted.outcome, persisted.chained
        return outcome


def run_inline(execution_id: str, *, max_steps: int = 1000) -> Outcome:
    """Run an execution to its end in the calling thread (immediate mode), through the same code.

    A step that fails and may be retried is retried here, after the policy's backoff, when the retry is
    due before the execution's deadline (a fast plan's limit is shorter than the background's re-send).
    Stops at the first step it cannot run at once (a lease held elsewhere, a backoff past the deadline) and
    hands the execution to the background workers instead.
    """
    worker_id = worker_identity("inline")
    outcome = Outcome.NOOP
    for _ in range(max_steps):
        outcome = process(execution_id, worker_id=worker_id)
        if outcome is Outcome.RETRY:
            wait_s = _inline_backoff_s(execution_id)
            if wait_s is None:
                break  # the background's message (sent with the retry) takes it
            time.sleep(wait_s)
            continue
        if outcome is not Outcome.ADVANCED:
            break
    if outcome is Outcome.NOOP:
        with session_scope() as session:  # could not start here: the background takes it
            outbox.send_after_commit(session, [execution_id])
    return outcome


def _inline_backoff_s(execution_id: str) -> float | None:
    """Seconds until the execution's retry is due, if it is due before its deadline; else None."""
    with session_scope() as session:
        row = session.exec(
            select(QueueItem.available_at, Execution.deadline_at)
            .join(Execution, col(Execution.id) == QueueItem.execution_id)
            .where(QueueItem.execution_id == execution_id, col(QueueItem.lease_token).is_(None))
        ).first()
    if row is None or row[1] is None or row[0] >= row[1]:
        return None
    return max(0.0, (row[0] - utcnow()).total_seconds())


# -- persist -----------------------------------------------------------------------------------------


def _persist(plan: StepPlan, ran: RunResult) -> Persisted:
    """Store the step's result and decide what comes next, in one transaction, if the lease is still ours."""
    error = plan.masker.mask(ran.result.error)
    chain = _chains(plan) if ran.result.ok and plan.step_index + 1 < plan.step_count else False
    last = ran.result.ok and plan.step_index + 1 >= plan.step_count and ran.reason is not StopReason.SHUTDOWN
    with session_scope() as session:
        now = utcnow()
        done = {"output": ran.output or None, "error": error, "finished_at": now}
        # On PostgreSQL the settle also brings the next step's claim read (a chain), or writes the last step
        # completed and reads the execution's end (settle.py); None: settle the usual way.
        held: dict[str, int] | None = None
        preloaded, ending = None, None
        if chain and (next_settled := settle.into_next(session, plan)) is not None:
            held, preloaded = next_settled
        elif last and (end_settled := settle.into_end(session, plan, done)) is not None:
            held, ending = end_settled
        if held is None:
            held = outbox.settle_lease(
                session,
                plan.execution_id,
                token=plan.token,
                lease_s=plan.lease_s,
                advance_to=plan.step_index + 1 if chain else None,
            )
        if held is None:
            claim.stale_result(session, plan, ok=ran.result.ok, error=error)
            return Persisted(Outcome.STALE)
        if plan.watch.reported_position:
            workers.report_position(session, plan.worker_id, None, None)
        if plan.refusal is None and not plan.cancelled and held != plan.lock_tokens:
            return Persisted(_refuse_fenced(session, plan))
        live = ran.live
        if ran.reason is StopReason.SHUTDOWN:
            claim.update_step(
                session, plan, status=StepStatus.PENDING.value, attempts=plan.attempts - 1, finished_at=None
            )
            claim.step_event(session, plan, "step_released", "worker shutting down; step handed back")
            outbox.hand_back(session, plan.execution_id, token=plan.token)
            if live is not None:
                live.discard(session)
            return Persisted(Outcome.RELEASED)
        if live is not None:  # the attempt's streamed output, completed (kept apart if it is retried)
            stopped = ran.reason in {StopReason.CANCEL, StopReason.EXECUTION_TIMEOUT}
            retried = not ran.result.ok and not stopped and _will_retry(plan)
            live.finish(session, ran.output, keep=retried)
        if ran.result.ok:
            if not chain and ending is None:  # a chain writes it with the next step's start (``_completed``)
                claim.update_step(session, plan, status=StepStatus.COMPLETED.value, **done)
            return _completed(session, plan, held, chain=chain, done=done, preloaded=preloaded, ending=ending)
        execution = session.get(Execution, plan.execution_id)
        assert execution is not None
        if ran.reason is StopReason.CANCEL:
            why = cancelled_by(session, execution)
            claim.update_step(session, plan, status=StepStatus.CANCELLED.value, **(done | {"error": why}))
            ended = end_or_roll_back(
                session,
                execution,
                S.CANCELLED,
                actor=plan.worker_id,
                message="cancelled",
                error=why,
                held_locks=_held(plan, held),
            )
            return Persisted(Outcome.FINISHED if ended else Outcome.ADVANCED)
        if ran.reason is StopReason.EXECUTION_TIMEOUT:
            claim.update_step(session, plan, status=StepStatus.TIMEOUT.value, **done)
            ended = time_out(
                session,
                execution,
                during=f"step {plan.step_index} ({plan.step_name})",
                step_index=plan.step_index,
                attempts=plan.attempts,
                actor=plan.worker_id,
                held_locks=_held(plan, held),
            )
            return Persisted(Outcome.FINISHED if ended else Outcome.ADVANCED)
        return _failed(session, plan, held, execution, ran.result, error, now, done)


def _held(plan: StepPlan, held: dict[str, int]) -> list[str] | None:
    """The locks a finishing lease holder passes on to ``finish_execution``: those ``settle_lease`` read in this
    transaction, unless the step was refused as untrusted: its execution may not have started (it took no
    lock, but may have waited in an asset's line), so ``release`` reads for itself."""
    return None if plan.refusal is not None and plan.refusal_code == claim.PLAN_MISMATCH else list(held)


def _will_retry(plan: StepPlan) -> bool:
    """Whether a failure of ``plan``'s attempt is retried (the rule ``_failed`` applies)."""
    return plan.refusal is None and may_retry(
        retryable=plan.retryable, attempts=plan.attempts, max_attempts=plan.max_attempts
    )


def _chains(plan: StepPlan) -> bool:
    """Whether a worker that completes ``plan``'s step goes straight on to the next (keeping the lease)."""
    return get_settings().chain_steps and not plan.gated and not shutting_down()


def _completed(
    session: Session,
    plan: StepPlan,
    held: dict[str, int],
    *,
    chain: bool,
    done: dict[str, Any],
    preloaded: claim.ClaimRows | None = None,
    ending: Ending | None = None,
) -> Persisted:
    """A step succeeded: the next step (chained into at once: the settle already moved the queue row to it,
    and ``preloaded`` holds the next claim's rows if it read them) or the end of the execution (``ending``: read
    by the settle). Chaining, the step's row is written here (``done``), with the next's."""
    outcome = _advance(session, plan, held, moved=chain, ending=ending)
    if outcome is Outcome.ADVANCED and chain:
        chained = claim.claim_step_in(
            session, plan.execution_id, plan.worker_id, held=plan, finished=done, preloaded=preloaded
        )
        if chained is not None:
            return Persisted(outcome, chained)
        claim.update_step(session, plan, status=StepStatus.COMPLETED.value, **done)
        outbox.hand_back(session, plan.execution_id, token=plan.token)
    return Persisted(outcome)


def _failed(
    session: Session,
    plan: StepPlan,
    held: dict[str, int],
    execution: Execution,
    result: ActionResult,
    error: str | None,
    now: datetime,
    done: dict[str, Any],
) -> Persisted:
    """A step failed: retry it after a backoff (§3.5), go on (``continue_on_error``), or end ``failed``."""
    status = StepStatus.TIMEOUT.value if result.stopped else StepStatus.FAILED.value
    if _will_retry(plan):
        delay_s = retry_delay_s(plan.attempts)
        claim.update_step(session, plan, status=StepStatus.PENDING.value, **done)
        claim.step_event(session, plan, "step_retry", f"{status}: {error}; retry in {delay_s:.2f}s")
        metrics.STEP_RETRIES.labels(plan.action_class).inc()
        outbox.move_to_step(session, plan.execution_id, step_index=plan.step_index, delay_s=delay_s)
        return Persisted(Outcome.RETRY)
    claim.update_step(session, plan, status=status, **done)
    claim.step_event(session, plan, "step_failed", f"{status}: {error}")
    if plan.continue_on_error and plan.refusal is None:
        return Persisted(_advance(session, plan, held))
    why = plan.refusal_code if plan.refusal else ("retries_exhausted" if plan.retryable else "step_failed")
    ended = end_or_roll_back(
        session,
        execution,
        S.FAILED,
        actor=plan.worker_id,
        message=f"step {plan.step_name} {status}",
        error=f"step {plan.step_index} ({plan.step_name}): {error}",
        dlq=DlqNote(why, plan.step_index, plan.attempts, error),
        held_locks=_held(plan, held),
    )
    return Persisted(Outcome.FINISHED if ended else Outcome.ADVANCED)


def _refuse_fenced(session: Session, plan: StepPlan) -> Outcome:
    """The locks changed hands while the step ran: refuse its result, record it, send it to the DLQ."""
    message = "fencing token changed while the step ran: its result was refused"
    # output: the settle may have written the step completed, output included (settle.into_end)
    values = {"error": message, "finished_at": utcnow(), "output": None}
    claim.update_step(session, plan, status=StepStatus.UNKNOWN.value, **values)
    claim.step_event(session, plan, "fencing_refused", message)
    execution = session.get(Execution, plan.execution_id)
    assert execution is not None
    dead_letter(
        session,
        execution,
        S.FAILED,
        actor=plan.worker_id,
        reason="lock_lost",
        message=message,
        step_index=plan.step_index,
        attempts=plan.attempts,
    )
    return Outcome.FINISHED


def _advance(
    session: Session,
    plan: StepPlan,
    held: dict[str, int],
    *,
    moved: bool = False,
    ending: Ending | None = None,
) -> Outcome:
    """The next step, or the end. ``moved``: the queue row already points at the next step, lease kept;
    ``ending``: the end's read, done by the settle."""
    claim.step_event(session, plan, "step_finished", f"{plan.step_name}: done")
    ended = next_or_end(
        session,
        plan.execution_id,
        next_index=plan.step_index + 1,
        step_count=plan.step_count,
        actor=plan.worker_id,
        held_locks=_held(plan, held),
        moved=moved,
        ending=ending,
    )
    return Outcome.FINISHED if ended else Outcome.ADVANCED
