"""The plan review (core/reads/plan_review.py) fed by the ORM: the rows it reads, through a Session.

``review(session, …)`` is what the console, the inbox, the approve use case and every other ORM read call;
the one-shot ``show`` feeds the same review from a DB-API connection (core/reads/direct_sql.py). The name
links runs for the diff through one indexed query per execution (the name has an index on both databases,
db/tables.py).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from sqlmodel import Session, col, select

from core.reads import plan_review
from core.reads.plan_review import APPROVED_STATUSES, Review
from core.rows import ExecutionRow
from db.tables import Asset, Execution, ExecutionStep, TimeoutPolicy


class SessionReviewRows:
    """The rows a review reads, through an ORM session (``plan_review.ReviewSource``)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def last_approved(self, execution: ExecutionRow) -> Execution | None:
        """The newest earlier execution of the same plan name in the tenant that passed approval."""
        return self.session.exec(
            select(Execution)
            .where(
                Execution.tenant_id == execution.tenant_id,
                Execution.name == execution.name,
                Execution.id != execution.id,
                col(Execution.created_at) < execution.created_at,
                col(Execution.status).in_(APPROVED_STATUSES),
            )
            .order_by(col(Execution.created_at).desc())
            .limit(1)
        ).first()

    def assets(self, tenant_id: str, ids: Collection[str]) -> Sequence[Asset]:
        """The tenant's assets with these ids."""
        return self.session.exec(select(Asset).where(Asset.tenant_id == tenant_id, col(Asset.id).in_(ids))).all()

    def policies(self) -> Sequence[TimeoutPolicy]:
        """Every timeout policy row."""
        return self.session.exec(select(TimeoutPolicy)).all()


def review(
    session: Session,
    executions: Sequence[Execution],
    step_rows: Mapping[str, Sequence[ExecutionStep]],
    *,
    compare: bool = True,
) -> dict[str, Review]:
    """The review of each execution (by id): rendered steps, intactness and, with ``compare``, the diff."""
    return plan_review.review(SessionReviewRows(session), executions, step_rows, compare=compare)
