"""Steps and their output in the execution detail: the timeline, each attempt's output, the live tail of a
running step, and the failure banner (issue 16 items 1 and 5).

A step's expander has a key and tracks its state, so a refresh never closes what the operator opened (nor
opens what they closed); a running step opens by itself the first time it is seen. The running attempt's
output is a fragment of its own that polls only the chunks written since it last looked
(``core.list_output_chunks``) and appends them to what it holds, every ``LIVE_S``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import streamlit as st

import core
from core import AttemptOutputView, ExecutionStatus, ExecutionView, Principal, StepView
from ui import state
from ui.components.feedback import attempt
from ui.components.plain import md_text

# The live tail's poll: chunks are written every 0.5 s or so, so a line is read within about 0.75 s of its print
# (docs/benchmarks.md); one indexed query per poll, only while a step runs and its detail is open.
LIVE_S = 0.25
TAIL_LINES = 12
NO_OUTPUT = "(no output)"
WAITING = "(no output yet)"

STEP_ICONS = {
    "pending": ":material/schedule:",
    "running": ":material/progress_activity:",
    "completed": ":material/check_circle:",
    "failed": ":material/error:",
    "timeout": ":material/timer_off:",
    "cancelled": ":material/cancel:",
    "skipped": ":material/skip_next:",
    "unknown": ":material/help:",
}
FAILED_STEPS = frozenset({"failed", "timeout", "cancelled", "unknown"})
BANNER_STATUSES = frozenset(
    {ExecutionStatus.FAILED, ExecutionStatus.TIMEOUT, ExecutionStatus.CANCELLED, ExecutionStatus.PARTIAL}
)


@dataclass
class LiveTail:
    """What the live tail of one execution holds: the output per (step, run, attempt), and the last chunk."""

    after_id: int = 0
    texts: dict[tuple[int, int, int], str] = field(default_factory=dict)


ROLLBACK_CAPTIONS = {
    None: "Runs only if a step fails for good or times out (on_failure), or on a cancel (on_cancel).",
    "running": "Rollback running: the execution ends with its original outcome when it is done.",
    "completed": "Rollback completed: every rollback step completed.",
    "failed": "Rollback failed: a rollback step did not complete (the steps after it were skipped).",
}


def step_timeline(who: Principal, view: ExecutionView, outputs: Sequence[AttemptOutputView]) -> None:
    """The steps in order: status, attempt, duration; inside, each attempt's (masked, capped) output. The
    plan's rollback steps follow under their own heading, with how the rollback went (DESIGN §14)."""
    st.markdown("**Steps**")
    if not view.steps:
        st.caption("No steps.")
    by_step: dict[int, list[AttemptOutputView]] = {}
    for out in outputs:
        by_step.setdefault(out.step_index, []).append(out)
    _steps(who, view, view.steps, by_step)
    if view.rollback_steps:
        st.markdown("**Rollback**")
        st.caption(ROLLBACK_CAPTIONS.get(view.rollback_status, view.rollback_status or ""))
        _steps(who, view, view.rollback_steps, by_step)


def _steps(
    who: Principal, view: ExecutionView, steps: Sequence[StepView], by_step: dict[int, list[AttemptOutputView]]
) -> None:
    for step in steps:
        key = f"{state.STEP_OPEN}.{view.execution_id}.{step.index}"
        if key not in st.session_state and step.status == "running":
            st.session_state[key] = True  # a running step opens by itself, once: the operator decides after
        with st.expander(_label(step), key=key, on_change="rerun"):
            if step.error:
                st.error(md_text(step.error))
            earlier = [o for o in by_step.get(step.index, []) if not o.latest]
            for out in earlier:
                st.caption(f"Attempt {out.attempt}" + (f" of run {out.run}" if view.attempt > 1 else ""))
                st.code(out.output or NO_OUTPUT, language=None)
            if earlier:
                st.caption(f"Attempt {step.attempts}" + (" (running)" if step.status == "running" else ""))
            if step.status == "running":
                st.fragment(live_tail, run_every=LIVE_S)(
                    who, view.execution_id, (step.index, view.attempt, step.attempts)
                )
            else:
                latest = next((o.output for o in by_step.get(step.index, []) if o.latest), None)
                st.code(latest or step.output or (WAITING if step.status == "pending" else NO_OUTPUT), language=None)


def _label(step: StepView) -> str:
    icon = STEP_ICONS.get(step.status, ":material/help:")
    facts = step.status + (f" · attempt {step.attempts}" if step.attempts else "")
    if step.finished_at is not None and step.started_at is not None:  # a running step's label stays the same
        facts += f" · {(step.finished_at - step.started_at).total_seconds():.1f} s"
    elif step.started_at is not None:
        facts += f" · since {step.started_at.astimezone(UTC):%H:%M:%S} UTC"
    phase = f" · {step.phase}" if step.phase != "main" else ""
    return (
        f"{icon} {step.index}. {md_text(step.name)}{phase} · {md_text(step.action)} on {md_text(step.target)} · {facts}"
    )


def live_tail(who: Principal, execution_id: str, which: tuple[int, int, int]) -> None:
    """The running attempt's output so far, appended from the chunks written since the last look."""
    key = f"{state.LIVE_TAIL}.{execution_id}"
    held = st.session_state.get(key)
    if not isinstance(held, LiveTail):
        held = st.session_state[key] = LiveTail()
    for chunk in attempt(core.list_output_chunks, who, execution_id, after_id=held.after_id) or []:
        where = (chunk.step_index, chunk.run, chunk.attempt)
        held.texts[where] = held.texts.get(where, "") + chunk.text
        held.after_id = chunk.id
    st.code(held.texts.get(which) or WAITING, language=None)
    st.caption(f"Live: updated {datetime.now(UTC):%H:%M:%S} UTC")


def failure_banner(view: ExecutionView, outputs: Sequence[AttemptOutputView]) -> None:
    """Why it failed (exit code, timeout with its limit, cancelled by whom) and the failing step's last lines."""
    if view.status not in BANNER_STATUSES:
        if view.error:  # rejected, expired: the error says why, there is no step output to show
            st.error(md_text(view.error))
        return
    step = _failing(view)
    reason = view.error or (f"step {step.index} ({step.name}): {step.error}" if step and step.error else None)
    st.error(f"**{md_text(view.status.capitalize())}:** {md_text(reason or 'see the steps below')}")
    latest = None
    if step is not None:
        latest = next((o.output for o in outputs if o.step_index == step.index and o.latest), None) or step.output
    if step is not None and latest:
        lines = latest.rstrip("\n").splitlines()
        st.caption(f"Last {min(TAIL_LINES, len(lines))} lines of step {step.index}'s output (stdout and stderr)")
        st.code("\n".join(lines[-TAIL_LINES:]), language=None)


def _failing(view: ExecutionView) -> StepView | None:
    return next((s for s in view.steps if s.status in FAILED_STEPS), None)
