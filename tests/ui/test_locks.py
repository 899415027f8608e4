"""The Locks and workers page: held asset locks with their holder and waiters, and the workers."""

from __future__ import annotations

from datetime import UTC, datetime

import core
from core.engine import locks
from db.engine import session_scope
from tests.factories import noop_plan
from tests.ui.conftest import OpenConsole, texts

PAGE = "ui/pages/locks.py"


def _localhost(who: core.Principal) -> str:
    return next(a.id for a in core.list_assets(who) if a.name == "localhost")


def test_shows_the_holder_of_a_locked_asset(console: OpenConsole) -> None:
    alice = core.principal("alice", "demo")
    held = core.submit(alice, noop_plan("holder"), background=True).execution
    with session_scope() as session:
        locks.acquire(session, tenant_id=alice.tenant_id, execution_id=held.execution_id,
                      asset_ids=[_localhost(alice)], expires_at=datetime(2100, 1, 1, tzinfo=UTC))  # fmt: skip
    at = console("dave", page=PAGE)
    page = texts(at)
    assert not at.exception and held.execution_id in page and "localhost" in page


def test_other_tenant_sees_no_lock(console: OpenConsole) -> None:
    alice = core.principal("alice", "demo")
    held = core.submit(alice, noop_plan("holder"), background=True).execution
    with session_scope() as session:
        locks.acquire(session, tenant_id=alice.tenant_id, execution_id=held.execution_id,
                      asset_ids=[_localhost(alice)], expires_at=datetime(2100, 1, 1, tzinfo=UTC))  # fmt: skip
    at = console("mallory", tenant="globex", page=PAGE)
    assert not at.exception and held.execution_id not in texts(at)
    assert any("No asset is locked" in c.value for c in at.caption)


def test_the_queue_is_counted_per_sla_class_and_tenant(console: OpenConsole) -> None:
    alice = core.principal("alice", "demo")
    for i in range(2):
        core.submit(alice, noop_plan(f"queued-{i}"), background=True)
    at = console("dave", page=PAGE)
    queue = at.dataframe[0].value
    assert queue["sla_class"].tolist() == ["fast", "medium", "long"]
    assert queue["waiting"].tolist() == [2, 0, 0] and queue["running"].tolist() == [0, 0, 0]
    at = console("mallory", tenant="globex", page=PAGE)
    assert at.dataframe[0].value["waiting"].tolist() == [0, 0, 0]
