"""Priority (issue 17 item 5, DESIGN §14, core/priority.py): the SLA class's base plus a requested part within
the tenant's cap; a worker spends a message on a row that sorts clearly before its own, and the two rows
exchange their messages, so no work loses its token."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from core import engine, get_execution, principal, submit
from core.errors import InvalidInput
from db.engine import session_scope
from db.settings import get_settings
from db.tables import QueueItem, TenantSettings
from tests.engine_support import recording_dispatcher

FAST = "name: quick\nsteps:\n  - {name: s, action: noop, target: localhost}\n"
# A declared timeout only a long class holds makes the plan ``long`` (its base is 0).
LONG = "name: slow-N\nsteps:\n  - {name: s, action: noop, target: localhost, timeout_s: 50}\n"


@pytest.fixture
def alice(db: str) -> object:
    get_settings.cache_clear()
    return principal("alice", "demo")


def _queue() -> dict[str, QueueItem]:
    with session_scope() as session:
        return {row.execution_id: row for row in session.exec(select(QueueItem)).all()}


def test_priority_is_the_sla_base_plus_the_request_within_the_cap(alice: object) -> None:
    fast = submit(alice, FAST, background=True).execution
    long = submit(alice, LONG.replace("N", "1"), background=True).execution
    asked = submit(alice, FAST.replace("quick", "asked") + "priority: 3\n", background=True).execution
    assert (fast.sla_class, fast.priority) == ("fast", 2)
    assert (long.sla_class, long.priority) == ("long", 0)
    assert asked.priority == 5
    assert get_execution(alice, asked.execution_id).priority == 5  # the read, not only the submit's view
    with pytest.raises(InvalidInput) as refused:
        submit(alice, FAST.replace("quick", "greedy") + "priority: 4\n", background=True)
    assert refused.value.issues == [("priority", "priority 4 is above this tenant's cap of 3")]


def test_a_requested_priority_is_covered_by_the_hash_and_its_absence_changes_nothing(alice: object) -> None:
    plain = submit(alice, FAST, background=True).execution
    zero = submit(alice, FAST.replace("quick", "quick") + "priority: 0\n", background=True)
    assert zero.execution.plan_hash == plain.plan_hash  # priority 0 is the default: the same canonical plan
    asked = submit(alice, FAST + "priority: 1\n", background=True).execution
    assert asked.plan_hash != plain.plan_hash


def test_a_fast_plan_queued_behind_long_ones_is_taken_first_and_no_message_is_lost(alice: object) -> None:
    with recording_dispatcher():
        longs = [submit(alice, LONG.replace("N", str(i)), background=True).execution.execution_id for i in range(3)]
        quick = submit(alice, FAST, background=True).execution.execution_id
    before = _queue()
    assert all(before[i].message_id for i in [*longs, quick])
    first = longs[0]
    # The first long plan's message comes first (the broker's FIFO): it is spent on the fast plan.
    engine.process(first, worker_id="w", message_id=before[first].message_id)
    assert get_execution(alice, quick).status == "completed"
    assert get_execution(alice, first).status == "queued"
    after = _queue()
    assert after[first].message_id == before[quick].message_id  # the long plan holds the fast one's token
    # That message still names the fast plan in its payload; it is resolved to the row that holds it now.
    engine.process(quick, worker_id="w", message_id=before[quick].message_id)
    assert get_execution(alice, first).status == "completed"
    # The others, equal in priority, keep their order: each message runs its own row.
    for execution_id in longs[1:]:
        engine.process(execution_id, worker_id="w", message_id=after[execution_id].message_id)
        assert get_execution(alice, execution_id).status == "completed"


def test_a_long_plan_that_waited_long_enough_goes_before_a_new_fast_one(alice: object) -> None:
    """Ageing: one priority point is worth OPSC_PRIORITY_STEP_S of waiting, so nothing starves."""
    with recording_dispatcher():
        old = submit(alice, LONG.replace("N", "old"), background=True).execution.execution_id
        quick = submit(alice, FAST, background=True).execution.execution_id
    rows = _queue()
    with session_scope() as session:  # as if the long plan had been queued 5 minutes ago
        row = session.get(QueueItem, rows[old].id)
        assert row is not None and row.sort_at is not None
        row.sort_at -= timedelta(minutes=5)
        session.add(row)
    engine.process(quick, worker_id="w", message_id=rows[quick].message_id)
    assert get_execution(alice, old).status == "completed"
    assert get_execution(alice, quick).status == "queued"


def test_an_inline_or_unknown_message_claims_its_own_row(alice: object) -> None:
    with recording_dispatcher():
        slow = submit(alice, LONG.replace("N", "x"), background=True).execution.execution_id
        submit(alice, FAST, background=True)
    engine.process(slow, worker_id="w")  # no message id: an inline run wants its own execution
    assert get_execution(alice, slow).status == "completed"


def test_the_cap_is_the_tenants(alice: object) -> None:
    with session_scope() as session:
        settings = session.exec(select(TenantSettings)).first()
        assert settings is not None
        settings.max_priority = 0
        session.add(settings)
    with pytest.raises(InvalidInput) as refused:
        submit(alice, FAST + "priority: 1\n", background=True)
    assert refused.value.issues == [("priority", "priority 1 is above this tenant's cap of 0")]


def test_a_priority_step_of_zero_keeps_the_brokers_order(alice: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSC_PRIORITY_STEP_S", "0")
    get_settings.cache_clear()
    try:
        with recording_dispatcher():
            slow = submit(alice, LONG.replace("N", "first"), background=True).execution.execution_id
            quick = submit(alice, FAST, background=True).execution.execution_id
        rows = _queue()
        engine.process(slow, worker_id="w", message_id=rows[slow].message_id)
        assert get_execution(alice, slow).status == "completed"
        assert get_execution(alice, quick).status == "queued"
        assert _queue()[quick].message_id == rows[quick].message_id  # no token moved
    finally:
        get_settings.cache_clear()
