"""What will run: an execution's steps as its hashed plan says (action, target, canonical params with secret
references as references) with each step's dry run, and the diff against the last approved run.

All of it is user text (names, commands, params): shown with ``st.code``, never as markdown.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import streamlit as st

from core import ExecutionView, StepView
from ui.components.plain import visible

NOT_INTACT = (
    "The stored plan no longer matches the hash it was submitted with, or its steps were changed in the "
    "database: it cannot be approved, and the worker refuses to run it."
)


def steps_text(steps: Sequence[StepView]) -> str:
    """One block per step: ``index. name: action on target (class, limit)``, its params as JSON, its dry run.

    The limit is the timeout the step runs with (its own, or the policy's; the policy's cap applies)."""
    blocks = []
    for step in steps:
        timeout = _limit(step.timeout_s, step.step_limit_s)
        head = f"{visible(step.name, one_line=True)}: {visible(step.action, one_line=True)} on "
        lines = [f"{step.index}. {head}{visible(step.target, one_line=True)} ({step.action_class}{timeout})"]
        if step.params is not None:
            lines.append("   params   " + json.dumps(step.params, sort_keys=True, ensure_ascii=False))
        if step.dry_run:
            lines.append("   dry run  " + step.dry_run.replace("\n", "\n            "))
        blocks.append("\n".join(lines))
    return visible("\n".join(blocks))


def _limit(declared: int | None, limit: int | None) -> str:
    """ ", timeout 9s" (declared and held), ", timeout 9s cut to 5s by the policy", ", limit 5s (policy)"."""
    if limit is None:
        return f", timeout {declared}s" if declared else ""
    if not declared:
        return f", limit {limit}s (policy)"
    return f", timeout {declared}s" + (f" cut to {limit}s by the policy" if limit < declared else "")


def what_runs(view: ExecutionView, *, title: str = "What will run", show_limit: bool = True) -> None:
    """The commands the approval covers, a warning if the plan was tampered with, the execution's running time
    (unless ``show_limit`` is off: the page says it elsewhere), and the diff if any."""
    if not view.plan_intact:
        st.error(NOT_INTACT)
    heading = f"# {title.lower()}: the plan with hash {view.plan_hash[:16]}… (secrets shown as references)\n"
    if view.inputs:  # what the submitter chose for the plan's inputs (the steps hold the same values)
        chosen = ", ".join(f"{name}={json.dumps(value, ensure_ascii=False)}" for name, value in view.inputs.items())
        heading += f"# inputs: {visible(chosen, one_line=True)}\n"
    st.code(heading + (steps_text(view.steps) or "(no steps)"), language=None, wrap_lines=True)
    if show_limit and view.execution_limit_s is not None:
        st.caption(
            f"Limits: each step runs at most its limit above; the execution gets {view.execution_limit_s} s of "
            "running time (waits for approval, a lock or a level-3 gate do not count)."
        )
    if view.changes_since_approved and view.compared_with:
        st.caption(f"Changed since the last approved run of this plan ({view.compared_with[:8]})")
        st.code(visible(view.changes_since_approved), language="diff")
