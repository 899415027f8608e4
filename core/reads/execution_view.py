"""An execution in full (``ExecutionView``), assembled from its rows, whichever source read them.

What each step runs (name, action, target, class, timeout, params, dry run) is read from the hashed plan
(core/reads/plan_review.py); its progress from its row. A stored plan that no longer matches its hash shows
the rows' copies, without params; it, or rows that disagree with the plan, make ``plan_intact`` False.

The rows come from a ``ViewSource``: the ORM session (core/reads/executions.py, for every use case and the
console) or the one-shot reader of ``show`` (core/reads/direct_sql.py, issue 15), so the view is assembled
once. Must not import SQLAlchemy, SQLModel or the tables.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Protocol

from core.approval_levels import APPROVALS_REQUIRED
from core.reads import plan_review
from core.reads.plan_review import ReviewSource
from core.rows import ApprovalRow, ExecutionRow, StepRow
from core.schemas import (
    ApprovalView,
    ExecutionSummary,
    ExecutionView,
    FanoutGroupView,
    FanoutTargetView,
    PlanStepView,
    StepView,
)
from db.enums import StepPhase


class ViewSource(ReviewSource, Protocol):
    """The rows a view reads besides the execution itself. Every answer is scoped by the execution's tenant."""

    def steps(self, execution: ExecutionRow) -> Sequence[StepRow]:
        """The execution's step rows, by index."""
        ...

    def approvals(self, execution: ExecutionRow) -> Sequence[tuple[ApprovalRow, str]]:
        """The execution's decisions, oldest first, each with its approver's username."""
        ...

    def usernames(self, user_ids: Collection[str]) -> Mapping[str, str]:
        """Username by user id."""
        ...

    def tenant_names(self, tenant_ids: Collection[str]) -> Mapping[str, str]:
        """Tenant name by tenant id."""
        ...


def build_view(source: ViewSource, execution: ExecutionRow) -> ExecutionView:
    """The full DTO of an execution: steps, approvals, names resolved, the review of its plan."""
    steps = source.steps(execution)
    seen = plan_review.review(source, [execution], {execution.id: steps})[execution.id]
    planned = {p.index: p for p in seen.steps or []}
    approvals = source.approvals(execution)
    summary = summaries(source, [execution])[0]
    main = [step_view(s, planned.get(s.step_index)) for s in steps if s.phase == StepPhase.MAIN]
    return ExecutionView(
        **summary.model_dump(),
        description=execution.description,
        plan_hash=execution.plan_hash,
        idempotency_key=execution.idempotency_key,
        continue_on_error=execution.continue_on_error,
        attempt=execution.attempt,
        error=execution.error,
        approvals_required=APPROVALS_REQUIRED[execution.approval_level],
        approval_expires_at=execution.approval_expires_at,
        cancel_requested_at=execution.cancel_requested_at,
        rerun_of=execution.rerun_of,
        approvals=[
            ApprovalView(
                approver=username,
                decision=a.decision,
                comment=a.comment,
                plan_hash=a.plan_hash,
                step_index=a.step_index,
                created_at=a.created_at,
            )
            for a, username in approvals
        ],
        steps=main,
        fanouts=fanout_groups(main),
        rollback_steps=[step_view(s, planned.get(s.step_index)) for s in steps if s.phase != StepPhase.MAIN],
        rollback_status=execution.rollback_status,
        priority=execution.priority,
        plan_intact=seen.intact,
        changes_since_approved=seen.changes_since_approved,
        compared_with=seen.compared_with,
        execution_limit_s=seen.execution_limit_s,
        deadline_at=execution.deadline_at,
        inputs=seen.inputs,
    )


def step_view(row: StepRow, planned: PlanStepView | None) -> StepView:
    """A step's progress from its row; what it runs from the plan (the row's copies only without one)."""
    return StepView(
        index=row.step_index,
        name=planned.name if planned else row.name,
        action=planned.action if planned else row.action,
        target=planned.target if planned else row.target_name,
        action_class=planned.action_class if planned else row.action_class,
        status=row.status,
        attempts=row.attempts,
        timeout_s=planned.timeout_s if planned else row.timeout_s,
        started_at=row.started_at,
        finished_at=row.finished_at,
        output=row.output,
        error=row.error,
        params=planned.params if planned else None,
        dry_run=planned.dry_run if planned else None,
        step_limit_s=planned.step_limit_s if planned else None,
        phase=row.phase,
        fanout=planned.fanout if planned else None,
    )


def fanout_groups(steps: Sequence[StepView]) -> list[FanoutGroupView]:
    """The fan-out steps among ``steps``, each with its targets in order and a count per status."""
    groups: list[FanoutGroupView] = []
    for step in steps:
        fan = step.fanout
        if fan is None:
            continue
        if fan.position == 0 or not groups or groups[-1].step != fan.step:
            groups.append(
                FanoutGroupView(
                    step=fan.step, max_concurrency=fan.max_concurrency, max_errors=fan.max_errors, targets=[], counts={}
                )
            )
        group = groups[-1]
        group.targets.append(
            FanoutTargetView(
                index=step.index,
                target=step.target,
                status=step.status,
                attempts=step.attempts,
                started_at=step.started_at,
                finished_at=step.finished_at,
            )
        )
        group.counts[step.status] = group.counts.get(step.status, 0) + 1
    return groups


def summaries(source: ViewSource, rows: Sequence[ExecutionRow]) -> list[ExecutionSummary]:
    """The list rows of these executions (requester and tenant by name)."""
    users = source.usernames({r.requested_by for r in rows}) if rows else {}
    tenants = source.tenant_names({r.tenant_id for r in rows}) if rows else {}
    return [
        ExecutionSummary(
            execution_id=r.id,
            name=r.name,
            status=r.status,
            tenant_id=r.tenant_id,
            tenant=tenants[r.tenant_id],
            requested_by=users[r.requested_by],
            action_class=r.action_class,
            approval_level=r.approval_level,
            sla_class=r.sla_class,
            execution_mode=r.execution_mode,
            run_mode=r.run_mode,
            created_at=r.created_at,
            started_at=r.started_at,
            finished_at=r.finished_at,
        )
        for r in rows
    ]
