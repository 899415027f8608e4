"""Reading executions: one, a filtered page of many, their events, and waiting for an end.

Every query is scoped by the principal's tenant; an id from another tenant is NotFound. The Executions list
pages by keyset (``list_executions_page``: a cursor on (created_at, id), never a COUNT or a deep OFFSET), so
a page costs the same at row 10 and at row 100,000; every filter has an index (docs/benchmarks.md).
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Select, and_, or_, text, tuple_
from sqlalchemy import select as select_columns
from sqlmodel import Session, col, select

from core.errors import DeadlineExceeded, InvalidInput, NotFound
from core.fsm import TERMINAL
from core.identity import rbac
from core.identity.permissions import Permission
from core.reads import execution_view
from core.reads.plan_view import SessionReviewRows
from core.rows import ExecutionRow
from core.schemas import EventView, ExecutionPage, ExecutionSummary, ExecutionView, Principal
from core.transactions import session_scope
from db.enums import ExecutionStatus
from db.tables import Approval, Asset, Execution, ExecutionEvent, ExecutionStep, Tenant, User

MAX_PAGE = 500
MIN_SEARCH = 3


def load_execution(session: Session, tenant_id: str, execution_id: str) -> Execution:
    """The execution row, scoped by tenant. Raises NotFound."""
    row = session.exec(select(Execution).where(Execution.id == execution_id, Execution.tenant_id == tenant_id)).first()
    if row is None:
        raise NotFound("execution", execution_id)
    return row


class SessionViewRows(SessionReviewRows):
    """The rows a view reads, through an ORM session (``execution_view.ViewSource``)."""

    def steps(self, execution: ExecutionRow) -> Sequence[ExecutionStep]:
        """The execution's step rows, by index."""
        return self.session.exec(
            select(ExecutionStep)
            .where(ExecutionStep.execution_id == execution.id, ExecutionStep.tenant_id == execution.tenant_id)
            .order_by(col(ExecutionStep.step_index))
        ).all()

    def approvals(self, execution: ExecutionRow) -> Sequence[tuple[Approval, str]]:
        """The execution's decisions, oldest first, with their approvers' usernames."""
        return self.session.exec(
            select(Approval, User.username)
            .join(User, User.id == Approval.approver_id)  # type: ignore[arg-type]
            .where(Approval.execution_id == execution.id, Approval.tenant_id == execution.tenant_id)
            .order_by(col(Approval.created_at))
        ).all()

    def usernames(self, user_ids: Collection[str]) -> dict[str, str]:
        """Username by user id."""
        return dict(self.session.exec(select(User.id, User.username).where(col(User.id).in_(user_ids))).all())

    def tenant_names(self, tenant_ids: Collection[str]) -> dict[str, str]:
        """Tenant name by tenant id."""
        return dict(self.session.exec(select(Tenant.id, Tenant.name).where(col(Tenant.id).in_(tenant_ids))).all())


def build_view(session: Session, execution: Execution) -> ExecutionView:
    """The full DTO of an execution: steps, approvals, names resolved (core/reads/execution_view.py)."""
    return execution_view.build_view(SessionViewRows(session), execution)


def get_execution(principal: Principal, execution_id: str) -> ExecutionView:
    """One execution of the principal's tenant, in full.

    Raises:
        NotFound: no such execution in this tenant. PermissionDenied: no role in the tenant any more.
    """
    with session_scope() as session:
        rbac.require(session, principal, Permission.READ)
        return build_view(session, load_execution(session, principal.tenant_id, execution_id))


def list_executions(
    principal: Principal,
    *,
    status: Collection[ExecutionStatus] | ExecutionStatus | None = None,
    requested_by: str | None = None,
    asset: str | None = None,
    search: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[ExecutionSummary]:
    """A page of the tenant's executions, newest first, filtered (filters as ``list_executions_page``).

    Args:
        limit: page size, 1-500. offset: rows to skip; the database still reads them, so deep pages get slow:
            prefer ``list_executions_page`` and its cursor.
    """
    _check_limit(limit)
    _check_search(search)
    _check_range(created_after, created_before)
    if offset < 0:
        raise InvalidInput("must not be negative", path="offset")
    with session_scope() as session:
        rbac.require(session, principal, Permission.READ)
        _plan_for_a_page(session)
        query = _filtered(
            session,
            principal.tenant_id,
            _Filters(status, requested_by, asset, search, created_after, created_before),
        )
        if query is None:
            return []
        return _list_rows(session, principal, query.offset(offset).limit(limit))


def list_executions_page(
    principal: Principal,
    *,
    status: Collection[ExecutionStatus] | ExecutionStatus | None = None,
    requested_by: str | None = None,
    asset: str | None = None,
    search: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    before: str | None = None,
    limit: int = 50,
) -> ExecutionPage:
    """A page of the tenant's executions, newest first, filtered, with the cursor of the next page.

    Args:
        status: one status or several. requested_by: a username. asset: an asset name of the tenant
            (executions with a step on it). search: a substring of the name (case-insensitive, 3 characters at
            least) or a prefix of the id (4 hex digits at least). created_after / created_before: a half-open
            range ``[after, before)`` on ``created_at``; timezone-aware datetimes (naive ones are refused).
        before: the ``next_cursor`` of the previous page (None: the first page). limit: page size, 1-500.

    Raises:
        InvalidInput: a bad limit, cursor or search term, or a naive datetime. PermissionDenied: no role in the
            tenant.
    """
    _check_limit(limit)
    _check_search(search)
    _check_range(created_after, created_before)
    position = decode_cursor(before) if before else None
    with session_scope() as session:
        rbac.require(session, principal, Permission.READ)
        _plan_for_a_page(session)
        query = _filtered(
            session,
            principal.tenant_id,
            _Filters(status, requested_by, asset, search, created_after, created_before),
        )
        if query is None:
            return ExecutionPage(items=[], next_cursor=None)
        if position is not None:
            query = query.where(tuple_(col(Execution.created_at), col(Execution.id)) < tuple_(*position))
        # One row more than a page says whether there is a next one, without counting the rest.
        items = _list_rows(session, principal, query.limit(limit + 1))
        if len(items) <= limit:
            return ExecutionPage(items=items, next_cursor=None)
        last = items[limit - 1]
        return ExecutionPage(items=items[:limit], next_cursor=encode_cursor(last.created_at, last.execution_id))


def encode_cursor(created_at: datetime, execution_id: str) -> str:
    """The opaque cursor of a list position: the (created_at, id) of the last row shown."""
    raw = f"{created_at.astimezone(UTC).isoformat()}|{execution_id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The (created_at, id) a cursor encodes. Raises InvalidInput (path ``before``) for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, execution_id = raw.split("|")
        created_at = datetime.fromisoformat(stamp)
    except ValueError as exc:  # binascii.Error and UnicodeDecodeError are ValueErrors
        raise InvalidInput("not a cursor returned by list_executions_page", path="before") from exc
    if created_at.tzinfo is None or not _ID.fullmatch(execution_id):
        raise InvalidInput("not a cursor returned by list_executions_page", path="before")
    return created_at, execution_id


_ID = re.compile(r"[0-9a-f]{32}")
# Four hex digits at least: a shorter term is a word ("db", "api"), not an id someone pasted.
_ID_PREFIX = re.compile(r"[0-9a-f]{4,32}")


class _Filters(NamedTuple):
    status: Collection[ExecutionStatus] | ExecutionStatus | None
    requested_by: str | None
    asset: str | None
    search: str | None
    created_after: datetime | None
    created_before: datetime | None


def _plan_for_a_page(session: Session) -> None:
    """On PostgreSQL, plan this transaction for a short LIMIT read: no parallel workers, no JIT.

    A parallel Gather Merge under a LIMIT makes every worker scan its own share of the index until the
    leader has its page: with a selective filter (an asset's executions) that was 3-8 times the work of a
    plain backward scan (60-90 ms against 6-12 ms at 1M executions, docs/benchmarks.md).
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL max_parallel_workers_per_gather = 0; SET LOCAL jit = off"))


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"must be between 1 and {MAX_PAGE}", path="limit")


def _check_range(created_after: datetime | None, created_before: datetime | None) -> None:
    # Refused rather than read as UTC: a naive time is usually the caller's local time, and guessing would
    # shift the range by its offset without a word. Every time the API returns is aware UTC (db/clock.py).
    for path, moment in (("created_after", created_after), ("created_before", created_before)):
        if moment is None:
            continue
        if not isinstance(moment, datetime):
            raise InvalidInput(f"must be a datetime, not {type(moment).__name__}", path=path)
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise InvalidInput("must be timezone-aware (e.g. datetime(..., tzinfo=UTC))", path=path)


def _check_search(search: str | None) -> None:
    # A trigram index needs three characters: a shorter term that matches nothing would read the tenant's
    # whole history (about 1 s at 600,000 executions).
    if search is not None and 0 < len(search.strip()) < MIN_SEARCH:
        raise InvalidInput(f"type at least {MIN_SEARCH} characters to search", path="search")


def _filtered(session: Session, tenant_id: str, filters: _Filters) -> Select[Any] | None:
    """The list query (summary columns, newest first) with every filter applied; None if nothing can match.

    Each filter has an index behind it (db/tables.py): (tenant, status, created), (tenant, requester, created),
    (tenant, created) for the date range, (tenant, asset, execution) on steps, and on PostgreSQL a trigram
    GIN index on the name for the substring search (the id prefix uses the primary key).
    """
    query = (
        select_columns(*_SUMMARY_COLUMNS)
        .join(User, col(User.id) == col(Execution.requested_by))
        .where(col(Execution.tenant_id) == tenant_id)
    )
    if filters.status is not None:
        wanted = [filters.status] if isinstance(filters.status, ExecutionStatus) else list(filters.status)
        query = query.where(col(Execution.status).in_([ExecutionStatus(s).value for s in wanted]))
    if filters.requested_by is not None:
        user_id = session.exec(select(User.id).where(User.username == filters.requested_by)).first()
        if user_id is None:
            return None
        query = query.where(col(Execution.requested_by) == user_id)
    if filters.asset is not None:
        asset_id = session.exec(
            select(Asset.id).where(Asset.tenant_id == tenant_id, Asset.name == filters.asset)
        ).first()
        if asset_id is None:
            return None
        on_asset = select(ExecutionStep.execution_id).where(
            ExecutionStep.tenant_id == tenant_id, ExecutionStep.target_asset_id == asset_id
        )
        query = query.where(col(Execution.id).in_(on_asset))
    term = (filters.search or "").strip()
    if term:
        query = query.where(_search(term))
    if filters.created_after is not None:
        query = query.where(col(Execution.created_at) >= filters.created_after)
    if filters.created_before is not None:
        query = query.where(col(Execution.created_at) < filters.created_before)
    return query.order_by(col(Execution.created_at).desc(), col(Execution.id).desc())


def _search(term: str) -> ColumnElement[bool]:
    """Name contains ``term`` (case-insensitive; ``%`` and ``_`` match themselves), or the id starts with it."""
    pattern = "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    by_name = col(Execution.name).ilike(pattern, escape="\\")
    prefix = term.lower()
    if not _ID_PREFIX.fullmatch(prefix):
        return by_name
    # Ids are lowercase hex, so "starts with p" is the range [p, p + "g"): the primary key answers it in
    # any collation, where LIKE 'p%' would need a C collation or a pattern_ops index.
    by_id = and_(col(Execution.id) >= prefix, col(Execution.id) < prefix + "g")
    return or_(by_name, by_id)


_SUMMARY_COLUMNS: tuple[Any, ...] = (
    col(Execution.id),
    col(Execution.name),
    col(Execution.status),
    col(Execution.tenant_id),
    col(User.username),
    col(Execution.action_class),
    col(Execution.approval_level),
    col(Execution.sla_class),
    col(Execution.execution_mode),
    col(Execution.run_mode),
    col(Execution.created_at),
    col(Execution.started_at),
    col(Execution.finished_at),
)


def _list_rows(session: Session, principal: Principal, query: Select[Any]) -> list[ExecutionSummary]:
    return [
        ExecutionSummary(
            execution_id=row[0],
            name=row[1],
            status=row[2],
            tenant_id=row[3],
            tenant=principal.tenant,
            requested_by=row[4],
            action_class=row[5],
            approval_level=row[6],
            sla_class=row[7],
            execution_mode=row[8],
            run_mode=row[9],
            created_at=row[10],
            started_at=row[11],
            finished_at=row[12],
        )
        for row in session.execute(query).all()
    ]


def list_events(principal: Principal, execution_id: str, *, after_id: int = 0, limit: int = 500) -> list[EventView]:
    """The execution's audit trail in order (``after_id`` for incremental reads)."""
    with session_scope() as session:
        rbac.require(session, principal, Permission.READ)
        load_execution(session, principal.tenant_id, execution_id)
        rows = session.exec(
            select(ExecutionEvent)
            .where(ExecutionEvent.execution_id == execution_id, col(ExecutionEvent.id) > after_id)
            .order_by(col(ExecutionEvent.id))
            .limit(min(limit, MAX_PAGE * 10))
        ).all()
        return [
            EventView(
                id=e.id or 0,
                kind=e.kind,
                from_status=e.from_status,
                to_status=e.to_status,
                step_index=e.step_index,
                actor=e.actor,
                message=e.message,
                data=json.loads(e.data_json),
                created_at=e.created_at,
            )
            for e in rows
        ]


def wait_for(
    principal: Principal,
    execution_id: str,
    *,
    timeout_s: float = 60.0,
    until: Collection[ExecutionStatus] = TERMINAL,
    poll_s: float = 0.2,
) -> ExecutionView:
    """Poll until the execution reaches one of ``until`` (default: any terminal status).

    Raises:
        DeadlineExceeded: still not there after ``timeout_s``. NotFound: not in this tenant.
    """
    deadline = time.monotonic() + timeout_s
    wanted = {s.value for s in until}
    while True:
        view = get_execution(principal, execution_id)
        if view.status in wanted:
            return view
        if time.monotonic() >= deadline:
            raise DeadlineExceeded(f"execution {execution_id} is still {view.status} after {timeout_s:g}s")
        time.sleep(poll_s)
