"""How the CLI prints: one JSON object for scripts (§11), short plain-text summaries and tables for people.

Everything printed comes from core's views, whose outputs and errors are already masked; no secret
value ever reaches this module. What people read goes through ``terminal_safe``: names, descriptions,
errors and output are user-supplied, and a control character in them (``ESC [2J``, a carriage return)
would rewrite the terminal. JSON needs no such care: it escapes control characters itself.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import typer

import core
from ui.visible_text import visible

if TYPE_CHECKING:
    from pydantic import BaseModel

_JSON_RAW = re.compile(r"[\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def terminal_safe(text: object, *, multiline: bool = False, indent: str = "") -> str:
    """``text`` for a terminal: control characters shown escaped (ESC as ``\\x1b``), never sent raw.

    Args:
        multiline: keep newlines and tabs (errors, output), each continuation line starting with ``indent``
            so that it cannot pass for a line of its own; otherwise (names, table cells) they are escaped too.
    """
    value = visible(text, one_line=not multiline)
    return value.replace("\n", "\n" + indent) if multiline and indent else value


def print_json(value: dict[str, Any]) -> None:
    """Print one JSON object (times are already ISO 8601 UTC in pydantic's JSON mode).

    json escapes C0 controls; DEL, C1 and the bidi overrides it leaves raw are escaped too (the same JSON).
    """
    text = json.dumps(value, indent=2, ensure_ascii=False)
    typer.echo(_JSON_RAW.sub(lambda match: f"\\u{ord(match.group(0)):04x}", text))


def as_json(view: BaseModel, **extra: Any) -> dict[str, Any]:
    """A view as a JSON-ready dict, plus ``extra`` keys (e.g. ``created`` for submit)."""
    return {**view.model_dump(mode="json"), **extra}


def execution_json(view: core.ExecutionView, outputs: Sequence[core.AttemptOutputView]) -> dict[str, Any]:
    """``show --json``: the view, each step with ``outputs``, one entry per attempt (run, attempt, output).

    Every attempt of the current run is listed, 1 to the step's ``attempts`` (the count the console and the
    text table show), its output empty if it printed nothing; earlier runs' attempts (before a DLQ requeue)
    are listed when they printed something.
    """
    data = as_json(view)
    by_step: dict[int, dict[tuple[int, int], str]] = {}
    for out in outputs:
        by_step.setdefault(out.step_index, {})[(out.run, out.attempt)] = out.output
    for step in data["steps"]:
        found = by_step.get(step["index"], {})
        for attempt in range(1, step["attempts"] + 1):
            found.setdefault((view.attempt, attempt), "")
        step["outputs"] = [
            {"run": run, "attempt": attempt, "output": text} for (run, attempt), text in sorted(found.items())
        ]
    return data


def fmt_time(value: datetime | None) -> str:
    """ISO 8601 in UTC to the second, or '-'."""
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A plain left-aligned text table."""
    cells = [[str(h) for h in headers]] + [["-" if c is None else terminal_safe(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells)


def approvals_given(view: core.ExecutionView) -> int:
    """Distinct approvers who approved the current plan hash (the gate approvals of level 3 excluded)."""
    return len(
        {
            a.approver
            for a in view.approvals
            if a.decision == "approved" and a.step_index is None and a.plan_hash == view.plan_hash
        }
    )


def render_execution(view: core.ExecutionView) -> str:
    """A short readable summary of one execution and its steps."""
    stopping = "  (cancel requested)" if view.cancel_requested_at and view.status == "running" else ""
    lines = [
        f"execution {view.execution_id}  {terminal_safe(view.name)}",
        f"  status     {view.status}{stopping}",
        f"  tenant     {terminal_safe(view.tenant)}  requested by {terminal_safe(view.requested_by)} at "
        f"{fmt_time(view.created_at)}",
        f"  level      {view.approval_level}  approvals {approvals_given(view)}/{view.approvals_required}"
        f"  class {view.action_class}  sla {view.sla_class}  priority {view.priority}  mode {view.execution_mode}"
        f"  run {view.run_mode}",
        f"  plan hash  {view.plan_hash}",
    ]
    if view.inputs:  # what the submitter chose; the steps below hold the same values
        chosen = ", ".join(f"{name}={json.dumps(value, ensure_ascii=False)}" for name, value in view.inputs.items())
        lines.append(f"  inputs     {terminal_safe(chosen)}")
    if view.rerun_of:
        lines.append(f"  rerun of {view.rerun_of}")
    if view.status == "pending_approval" and view.approval_expires_at is not None:
        lines.append(f"  approve by {fmt_time(view.approval_expires_at)}")
    if view.execution_limit_s is not None:  # running time: waits for approval, a lock or a gate do not count
        until = f"  deadline {fmt_time(view.deadline_at)}" if view.deadline_at and view.status == "running" else ""
        lines.append(f"  limits     {view.execution_limit_s}s of running time, each step's under LIMIT{until}")
    if view.started_at or view.finished_at:
        lines.append(f"  started    {fmt_time(view.started_at)}  finished {fmt_time(view.finished_at)}")
    if view.error:
        lines.append(f"  error      {terminal_safe(view.error, multiline=True, indent=' ' * 13)}")
    lines.append("")
    lines.append(
        table(
            ["#", "STEP", "ACTION", "TARGET", "CLASS", "STATUS", "ATTEMPTS", "LIMIT"],
            (
                [s.index, s.name, s.action, s.target, s.action_class, s.status, s.attempts, _seconds(s.step_limit_s)]
                for s in view.steps
            ),
        )
    )
    lines.extend(
        f"  step {s.index} error: {terminal_safe(s.error, multiline=True, indent=' ' * 4)}"
        for s in view.steps
        if s.error
    )
    lines.extend(_render_fanouts(view))
    lines.extend(_render_rollback(view))
    lines.extend(["", *render_plan(view)])
    return "\n".join(lines)


def _render_fanouts(view: core.ExecutionView) -> list[str]:
    """One line per fan-out step (DESIGN §14): its targets, how many at a time, its error limit, how far it got."""
    lines = []
    for group in view.fanouts:
        counts = ", ".join(f"{n} {status}" for status, n in sorted(group.counts.items()))
        lines.append(
            f"  fan-out {terminal_safe(group.step)}: {len(group.targets)} targets, {group.max_concurrency} at a time, "
            f"max_errors {group.max_errors}: {counts}"
        )
    return lines


def _render_rollback(view: core.ExecutionView) -> list[str]:
    """The plan's on_failure / on_cancel steps apart from the main ones (DESIGN §14), and how the rollback went."""
    if not view.rollback_steps:
        return []
    went = view.rollback_status or "not run"
    lines = ["", f"rollback   {went}"]
    lines.append(
        table(
            ["#", "PHASE", "STEP", "ACTION", "TARGET", "CLASS", "STATUS", "ATTEMPTS", "LIMIT"],
            (
                [
                    s.index,
                    s.phase,
                    s.name,
                    s.action,
                    s.target,
                    s.action_class,
                    s.status,
                    s.attempts,
                    _seconds(s.step_limit_s),
                ]
                for s in view.rollback_steps
            ),
        )
    )
    lines.extend(
        f"  step {s.index} error: {terminal_safe(s.error, multiline=True, indent=' ' * 4)}"
        for s in view.rollback_steps
        if s.error
    )
    return lines


def _seconds(value: int | None) -> str | None:
    return None if value is None else f"{value}s"


def render_plan(view: core.ExecutionView) -> list[str]:
    """What runs (DESIGN §13): each step's canonical params, secret references as references, and its dry run;
    then the diff against the last approved run of the same plan, when there is one."""
    if not view.plan_intact:
        lines = ["WARNING: the stored plan does not match its hash or its steps; approving it is refused, and the",
                 "worker refuses to run it."]  # fmt: skip
    else:
        lines = [f"what runs (the plan with hash {view.plan_hash[:16]}...):"]
    for s in [*view.steps, *view.rollback_steps]:
        if s.params is None:
            continue
        phase = f" [{s.phase}]" if s.phase != "main" else ""  # runs only on a failure or a cancel
        lines.append(
            f"  {s.index}. {terminal_safe(s.name)}{phase}: {s.action} on {terminal_safe(s.target)} ({s.action_class})"
        )
        params = json.dumps(s.params, sort_keys=True, ensure_ascii=False)
        lines.append(f"     params   {terminal_safe(params)}")
        if s.dry_run:
            lines.append(f"     dry run  {terminal_safe(s.dry_run, multiline=True, indent=' ' * 14)}")
    if view.changes_since_approved and view.compared_with:
        lines.append("")
        lines.append(f"changed since the last approved run of {terminal_safe(view.name)} ({view.compared_with}):")
        lines.append(terminal_safe(view.changes_since_approved.rstrip("\n"), multiline=True))
    return lines


def render_summaries(rows: Sequence[core.ExecutionSummary]) -> str:
    """The executions of a list, one per line."""
    if not rows:
        return "no executions"
    return table(
        ["ID", "STATUS", "LEVEL", "NAME", "REQUESTED BY", "CREATED"],
        ([r.execution_id, r.status, r.approval_level, r.name, r.requested_by, fmt_time(r.created_at)] for r in rows),
    )
