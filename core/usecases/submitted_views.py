"""The views of executions a submit has just written, assembled from what it wrote instead of read back.

The view is the one every read assembles (core/reads/execution_view.py, with the plan review of
core/reads/plan_review.py), fed by a row source that answers from the rows this transaction wrote: the
execution and its steps as written, no approvals yet, the principal's own name and tenant (verified in this
transaction), the targets and policy rows the submit was judged with. The one thing it reads is what the
review compares with: the last earlier approved execution of each plan name in the tenant, one read for a
whole batch (and their targets, when they are not the batch's); a batch's own earlier plan of the same name
counts as earlier, as it would for submits made one after the other.
tests/integration/test_submit_batch.py holds these views equal to ``get_execution``'s.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from sqlalchemy import bindparam, func
from sqlalchemy import select as select_columns
from sqlmodel import Session

from core.reads import execution_view
from core.reads.plan_review import APPROVED_STATUSES
from core.rows import (
    ApprovalRow,
    AssetRecord,
    ExecutionRecord,
    ExecutionRow,
    PolicyRecord,
    PolicyRow,
    StepRecord,
    StepRow,
)
from core.schemas import ExecutionView, PolicyView, Principal
from core.usecases.submission_rows import NewExecution
from db.tables import Asset, Execution


def fresh_views(
    session: Session, principal: Principal, executions: Sequence[NewExecution], policies: Collection[PolicyView]
) -> list[ExecutionView]:
    """The views of ``executions`` (just written in this session's transaction), in order; ``policies``: the
    policy rows they were judged under."""
    if not executions:
        return []
    source = _Written(session, principal, executions, policies)
    return [execution_view.build_view(source, source.rows[e.id]) for e in executions]


class _Written:
    """``execution_view.ViewSource`` over the executions a transaction has just written (see the module docstring)."""

    def __init__(
        self,
        session: Session,
        principal: Principal,
        executions: Sequence[NewExecution],
        policies: Collection[PolicyView],
    ) -> None:
        self.session = session
        self.principal = principal
        self.rows = {e.id: _execution_record(e) for e in executions}
        self.step_rows = {e.id: [_step_record(s) for s in e.steps] for e in executions}
        self.known_assets = {a.id: a for e in executions for a in e.judged.assets.values()}
        self.policy_rows = [PolicyRecord(p.sla_class, p.action_class, p.step_s, p.execution_s) for p in policies]
        earlier = _earlier_approved(session, principal.tenant_id, executions)
        self.previous: dict[str, ExecutionRow | None] = {}
        latest: dict[str, ExecutionRow] = {}  # by plan name: this batch's newest approved execution so far
        for e in executions:
            name = e.row["name"]
            self.previous[e.id] = latest.get(name) or earlier.get(name)
            if e.status.value in APPROVED_STATUSES:
                latest[name] = self.rows[e.id]

    def steps(self, execution: ExecutionRow) -> Sequence[StepRow]:
        return self.step_rows[execution.id]

    def approvals(self, execution: ExecutionRow) -> Sequence[tuple[ApprovalRow, str]]:
        return []  # a new execution has none

    def usernames(self, user_ids: Collection[str]) -> Mapping[str, str]:
        return {self.principal.user_id: self.principal.username}

    def tenant_names(self, tenant_ids: Collection[str]) -> Mapping[str, str]:
        return {self.principal.tenant_id: self.principal.tenant}

    def last_approved(self, execution: ExecutionRow) -> ExecutionRow | None:
        return self.previous[execution.id]

    def assets(self, tenant_id: str, ids: Collection[str]) -> Sequence[AssetRecord]:
        missing = sorted(i for i in ids if i not in self.known_assets)
        if missing:  # an earlier run's targets that this batch does not name
            rows = self.session.execute(_ASSETS_BY_ID, {"tenant_id": tenant_id, "ids": missing})
            self.known_assets |= {row.id: AssetRecord(*row) for row in rows}
        return [self.known_assets[i] for i in ids if i in self.known_assets]

    def policies(self) -> Sequence[PolicyRow]:
        return self.policy_rows


def _execution_record(execution: NewExecution) -> ExecutionRecord:
    """The row as written (columns it leaves unset are NULL), with the status it has once queued."""
    values: dict[str, Any] = {name: execution.row.get(name) for name in ExecutionRecord.__dataclass_fields__}
    return ExecutionRecord(**(values | {"status": execution.status.value}))


def _step_record(row: Mapping[str, Any]) -> StepRecord:
    values: dict[str, Any] = {name: row.get(name) for name in StepRecord.__dataclass_fields__}
    return StepRecord(**values)


def _earlier_approved(
    session: Session, tenant_id: str, executions: Sequence[NewExecution]
) -> dict[str, ExecutionRecord]:
    """By plan name: the newest execution created before the batch that passed approval (the review's rule)."""
    names = sorted({e.row["name"] for e in executions})
    found = session.execute(
        _EARLIER_APPROVED, {"tenant_id": tenant_id, "names": names, "before": executions[0].created_at}
    )
    return {row.name: ExecutionRecord(*row[:-1]) for row in found}


# Built once, on the tables (SQLAlchemy Core), the columns in the records' order (core/rows.py). One row per
# name: a window over the name's approved executions, newest first, as the review's per-execution query.
_EXECUTIONS = Execution.__table__  # type: ignore[attr-defined]
_COLUMNS = [_EXECUTIONS.c[name] for name in ExecutionRecord.__dataclass_fields__]
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
_EARLIER_APPROVED = select_columns(*(_RANKED.c[c.name] for c in _COLUMNS), _RANKED.c.rank).where(_RANKED.c.rank == 1)
_ASSETS = Asset.__table__  # type: ignore[attr-defined]
_ASSETS_BY_ID = select_columns(*(_ASSETS.c[f] for f in AssetRecord.__dataclass_fields__)).where(
    _ASSETS.c.tenant_id == bindparam("tenant_id"), _ASSETS.c.id.in_(bindparam("ids", expanding=True))
)
