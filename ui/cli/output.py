"""How the CLI prints: one JSON object for scripts (§11), short plain-text summaries and tables for people.

Everything printed comes from core's views, whose outputs and errors are already masked; no secret
value ever reaches this module.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import typer
from pydantic import BaseModel

from core import ExecutionSummary, ExecutionView


def print_json(value: dict[str, Any]) -> None:
    """Print one JSON object (times are already ISO 8601 UTC in pydantic's JSON mode)."""
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False))


def as_json(view: BaseModel, **extra: Any) -> dict[str, Any]:
    """A view as a JSON-ready dict, plus ``extra`` keys (e.g. ``created`` for submit)."""
    return {**view.model_dump(mode="json"), **extra}


def fmt_time(value: datetime | None) -> str:
    """ISO 8601 in UTC to the second, or '-'."""
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A plain left-aligned text table."""
    cells = [[str(h) for h in headers]] + [["-" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells)


def approvals_given(view: ExecutionView) -> int:
    """Distinct approvers who approved the current plan hash (the gate approvals of level 3 excluded)."""
    return len(
        {
            a.approver
            for a in view.approvals
            if a.decision == "approved" and a.step_index is None and a.plan_hash == view.plan_hash
        }
    )


def render_execution(view: ExecutionView) -> str:
    """A short readable summary of one execution and its steps."""
    stopping = "  (cancel requested)" if view.cancel_requested_at and view.status == "running" else ""
    lines = [
        f"execution {view.execution_id}  {view.name}",
        f"  status     {view.status}{stopping}",
        f"  tenant     {view.tenant}  requested by {view.requested_by} at {fmt_time(view.created_at)}",
        f"  level      {view.approval_level}  approvals {approvals_given(view)}/{view.approvals_required}"
        f"  class {view.action_class}  sla {view.sla_class}  mode {view.execution_mode}  run {view.run_mode}",
        f"  plan hash  {view.plan_hash}",
    ]
    if view.status == "pending_approval" and view.approval_expires_at is not None:
        lines.append(f"  approve by {fmt_time(view.approval_expires_at)}")
    if view.started_at or view.finished_at:
        lines.append(f"  started    {fmt_time(view.started_at)}  finished {fmt_time(view.finished_at)}")
    if view.error:
        lines.append(f"  error      {view.error}")
    lines.append("")
    lines.append(
        table(
            ["#", "STEP", "ACTION", "TARGET", "CLASS", "STATUS", "ATTEMPTS"],
            ([s.index, s.name, s.action, s.target, s.action_class, s.status, s.attempts] for s in view.steps),
        )
    )
    lines.extend(f"  step {s.index} error: {s.error}" for s in view.steps if s.error)
    return "\n".join(lines)


def render_summaries(rows: Sequence[ExecutionSummary]) -> str:
    """The executions of a list, one per line."""
    if not rows:
        return "no executions"
    return table(
        ["ID", "STATUS", "LEVEL", "NAME", "REQUESTED BY", "CREATED"],
        ([r.execution_id, r.status, r.approval_level, r.name, r.requested_by, fmt_time(r.created_at)] for r in rows),
    )
