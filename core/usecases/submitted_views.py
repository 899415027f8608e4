"""The views of executions a submit has just written, built from what it wrote instead of read back.

A new execution has no approvals, no progress and no error yet; its rows agree with its plan (they were
written from it), and its tenant and requester are the principal's. So ``build_view``
(core/reads/executions.py) would only add two things, and they are done the same way here: each step
rendered from the canonical plan with its dry run (core/reads/plan_view.py's renderer, the one every
approval surface uses), and the diff against the last earlier approved execution of the same plan name in
the tenant: one read for a whole batch, where ``build_view`` makes one per execution. A batch's own earlier
plan of the same name counts as earlier, as it would for submits made one after the other.
tests/integration/test_submit_batch.py holds these views equal to ``get_execution``'s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import bindparam, func
from sqlalchemy import select as select_columns
from sqlmodel import Session, col, select

from core.approval_rules import verified_plan
from core.inventory.assets import asset_view
from core.plans import APPROVALS_REQUIRED

# The renderer and the diff of the approval surfaces (private there: core/reads is read-side code; the same
# functions keep a submit's view from drifting from what get_execution shows).
from core.reads.plan_view import APPROVED_STATUSES, _diff, _render
from core.schemas import AssetView, ExecutionView, PlanStepView, Principal, StepView
from core.usecases.submission_rows import NewExecution
from db.enums import StepStatus
from db.tables import Asset, Execution


def fresh_views(session: Session, principal: Principal, executions: Sequence[NewExecution]) -> list[ExecutionView]:
    """The views of ``executions`` (just written in this session's transaction), in order."""
    if not executions:
        return []
    assets = {a.id: a for e in executions for a in e.judged.assets.values()}
    earlier = _earlier_approved(session, principal.tenant_id, executions)
    before = {e.id: plan for e in earlier.values() if (plan := verified_plan(e)) is not None}
    missing = {
        s["target"]
        for plan in before.values()
        for s in plan["steps"]
        if isinstance(s, Mapping) and isinstance(s.get("target"), str) and s["target"] not in assets
    }
    if missing:
        rows = session.exec(select(Asset).where(Asset.tenant_id == principal.tenant_id, col(Asset.id).in_(missing)))
        assets |= {a.id: asset_view(a) for a in rows.all()}
    views: list[ExecutionView] = []
    latest: dict[str, NewExecution] = {}  # by plan name: this batch's newest approved execution so far
    for execution in executions:
        steps = _steps(execution, assets)
        name = execution.row["name"]
        previous = latest.get(name) or earlier.get(name)
        diff, compared_with = None, None
        if previous is not None:
            plan = before.get(previous.id) if isinstance(previous, Execution) else previous.judged.canonical
            diff = _diff(_as_row(previous), _render(plan, assets), steps) if plan else None
            compared_with = previous.id if diff is not None else None
        if execution.status.value in APPROVED_STATUSES:
            latest[name] = execution
        views.append(_view(principal, execution, steps, diff, compared_with))
    return views


def _earlier_approved(session: Session, tenant_id: str, executions: Sequence[NewExecution]) -> dict[str, Execution]:
    """By plan name: the newest execution created before the batch that passed approval (plan_view's rule),
    with the columns the diff needs (an unattached object: it is only read)."""
    names = sorted({e.row["name"] for e in executions})
    found = session.execute(
        _EARLIER_APPROVED, {"tenant_id": tenant_id, "names": names, "before": executions[0].created_at}
    )
    return {row.name: Execution(**row._asdict()) for row in found.all()}


# Built once, on the table (SQLAlchemy Core): one row per name, by a window over the name's approved
# executions, newest first as plan_view's per-execution query orders them.
_EXECUTIONS = Execution.__table__  # type: ignore[attr-defined]
_COLUMNS = [_EXECUTIONS.c[name] for name in ("id", "name", "status", "plan_json", "plan_hash")]
_RANKED = (
    select_columns(
        *_COLUMNS,
        func.row_number().over(partition_by=_EXECUTIONS.c.name, order_by=_EXECUTIONS.c.created_at.desc()).label("rank"),
    )
    .where(
        _EXECUTIONS.c.tenant_id == bindparam("tenant_id"),
        _EXECUTIONS.c.name.in_(bindparam("names", expanding=True)),
        _EXECUTIONS.c.created_at < bindparam("before"),
        _EXECUTIONS.c.status.in_(APPROVED_STATUSES),
    )
    .subquery()
)
_EARLIER_APPROVED = select_columns(*(_RANKED.c[c.name] for c in _COLUMNS)).where(_RANKED.c.rank == 1)


def _as_row(previous: NewExecution | Execution) -> Execution:
    """What the diff's header names (id and status): the row itself, or the batch's own execution."""
    if isinstance(previous, Execution):
        return previous
    return Execution(**{**previous.row, "status": previous.status.value})


def _steps(execution: NewExecution, assets: Mapping[str, AssetView]) -> list[PlanStepView]:
    """The plan's steps as the approver sees them, each with the timeout it runs with under the policy."""
    plan = execution.judged.plan
    return [
        shown.model_copy(update={"step_limit_s": plan.step_limit_s(planned)})
        for shown, planned in zip(_render(execution.judged.canonical, assets), plan.steps, strict=True)
    ]


def _view(
    principal: Principal,
    execution: NewExecution,
    steps: list[PlanStepView],
    diff: str | None,
    compared_with: str | None,
) -> ExecutionView:
    row = execution.row
    return ExecutionView(
        execution_id=execution.id,
        name=row["name"],
        status=execution.status.value,
        tenant_id=principal.tenant_id,
        tenant=principal.tenant,
        requested_by=principal.username,
        action_class=row["action_class"],
        approval_level=row["approval_level"],
        sla_class=row["sla_class"],
        execution_mode=row["execution_mode"],
        run_mode=row["run_mode"],
        created_at=row["created_at"],
        started_at=None,
        finished_at=None,
        description=row["description"],
        plan_hash=row["plan_hash"],
        idempotency_key=row["idempotency_key"],
        continue_on_error=row["continue_on_error"],
        attempt=row["attempt"],
        error=None,
        approvals_required=APPROVALS_REQUIRED[row["approval_level"]],
        approval_expires_at=row["approval_expires_at"],
        cancel_requested_at=None,
        approvals=[],
        steps=[
            StepView(
                index=s.index,
                name=s.name,
                action=s.action,
                target=s.target,
                action_class=s.action_class,
                status=StepStatus.PENDING.value,
                attempts=0,
                timeout_s=s.timeout_s,
                started_at=None,
                finished_at=None,
                output=None,
                error=None,
                params=s.params,
                dry_run=s.dry_run,
                step_limit_s=s.step_limit_s,
            )
            for s in steps
        ],
        plan_intact=True,
        changes_since_approved=diff,
        compared_with=compared_with,
        execution_limit_s=execution.judged.policy.execution_s,
        deadline_at=None,
    )
