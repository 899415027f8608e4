"""The execution FSM (DESIGN §4): every legal edge is taken with an audit event; every illegal edge is refused."""

from __future__ import annotations

import itertools

import pytest
from sqlmodel import select

from core.errors import InvalidTransition, NotFound
from core.fsm import EDGES, RESUBMITTABLE, TERMINAL, initial_status, is_legal, transition
from db.engine import session_scope
from db.enums import ExecutionStatus as S
from db.tables import Execution, ExecutionEvent
from tests.conftest import reset_database, use_database
from tests.factories import raw_execution


@pytest.fixture(scope="module")
def seeded_once(sqlite_url: str) -> str:
    """One seeded SQLite database for the 121 edge cases (each inserts its own execution row)."""
    reset_database(sqlite_url)
    return sqlite_url


@pytest.fixture
def fsm_db(seeded_once: str) -> str:
    use_database(seeded_once)
    return seeded_once


ALL_PAIRS = list(itertools.product(S, S))
LEGAL = [(a, b) for a, b in ALL_PAIRS if b in EDGES[a]]
ILLEGAL = [(a, b) for a, b in ALL_PAIRS if b not in EDGES[a]]

DESIGN_EDGES = {
    (S.PENDING_APPROVAL, S.APPROVED), (S.PENDING_APPROVAL, S.REJECTED), (S.PENDING_APPROVAL, S.EXPIRED),
    (S.PENDING_APPROVAL, S.CANCELLED), (S.APPROVED, S.QUEUED), (S.APPROVED, S.RUNNING), (S.APPROVED, S.CANCELLED),
    (S.QUEUED, S.RUNNING), (S.QUEUED, S.CANCELLED), (S.QUEUED, S.TIMEOUT), (S.QUEUED, S.FAILED),
    (S.RUNNING, S.COMPLETED), (S.RUNNING, S.FAILED), (S.RUNNING, S.PARTIAL), (S.RUNNING, S.CANCELLED),
    (S.RUNNING, S.TIMEOUT), (S.FAILED, S.QUEUED), (S.TIMEOUT, S.QUEUED),
}  # fmt: skip


def test_edge_table_is_exactly_the_design() -> None:
    """The EDGES table holds the 18 edges of DESIGN §4 and nothing else."""
    assert set(LEGAL) == DESIGN_EDGES


def test_terminal_statuses_have_no_way_out_but_requeue() -> None:
    """Terminal statuses leave only by the operator's requeue edge (failed|timeout → queued)."""
    for status in TERMINAL:
        assert EDGES[status] == ({S.QUEUED} if status in {S.FAILED, S.TIMEOUT} else set())


def test_create_edge_depends_on_level() -> None:
    """Level 0 is created approved; any other level waits for approval."""
    assert initial_status(0) is S.APPROVED
    assert all(initial_status(level) is S.PENDING_APPROVAL for level in (1, 2, 3))


@pytest.mark.parametrize(("src", "dst"), LEGAL, ids=[f"{a}->{b}" for a, b in LEGAL])
def test_legal_edge_changes_status_and_audits(fsm_db: str, src: S, dst: S) -> None:
    """A legal edge sets the status and writes one status event with from/to, in the same transaction."""
    with session_scope() as session:
        row = raw_execution(session, src)
        left = transition(session, execution_id=row.id, tenant_id=row.tenant_id, to=dst, actor="t")
        assert left is src
    with session_scope() as session:
        stored = session.get(Execution, row.id)
        assert stored is not None and stored.status == dst.value
        assert (stored.finished_at is not None) == (dst in TERMINAL)
        assert stored.idempotency_active == (dst not in RESUBMITTABLE)
        events = session.exec(select(ExecutionEvent).where(ExecutionEvent.execution_id == row.id)).all()
        assert [(e.from_status, e.to_status, e.actor) for e in events] == [(src.value, dst.value, "t")]


@pytest.mark.parametrize(("src", "dst"), ILLEGAL, ids=[f"{a}->{b}" for a, b in ILLEGAL])
def test_illegal_edge_is_refused_and_changes_nothing(fsm_db: str, src: S, dst: S) -> None:
    """An illegal edge raises InvalidTransition (with its facts), leaves the status and writes no event."""
    assert not is_legal(src, dst)
    with session_scope() as session:
        row = raw_execution(session, src)
    with pytest.raises(InvalidTransition) as info, session_scope() as session:
        transition(session, execution_id=row.id, tenant_id=row.tenant_id, to=dst, actor="t")
    assert (info.value.execution_id, info.value.from_status, info.value.to_status) == (row.id, src, dst)
    with session_scope() as session:
        stored = session.get(Execution, row.id)
        assert stored is not None and stored.status == src.value
        assert session.exec(select(ExecutionEvent).where(ExecutionEvent.execution_id == row.id)).all() == []


def test_compare_and_set_refuses_a_stale_expected_status(sqlite_db: str) -> None:
    """If another writer moved the execution first, a transition from the old status fails (no lost update)."""
    with session_scope() as session:
        row = raw_execution(session, S.PENDING_APPROVAL)
    with session_scope() as session:
        transition(session, execution_id=row.id, tenant_id=row.tenant_id, to=S.APPROVED, actor="first")
    with pytest.raises(InvalidTransition) as info, session_scope() as session:
        transition(
            session, execution_id=row.id, tenant_id=row.tenant_id, to=S.REJECTED, actor="late",
            expected=S.PENDING_APPROVAL,
        )  # fmt: skip
    assert info.value.from_status == S.APPROVED


def test_transition_is_tenant_scoped(sqlite_db: str) -> None:
    """An execution id with another tenant's id is not found, and nothing changes."""
    with session_scope() as session:
        row = raw_execution(session, S.PENDING_APPROVAL)
        other = raw_execution(session, S.PENDING_APPROVAL, tenant="globex", user="mallory")
    with pytest.raises(NotFound), session_scope() as session:
        transition(session, execution_id=row.id, tenant_id=other.tenant_id, to=S.CANCELLED, actor="x")
    with session_scope() as session:
        assert session.get(Execution, row.id).status == S.PENDING_APPROVAL.value  # type: ignore[union-attr]
