"""Property: random sequences of API calls by random principals never make an illegal transition and never
raise anything but the typed domain errors."""

from __future__ import annotations

import contextlib
import itertools
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import col, select

from core import (
    CoreError,
    Role,
    TenantMode,
    approve,
    cancel,
    get_execution,
    principal,
    reject,
    set_member,
    set_tenant_mode,
    submit,
)
from core.fsm import EDGES
from db.engine import session_scope
from db.enums import ExecutionStatus
from db.tables import Execution, ExecutionEvent
from tests.conftest import reset_database
from tests.factories import noop_plan, plan_text

USERS = [("alice", "demo"), ("bob", "demo"), ("carol", "demo"), ("dave", "demo"), ("admin", "demo"),
         ("mallory", "globex"), ("admin", "globex")]  # fmt: skip
PLANS = [noop_plan("read"), plan_text("mod", action_class="modify"), plan_text("dep", action_class="deploy"),
         noop_plan("lvl3", level=3), "name: broken\nsteps: [{name: a, action: nope, target: localhost}]"]  # fmt: skip

op = st.one_of(
    st.tuples(st.just("submit"), st.sampled_from(USERS), st.sampled_from(PLANS), st.booleans()),
    st.tuples(st.just("approve"), st.sampled_from(USERS), st.integers(0, 7)),
    st.tuples(st.just("reject"), st.sampled_from(USERS), st.integers(0, 7)),
    st.tuples(st.just("cancel"), st.sampled_from(USERS), st.integers(0, 7)),
    st.tuples(st.just("get"), st.sampled_from(USERS), st.integers(0, 7)),
    st.tuples(st.just("role"), st.sampled_from(["alice", "bob", "carol", "dave"]), st.sampled_from(list(Role))),
    st.tuples(st.just("mode"), st.sampled_from(list(TenantMode)), st.integers(0, 3)),
)


def _run(operation: tuple[Any, ...], ids: list[str]) -> None:
    kind = operation[0]
    if kind == "submit":
        (_k, (user, tenant), plan, background) = operation
        ids.append(submit(principal(user, tenant), plan, background=background).execution.execution_id)
        return
    if kind == "role":
        set_member(principal("admin", "demo"), operation[1], operation[2])
        return
    if kind == "mode":
        set_tenant_mode(principal("admin", "demo"), operation[1], max_live_level=operation[2])
        return
    (_k, (user, tenant), pick) = operation
    execution_id = ids[pick % len(ids)] if ids and pick < 6 else "f" * 32
    who = principal(user, tenant)
    {"approve": approve, "reject": reject, "cancel": cancel, "get": get_execution}[kind](who, execution_id)


def _assert_history_is_legal() -> None:
    with session_scope() as session:
        for execution in session.exec(select(Execution)).all():
            events = session.exec(
                select(ExecutionEvent)
                .where(ExecutionEvent.execution_id == execution.id, ExecutionEvent.kind == "status")
                .order_by(col(ExecutionEvent.id))
            ).all()
            assert events[0].from_status is None
            assert events[0].to_status in {ExecutionStatus.APPROVED, ExecutionStatus.PENDING_APPROVAL}
            for event in events[1:]:
                assert ExecutionStatus(event.to_status) in EDGES[ExecutionStatus(event.from_status)], event
            for before, after in itertools.pairwise(events):
                assert after.from_status == before.to_status
            assert events[-1].to_status == execution.status


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=st.lists(op, min_size=1, max_size=14))
def test_random_operations_keep_the_fsm_and_raise_only_domain_errors(
    sqlite_url: str, operations: list[tuple[Any, ...]]
) -> None:
    """Any interleaving of submit/approve/reject/cancel/get/role/mode calls leaves a legal, consistent history."""
    reset_database(sqlite_url)
    ids: list[str] = []
    for operation in operations:
        with contextlib.suppress(CoreError):  # refusals are expected; anything else fails the test
            _run(operation, ids)
    _assert_history_is_legal()
