"""Submitting a batch (core.submit_many): all or nothing, each plan judged as a single submit would judge it,
idempotency within and across batches; and the view a submit returns equals the one read back."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, update
from sqlmodel import select

from core import (
    ActionClass,
    Conflict,
    ExecutionView,
    InvalidInput,
    OverLevelBehaviour,
    PermissionDenied,
    Role,
    SafetyRefused,
    TenantMode,
    approve,
    get_execution,
    list_events,
    principal,
    set_member,
    set_tenant_mode,
    submit,
    submit_many,
    verify_chain,
)
from core.usecases.submission import MAX_BATCH
from db.clock import utcnow
from db.engine import session_scope
from db.tables import Approval, Asset, Execution, ExecutionEvent, ExecutionStep, QueueItem, Tenant
from tests.factories import noop_plan, plan_text

SECRET_REF = "{{ secret:demo_token }}"


def _row_counts() -> tuple[int, ...]:
    with session_scope() as session:
        return tuple(
            session.exec(select(func.count()).select_from(t)).one()
            for t in (Execution, ExecutionStep, ExecutionEvent, QueueItem, Approval)
        )


def _mixed(tag: str) -> list[Any]:
    """Plans of every kind a script sends: level 0 (two forms), modify, deploy, a secret reference, a timeout."""
    return [
        noop_plan(f"{tag}-noop"),
        {"name": f"{tag}-map", "steps": [{"name": "a", "action": "noop", "target": "localhost"}]},
        plan_text(f"{tag}-modify", action_class="modify", steps=2),
        plan_text(f"{tag}-deploy", action_class="deploy"),
        f"name: {tag}-secret\nsteps:\n  - {{name: a, action: shell, target: localhost, "
        f"params: {{command: printenv, env: {{T: '{SECRET_REF}'}}}}}}\n",
        f"name: {tag}-slow\nsteps:\n  - {{name: a, action: sleep, target: localhost, timeout_s: 12, "
        f"params: {{seconds: 1}}}}\n",
    ]


def _naive(value: Any) -> Any:
    """A datetime as naive UTC (the databases hand back naive UTC; a submit holds aware ones)."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def _comparable(view: ExecutionView, *, drop: tuple[str, ...] = ()) -> dict[str, Any]:
    dumped = view.model_dump()
    for key in drop:
        dumped.pop(key, None)
    return {k: _naive(v) for k, v in dumped.items()}


def _events(execution_id: str) -> list[tuple[Any, ...]]:
    return [
        (e.kind, e.from_status, e.to_status, e.step_index, e.actor, e.message, e.data)
        for e in list_events(principal("alice", "demo"), execution_id)
    ]


def test_a_batch_is_what_the_same_submits_one_by_one_would_be(db: str) -> None:
    """Same hashes, levels, classes, statuses, modes, steps and events as single submits; the chain verifies."""
    alice = principal("alice", "demo")
    plans = _mixed("p")
    singles = [submit(alice, p, idempotency_key=f"one-{i}", background=True) for i, p in enumerate(plans)]
    batch = submit_many(alice, plans, idempotency_keys=[f"many-{i}" for i in range(len(plans))], background=True)
    assert [r.created for r in batch] == [True] * len(plans)
    assert len({r.execution.execution_id for r in batch + singles}) == 2 * len(plans)
    drop = ("execution_id", "created_at", "idempotency_key", "approval_expires_at")
    for one, many in zip(singles, batch, strict=True):
        assert _comparable(many.execution, drop=drop) == _comparable(one.execution, drop=drop)
        assert _events(many.execution.execution_id) == _events(one.execution.execution_id)
    statuses = [r.execution.status for r in batch]
    assert statuses == ["queued", "queued", "pending_approval", "pending_approval", "pending_approval", "queued"]
    assert [r.execution.approval_level for r in batch] == [0, 0, 1, 2, 1, 0]
    assert batch[5].execution.sla_class == "medium"
    report = verify_chain(principal("admin", "demo"))
    assert report.intact and report.links == report.events


def test_the_view_a_submit_returns_is_the_one_read_back(db: str) -> None:
    """Single and batch results equal get_execution's view (built from the rows) right after the submit."""
    alice = principal("alice", "demo")
    first = submit(alice, plan_text("runbook", action_class="modify", command="echo one"))
    approve(principal("bob", "demo"), first.execution.execution_id)
    results = [submit(alice, plan_text("runbook", action_class="modify", command="echo two"))]
    results += submit_many(alice, [*_mixed("v"), plan_text("runbook", action_class="modify", command="echo three")])
    assert results[0].execution.compared_with == first.execution.execution_id  # a diff was made
    assert results[-1].execution.compared_with == first.execution.execution_id
    for result in results:
        if result.execution.execution_mode == "immediate":
            continue  # it ran in the caller: its result is read back already
        read_back = get_execution(alice, result.execution.execution_id)
        assert _comparable(result.execution) == _comparable(read_back)


def test_a_batch_plan_of_a_name_compares_with_the_earlier_approved_plan_of_the_batch(db: str) -> None:
    """Two level-0 plans of one name in a batch: the second's diff is against the first, as one by one."""
    alice = principal("alice", "demo")
    first, second = submit_many(
        alice, [plan_text("same", command="echo a"), plan_text("same", command="echo b")], background=True
    )
    assert second.execution.compared_with == first.execution.execution_id
    assert (
        second.execution.changes_since_approved
        and '+     "command": "echo b"' in second.execution.changes_since_approved
    )
    assert get_execution(alice, second.execution.execution_id).changes_since_approved == (
        second.execution.changes_since_approved
    )


def test_one_bad_plan_refuses_the_batch_naming_every_bad_index_and_writes_nothing(db: str) -> None:
    """Invalid plans anywhere (parse or targets) give one InvalidInput with ``plans[i].`` paths; no row written."""
    alice = principal("alice", "demo")
    before = _row_counts()
    plans = [
        noop_plan("ok-0"),
        "name: x\nsteps: [{name: a, action: teleport, target: localhost}]\n",
        noop_plan("ok-2"),
        "name: y\nsteps: [{name: a, action: noop, target: web-99}]\n",
    ]
    with pytest.raises(InvalidInput) as caught:
        submit_many(alice, plans)
    paths = [path for path, _message in caught.value.issues]
    assert paths == ["plans[1].steps[0].action"]  # parsing comes first: its issues are reported alone
    with pytest.raises(InvalidInput) as caught:
        submit_many(alice, [plans[0], plans[2], plans[3], plans[3].replace("name: y", "name: z")])
    assert [path for path, _m in caught.value.issues] == ["plans[2].steps[0].target", "plans[3].steps[0].target"]
    assert "unknown asset 'web-99'" in caught.value.message
    assert _row_counts() == before


def test_a_refusal_other_than_invalid_input_names_its_plan(db: str) -> None:
    """The tenant's mode refuses a level (SafetyRefused, same reason), prefixed with the plan's index."""
    set_tenant_mode(principal("admin", "demo"), TenantMode.LIVE, max_live_level=0, over_level=OverLevelBehaviour.REFUSE)
    before = _row_counts()
    with pytest.raises(SafetyRefused) as caught:
        submit_many(principal("alice", "demo"), [noop_plan("a"), plan_text("b", action_class="modify")])
    assert caught.value.reason == "level_not_live" and caught.value.message.startswith("plans[1]: ")
    assert _row_counts() == before


def test_a_batch_without_the_permission_is_refused(db: str) -> None:
    """A viewer may not submit a batch; nothing is written."""
    before = _row_counts()
    with pytest.raises(PermissionDenied):
        submit_many(principal("dave", "demo"), [noop_plan("a"), noop_plan("b")])
    assert _row_counts() == before


def test_a_class_above_the_operators_limit_refuses_the_batch(db: str) -> None:
    """An operator limited to read: the modify plan at index 1 is refused by name, nothing written."""
    set_member(principal("admin", "demo"), "alice", Role.OPERATOR, max_action_class=ActionClass.READ)
    before = _row_counts()
    with pytest.raises(PermissionDenied, match=r"^plans\[1\]: alice may not run modify"):
        submit_many(principal("alice", "demo"), [noop_plan("a"), plan_text("b", action_class="modify")])
    assert _row_counts() == before


def test_targets_are_tenant_scoped_in_a_batch(db: str) -> None:
    """A batch in demo cannot name an asset of globex: it is unknown there, as for a single submit."""
    with session_scope() as session:
        globex = session.exec(select(Tenant.id).where(Tenant.name == "globex")).one()
        session.add(Asset(tenant_id=globex, name="globex-only", connection="local"))
    plan = "name: g\nsteps: [{name: a, action: noop, target: globex-only}]\n"
    with pytest.raises(
        InvalidInput, match=r"^plans\[0\]\.steps\[0\]\.target: unknown asset 'globex-only' in tenant demo"
    ):
        submit_many(principal("alice", "demo"), [plan])
    [result] = submit_many(principal("mallory", "globex"), [plan], background=True)
    assert result.execution.tenant == "globex" and result.execution.steps[0].target == "globex-only"


def test_the_same_plan_twice_in_a_batch_is_one_execution(db: str) -> None:
    """As two submits one after the other: the second returns the first's execution, created False."""
    alice = principal("alice", "demo")
    first, second = submit_many(alice, [plan_text("twice", action_class="modify")] * 2)
    assert (first.created, second.created) == (True, False)
    assert second.execution == first.execution
    with session_scope() as session:
        assert session.exec(select(func.count()).select_from(Execution)).one() == 1


def test_a_batch_sent_again_returns_its_executions(db: str) -> None:
    """Across batches, and against single submits: the active holders are returned, only new plans created."""
    alice = principal("alice", "demo")
    single = submit(alice, plan_text("held", action_class="modify"))
    first = submit_many(alice, [plan_text("new", action_class="modify"), plan_text("held", action_class="modify")])
    assert [r.created for r in first] == [True, False]
    assert first[1].execution.execution_id == single.execution.execution_id
    again = submit_many(alice, [plan_text("held", action_class="modify"), plan_text("new", action_class="modify")])
    assert [r.created for r in again] == [False, False]
    assert [r.execution.execution_id for r in again] == [r.execution.execution_id for r in reversed(first)]
    assert [r.execution.status for r in again] == ["pending_approval", "pending_approval"]


def test_a_caller_key_is_one_plan_within_and_across_batches(db: str) -> None:
    """One key for two different plans: Conflict naming both indexes, or the plan whose key an execution holds."""
    alice = principal("alice", "demo")
    before = _row_counts()
    with pytest.raises(Conflict, match=r"^plans\[1\]: idempotency key 'k' is already used by plans\[0\]"):
        submit_many(alice, [noop_plan("one"), noop_plan("two")], idempotency_keys=["k", "k"])
    assert _row_counts() == before
    held = submit(alice, noop_plan("one"), idempotency_key="k", background=True).execution.execution_id
    with pytest.raises(Conflict, match=r"^plans\[1\]: idempotency key 'k' is already used by a different plan") as c:
        submit_many(alice, [noop_plan("three"), noop_plan("two")], idempotency_keys=[None, "k"], background=True)
    assert c.value.owner == held
    same = submit_many(alice, [noop_plan("three"), noop_plan("one")], idempotency_keys=[None, "k"], background=True)
    assert [r.created for r in same] == [True, False] and same[1].execution.execution_id == held


def test_a_key_completed_beyond_the_window_is_free_for_a_batch(db: str) -> None:
    """A holder completed within the window is returned; beyond it, the batch creates a new execution."""
    alice = principal("alice", "demo")
    first = submit(alice, noop_plan(), background=True).execution.execution_id
    with session_scope() as session:
        session.execute(update(Execution).where(Execution.id == first).values(status="completed", finished_at=utcnow()))
    [within] = submit_many(alice, [noop_plan()], background=True)
    assert (within.created, within.execution.execution_id) == (False, first)
    with session_scope() as session:
        finished = utcnow() - timedelta(hours=25)
        session.execute(update(Execution).where(Execution.id == first).values(finished_at=finished))
    [after] = submit_many(alice, [noop_plan()], background=True)
    assert after.created and after.execution.execution_id != first


def test_a_batch_keeps_secret_references_and_never_a_value(db: str) -> None:
    """The stored plan, steps and events hold ``{{ secret:demo_token }}``, never the value, which is not read."""
    results = submit_many(principal("alice", "demo"), _mixed("s"))
    secret = results[4].execution
    assert secret.steps[0].params is not None and secret.steps[0].params["env"]["T"] == SECRET_REF
    with session_scope() as session:
        row = session.get(Execution, secret.execution_id)
        assert row is not None and SECRET_REF in json.loads(row.plan_json)["steps"][0]["params"]["env"]["T"]
        step = session.exec(select(ExecutionStep).where(ExecutionStep.execution_id == secret.execution_id)).one()
        assert SECRET_REF in step.params_json


def test_fast_level_zero_plans_of_a_batch_run_here_in_order(db: str) -> None:
    """Without ``background`` the immediate plans run in the caller after commit, as single submits do."""
    results = submit_many(principal("alice", "demo"), [noop_plan("i1"), plan_text("m", action_class="modify")])
    assert [r.execution.status for r in results] == ["completed", "pending_approval"]
    assert results[0].execution.execution_mode == "immediate"


def test_limits_of_a_batch(db: str) -> None:
    """No plans is no work; more than the cap, or keys that do not pair with the plans, are invalid input."""
    alice = principal("alice", "demo")
    assert submit_many(alice, []) == []
    with pytest.raises(InvalidInput, match="at most"):
        submit_many(alice, [noop_plan()] * (MAX_BATCH + 1))
    with pytest.raises(InvalidInput) as caught:
        submit_many(alice, [noop_plan()], idempotency_keys=["a", "b"])
    assert caught.value.path == "idempotency_keys"
    with pytest.raises(InvalidInput) as caught:
        submit_many(alice, [noop_plan("a"), noop_plan("b")], idempotency_keys=[None, " "])
    assert caught.value.path == "plans[1].idempotency_key"


@pytest.mark.integration
def test_concurrent_batches_of_the_same_plans_yield_one_execution_each(postgres_db: str) -> None:
    """Four threads sending the same batch at once on PostgreSQL: one execution per plan, each created once."""
    alice = principal("alice", "demo")
    plans = [plan_text(f"race-{i}", action_class="modify") for i in range(3)]
    barrier = threading.Barrier(4)
    results: list[Any] = []

    def worker() -> None:
        barrier.wait()
        try:
            results.append(submit_many(alice, plans))
        except Exception as exc:
            results.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(not isinstance(r, Exception) for r in results), results
    for index in range(3):
        ids = {r[index].execution.execution_id for r in results}
        assert len(ids) == 1 and sum(r[index].created for r in results) == 1
    with session_scope() as session:
        assert session.exec(select(func.count()).select_from(Execution)).one() == 3
    assert verify_chain(principal("admin", "demo")).intact
