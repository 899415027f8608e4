"""Running a claimed step: the action in this thread, a watcher beside it (DESIGN §7, §15).

The watcher renews the lease (and the asset locks and the worker's heartbeat with it), and sets the
step's stop event within ``watch_interval_s`` of a cancel request, the execution deadline, a lost lease
or this process's shutdown. Nothing here writes a step's outcome: core/engine/steps.py persists it.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from dataclasses import dataclass, replace
from datetime import timedelta
from functools import partial

from sqlmodel import Session, select

from core import metrics
from core.actions import registry
from core.actions.context import ActionResult, OutputSink, StepContext
from core.engine import locks, orphans, outbox, reachability, watch_threads, workers
from core.engine.claim import StepPlan, StopReason
from core.engine.live_output import LiveOutput
from core.transactions import session_scope
from db.clock import utcnow
from db.enums import RunMode
from db.settings import get_settings
from db.tables import Execution

log = logging.getLogger(__name__)

_shutdown = threading.Event()


def request_shutdown() -> None:
    """Ask running retryable steps of this process to stop and hand their work back (graceful stop)."""
    _shutdown.set()


def reset_shutdown() -> None:
    """Clear a previous shutdown request (a runtime started again in the same process, e.g. in tests)."""
    _shutdown.clear()


def shutting_down() -> bool:
    """True once this process was asked to stop."""
    return _shutdown.is_set()


@dataclass(frozen=True)
class RunResult:
    """What running a step gave: the action's result, why it was stopped (if it was), its masked output, and
    its streamed output (None when it did not run), which the persist completes."""

    result: ActionResult
    reason: StopReason | None
    output: str
    live: LiveOutput | None = None


def run_step(plan: StepPlan) -> RunResult:
    """Run the claimed step with a watcher (or not at all: cancelled before start, or refused)."""
    if plan.cancelled:
        return RunResult(ActionResult(ok=False, stopped=True, error="cancelled before start"), StopReason.CANCEL, "")
    if plan.refusal is not None:
        return RunResult(ActionResult(ok=False, error=plan.refusal), None, "")
    sink = OutputSink(plan.masker)
    stop = threading.Event()
    reason: list[StopReason] = []
    done = threading.Event()
    started = time.monotonic()
    live = LiveOutput(
        sink,
        execution_id=plan.execution_id,
        tenant_id=plan.tenant_id,
        step_index=plan.step_index,
        run=plan.run,
        attempt=plan.attempts,
        started=started,
    )
    # In a copy of this context: the watcher's log records carry the step's fields.
    watcher = watch_threads.start(
        partial(contextvars.copy_context().run, watch, plan, stop, reason, done, live), name="opsc-watch"
    )
    deadline = started + min(plan.step_timeout_s, max(0.0, plan.watch.deadline_at_epoch - time.time()))
    ctx = StepContext(
        execution_id=plan.execution_id,
        step_index=plan.step_index,
        params=plan.params,
        asset=plan.asset,
        deadline=deadline,
        stop=stop,
        output=sink,
        masker=plan.masker,
        credential=plan.credential,
        dry_run=plan.run_mode is RunMode.DRY_RUN,
        tenant_id=plan.tenant_id,
        on_process=orphans.recorder(plan.execution_id, plan.step_index, plan.attempts),
    )
    runner = registry.get_action(plan.action)()  # type: ignore[misc]
    try:
        result = runner.dry_run(ctx) if ctx.dry_run else runner.run(ctx)
    except Exception as exc:  # noqa: BLE001  a runner bug must end the step, not the worker
        log.warning("action %s raised: %s", plan.action, plan.masker.mask(f"{type(exc).__name__}: {exc}"))
        result = ActionResult(ok=False, error=f"{type(exc).__name__}: {exc}")
    finally:
        done.set()
        watcher.join(timeout=5)
    metrics.STEP_SECONDS.labels(plan.action_class, plan.sla_class).observe(time.monotonic() - started)
    if not result.ok and time.time() >= plan.watch.deadline_at_epoch and not reason:
        reason.append(StopReason.EXECUTION_TIMEOUT)
    why = reason[0] if reason else None
    if not result.ok and (result.stopped or why is not None):  # a step that completed anyway keeps no error
        result = replace(result, error=stop_error(plan, why, result))
    return RunResult(result, why, sink.text(), live)


def stop_error(plan: StepPlan, why: StopReason | None, result: ActionResult) -> str | None:
    """Why a stopped step stopped, in words an operator reads in the failure banner (issue 16 item 5).

    A runner only knows it was stopped; the watcher knows why: a cancel (by whom is the execution's, added
    when it ends), the execution's time limit, the step's own limit (no reason: its deadline passed), a
    lost lease, or this worker's shutdown.
    """
    if why is StopReason.CANCEL:
        return "cancelled"
    if why is StopReason.EXECUTION_TIMEOUT:
        return "timeout: the execution's time limit ran out"
    if why is StopReason.LEASE_LOST:
        return "stopped: this worker lost the step's lease"
    if why is StopReason.SHUTDOWN:
        return "stopped: the worker is shutting down"
    if result.stopped:  # runners stop only on ``should_stop``: with no reason, the step's deadline passed
        return f"timeout: the step's limit of {plan.step_timeout_s:g} s was reached"
    return result.error


def watch(
    plan: StepPlan, stop: threading.Event, reason: list[StopReason], done: threading.Event, live: LiveOutput
) -> None:
    """Renew the lease and turn cancel requests, the execution deadline and shutdown into ``stop``; write
    the step's output in batches as it comes (``LiveOutput.tick``)."""
    settings = get_settings()
    interval_s = settings.watch_interval_s
    renew_every = settings.heartbeat_s  # a heartbeat: the lease's expiry is a few of these away (DESIGN §15)
    last_renewal = time.monotonic()
    while not done.wait(interval_s):
        live.tick()
        if not plan.watch.reported_position:
            # Only steps that outlive one tick are worth showing in the workers table.
            try:
                with session_scope() as session:
                    workers.report_position(session, plan.worker_id, plan.execution_id, plan.step_index)
                plan.watch.reported_position = True
            except Exception:
                log.debug("could not report the position of %s", plan.execution_id, exc_info=True)
        renew_due = time.monotonic() - last_renewal >= renew_every
        why, renewed = stop_reason(plan, renew_due=renew_due)
        if why is not None:
            reason.append(why)
            stop.set()
            return
        if renewed:  # a failed renewal is tried again at the next tick, not a heartbeat later
            last_renewal = time.monotonic()


def stop_reason(plan: StepPlan, *, renew_due: bool) -> tuple[StopReason | None, bool]:
    """One watcher tick: why the step must stop (or None), and whether the lease was renewed."""
    if _shutdown.is_set() and plan.retryable:
        return StopReason.SHUTDOWN, False
    if time.time() >= plan.watch.deadline_at_epoch:
        return StopReason.EXECUTION_TIMEOUT, False
    try:
        with session_scope() as session:
            row = session.exec(
                select(Execution.cancel_requested_at, Execution.deadline_at, Execution.rollback_status).where(
                    Execution.id == plan.execution_id
                )
            ).first()
            if row is not None and row[1] is not None:
                plan.watch.deadline_at_epoch = row[1].timestamp()  # the sweeper or an admin may move it
            # A rollback is not cancelled: on_cancel steps run because of a cancel (core/engine/rollback.py).
            if row is not None and row[0] is not None and row[2] is None:
                return StopReason.CANCEL, False
            if time.time() >= plan.watch.deadline_at_epoch:
                return StopReason.EXECUTION_TIMEOUT, False
            if renew_due and not renew(session, plan):
                return StopReason.LEASE_LOST, False
    except Exception as exc:
        if reachability.is_outage(exc):
            reachability.outage("watcher", exc)
        else:
            log.warning("watcher of %s failed", plan.execution_id, exc_info=True)
        return None, False
    reachability.reachable()
    return None, renew_due


def renew(session: Session, plan: StepPlan) -> bool:
    """Heartbeat: the lease, the execution's asset locks and the worker row. False if the lease is lost."""
    ours = outbox.renew_lease(session, plan.execution_id, token=plan.token, lease_s=plan.lease_s)
    locks.extend(session, plan.execution_id, utcnow() + timedelta(seconds=plan.lease_s))
    workers.touch(session, plan.worker_id)
    return ours
