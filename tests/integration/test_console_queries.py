"""The console's reads (Executions list, approvals inbox, Dashboard) on both databases: filters, keyset
pagination, tenant isolation, and Dashboard figures recomputed here from the rows each test inserts."""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, select

from core import (
    ExecutionStatus,
    InvalidInput,
    PermissionDenied,
    approval_inbox,
    approve,
    approve_gate,
    dashboard,
    list_executions,
    list_executions_page,
    principal,
    submit,
)
from core.plans import canonical_json, plan_hash
from core.policies import DEFAULT_POLICIES
from db.clock import utcnow
from db.engine import session_scope
from db.enums import ActionClass, SlaClass
from db.tables import (
    Asset,
    DlqEntry,
    Execution,
    ExecutionEvent,
    ExecutionStep,
    QueueItem,
    Tenant,
    User,
    new_id,
)
from tests.factories import plan_text

S = ExecutionStatus
ENDED = {"completed", "failed", "partial", "timeout"}


@dataclass(frozen=True)
class Row:
    """What a test inserted, to compute the expected answers from."""

    id: str
    tenant: str
    requester: str
    name: str
    status: str
    created_at: datetime
    assets: tuple[str, ...] = ()


def _ids(session: Session, model: type[Tenant] | type[User], column: str) -> dict[str, str]:
    return {getattr(r, column): r.id for r in session.exec(select(model)).all()}


def _asset(session: Session, tenant_id: str, name: str) -> str:
    found = session.exec(select(Asset).where(Asset.tenant_id == tenant_id, Asset.name == name)).first()
    if found is not None:
        return found.id
    asset = Asset(tenant_id=tenant_id, name=name, connection="local")
    session.add(asset)
    session.flush()
    return asset.id


def insert(
    session: Session,
    *,
    tenant: str = "demo",
    user: str = "alice",
    name: str = "job",
    status: str = "completed",
    created_at: datetime,
    assets: tuple[str, ...] = (),
    level: int = 0,
    sla: str = "fast",
    action: str = "read",
    run_mode: str = "live",
    started_at: datetime | None = None,
    finished_at: datetime | None = None,
    approval_expires_at: datetime | None = None,
) -> Row:
    """One execution row (and its steps on ``assets``) exactly as given, bypassing submit."""
    tenant_id = _ids(session, Tenant, "name")[tenant]
    plan_json = canonical_json({"name": name, "steps": [{"target": a} for a in assets]})
    execution = Execution(
        tenant_id=tenant_id,
        requested_by=_ids(session, User, "username")[user],
        name=name,
        plan_json=plan_json,
        plan_hash=plan_hash(plan_json),
        action_class=action,
        approval_level=level,
        sla_class=sla,
        execution_mode="background",
        run_mode=run_mode,
        status=status,
        idempotency_key=new_id(),
        idempotency_active=False,
        created_at=created_at,
        updated_at=created_at,
        started_at=started_at,
        finished_at=finished_at,
        approval_expires_at=approval_expires_at,
    )
    session.add(execution)
    session.flush()
    for index, asset in enumerate(assets):
        session.add(
            ExecutionStep(
                execution_id=execution.id,
                tenant_id=tenant_id,
                step_index=index,
                name=f"s{index}",
                action="noop",
                target_asset_id=_asset(session, tenant_id, asset),
                target_name=asset,
                action_class=action,
                params_json="{}",
            )
        )
    session.flush()
    return Row(execution.id, tenant, user, name, status, created_at, assets)


def newest_first(rows: list[Row]) -> list[str]:
    return [r.id for r in sorted(rows, key=lambda r: (r.created_at, r.id), reverse=True)]


def every_page(**filters: object) -> list[str]:
    """Walk the cursor to the end with small pages; every id in the order received."""
    alice = principal("alice", "demo")
    seen: list[str] = []
    page = list_executions_page(alice, limit=4, **filters)  # type: ignore[arg-type]
    while True:
        assert len(page.items) <= 4
        seen += [i.execution_id for i in page.items]
        if page.next_cursor is None:
            return seen
        page = list_executions_page(alice, limit=4, before=page.next_cursor, **filters)  # type: ignore[arg-type]


@pytest.fixture
def listed(db: str) -> list[Row]:
    """27 executions of demo (names, requesters, statuses, assets, times varied; 3 share one timestamp) and 5 of
    globex with the same names and asset names."""
    base = utcnow().replace(microsecond=0) - timedelta(days=3)
    names = ["restart-nginx", "Deploy-API", "rotate_logs", "check 100%", "restart-nginx-canary"]
    statuses = ["completed", "failed", "running", "pending_approval", "completed", "timeout"]
    users = ["alice", "bob", "admin"]
    assets = [("web-01",), ("db-01",), ("web-01", "db-01"), (), ()]
    rows: list[Row] = []
    with session_scope() as session:
        for i in range(27):
            at = base + timedelta(minutes=10 * i) if i not in (5, 6, 7) else base + timedelta(minutes=50)
            rows.append(
                insert(
                    session,
                    user=users[i % 3],
                    name=names[i % 5],
                    status=statuses[i % 6],
                    created_at=at,
                    assets=assets[i % 5],
                )
            )
        for i in range(5):
            rows.append(
                insert(
                    session,
                    tenant="globex",
                    user="mallory",
                    name=names[i],
                    status="completed",
                    created_at=base + timedelta(minutes=7 * i),
                    assets=("web-01",),
                )
            )
    return rows


def test_cursor_pages_return_every_row_exactly_once_newest_first(listed: list[Row]) -> None:
    """Pages of 4 over 27 rows (three with the same created_at): all rows, no overlap, (created_at, id) order."""
    demo = [r for r in listed if r.tenant == "demo"]
    seen = every_page()
    assert seen == newest_first(demo)
    assert len(seen) == len(set(seen)) == 27


def test_cursor_pages_under_a_filter_and_offset_pages_agree(listed: list[Row]) -> None:
    """The cursor also walks a filtered list; ``list_executions`` with an offset gives the same rows."""
    web = [r for r in listed if r.tenant == "demo" and "web-01" in r.assets]
    assert every_page(asset="web-01") == newest_first(web)
    alice = principal("alice", "demo")
    by_offset = [r.execution_id for o in range(0, 28, 5) for r in list_executions(alice, limit=5, offset=o)]
    assert by_offset == every_page()


@pytest.mark.parametrize(
    ("filters", "keep"),
    [
        ({"status": S.FAILED}, lambda r: r.status == "failed"),
        ({"status": [S.RUNNING, S.PENDING_APPROVAL]}, lambda r: r.status in {"running", "pending_approval"}),
        ({"requested_by": "bob"}, lambda r: r.requester == "bob"),
        ({"asset": "db-01"}, lambda r: "db-01" in r.assets),
        ({"search": "NGINX"}, lambda r: "nginx" in r.name.lower()),
        ({"search": "nginx-can"}, lambda r: "nginx-can" in r.name),
        ({"search": "100%"}, lambda r: "100%" in r.name),
        ({"search": "e_l"}, lambda r: "e_l" in r.name),  # as a LIKE wildcard "_" would match "Deploy" too
        ({"status": S.FAILED, "requested_by": "bob"}, lambda r: r.status == "failed" and r.requester == "bob"),
        ({"asset": "web-01", "search": "restart"}, lambda r: "web-01" in r.assets and "restart" in r.name),
    ],
)
def test_each_filter_keeps_exactly_the_matching_rows(listed: list[Row], filters: dict[str, object], keep) -> None:  # type: ignore[no-untyped-def]
    """Each filter (and a combination) returns exactly the demo rows it should, newest first."""
    expected = newest_first([r for r in listed if r.tenant == "demo" and keep(r)])
    assert expected, "the fixture must give every filter something to find"
    page = list_executions_page(principal("alice", "demo"), limit=100, **filters)  # type: ignore[arg-type]
    assert [i.execution_id for i in page.items] == expected
    assert page.next_cursor is None


def test_date_range_is_half_open_and_id_prefix_search_finds_one(listed: list[Row]) -> None:
    """created_after is inclusive, created_before exclusive; a search by id prefix finds that execution."""
    demo = [r for r in listed if r.tenant == "demo"]
    after, before = demo[3].created_at, demo[12].created_at
    page = list_executions_page(principal("alice", "demo"), created_after=after, created_before=before, limit=100)
    assert [i.execution_id for i in page.items] == newest_first([r for r in demo if after <= r.created_at < before])
    target = demo[9].id
    found = list_executions_page(principal("alice", "demo"), search=target[:10].upper(), limit=100).items
    assert [i.execution_id for i in found] == [target]


def test_unknown_requester_or_asset_match_nothing(listed: list[Row]) -> None:
    """A requester or asset name that does not exist gives an empty page, not everything."""
    alice = principal("alice", "demo")
    assert list_executions_page(alice, requested_by="nobody").items == []
    assert list_executions_page(alice, asset="no-such-asset").items == []


def test_another_tenants_rows_never_appear(listed: list[Row]) -> None:
    """globex's rows (same names, same asset name) never show for demo, and demo's never for globex."""
    globex = {r.id for r in listed if r.tenant == "globex"}
    alice = principal("alice", "demo")
    for filters in ({}, {"asset": "web-01"}, {"search": "restart"}, {"status": S.COMPLETED}):
        assert not {i.execution_id for i in list_executions_page(alice, limit=500, **filters).items} & globex  # type: ignore[arg-type]
    mallory = principal("mallory", "globex")
    assert {i.execution_id for i in list_executions_page(mallory, limit=500).items} == globex
    assert {i.execution_id for i in list_executions_page(mallory, asset="web-01", limit=500).items} == globex
    assert list_executions_page(mallory, requested_by="alice").items == []


def test_bad_cursor_limit_or_search_is_invalid_input(listed: list[Row]) -> None:
    """A cursor that list_executions_page did not make, a limit out of 1-500, or a search term shorter than 3
    characters (no trigram to look up: it would read the tenant's whole history) is InvalidInput."""
    alice = principal("alice", "demo")
    for cursor in ("garbage", "bm90LWEtY3Vyc29y", "MjAyNi0wMS0wMXxub3RoZXg"):
        with pytest.raises(InvalidInput) as caught:
            list_executions_page(alice, before=cursor)
        assert caught.value.path == "before"
    with pytest.raises(InvalidInput):
        list_executions_page(alice, limit=0)
    with pytest.raises(InvalidInput) as caught:
        list_executions(alice, search=" ng ")
    assert caught.value.path == "search"


# ------------------------------------------------------------------------------------------------ dashboard


def _quantiles(values: list[float]) -> tuple[float, float]:
    """p50 and p95 with linear interpolation (PostgreSQL's percentile_cont)."""
    if len(values) == 1:
        return values[0], values[0]
    return statistics.median(values), statistics.quantiles(values, n=20, method="inclusive")[18]


def test_dashboard_figures_match_the_rows_inserted(db: str) -> None:
    """Counts, success rates, run-time percentiles and breaches per class, queue waits, DLQ depth, approvals
    waiting and executions per hour: each recomputed from the fixture rows; older and globex rows left out."""
    now = utcnow()
    runs = [  # (sla, action, run_mode, status, minutes ago, run seconds, queue wait seconds or None)
        ("fast", "read", "live", "completed", 30, 2.0, 0.5),
        ("fast", "read", "live", "completed", 90, 4.0, 1.5),
        ("fast", "read", "dry_run", "completed", 150, 6.0, None),
        ("fast", "read", "live", "completed", 200, 12.0, 2.5),  # over the 10 s limit: a breach
        ("fast", "read", "live", "failed", 260, 3.0, 0.25),
        ("fast", "read", "dry_run", "timeout", 320, 10.5, 4.0),  # a breach
        ("medium", "modify", "live", "completed", 400, 20.0, 3.0),
        ("medium", "modify", "live", "partial", 500, 25.0, None),
        ("medium", "modify", "dry_run", "completed", 700, 40.0, 8.0),
        ("long", "deploy", "live", "completed", 900, 100.0, 0.75),
    ]
    with session_scope() as session:
        demo_id = _ids(session, Tenant, "name")["demo"]
        expected_hours: Counter[datetime] = Counter()
        for sla, action, mode, status, ago, run_s, wait_s in runs:
            created = now - timedelta(minutes=ago)
            started = created + timedelta(seconds=30)
            row = insert(
                session,
                sla=sla,
                action=action,
                run_mode=mode,
                status=status,
                created_at=created,
                started_at=started,
                finished_at=started + timedelta(seconds=run_s),
            )
            expected_hours[created.replace(minute=0, second=0, microsecond=0)] += 1
            if wait_s is not None:
                for kind, to_status, at in (("status", "queued", started - timedelta(seconds=wait_s)),
                                            ("status", "running", started)):  # fmt: skip
                    session.add(ExecutionEvent(execution_id=row.id, tenant_id=demo_id, kind=kind,
                                               to_status=to_status, created_at=at))  # fmt: skip
        waiting = [
            insert(session, status="pending_approval", level=1, created_at=now - timedelta(minutes=m))
            for m in (20, 45, 600)
        ]
        for m in (20, 45, 600):
            expected_hours[(now - timedelta(minutes=m)).replace(minute=0, second=0, microsecond=0)] += 1
        cancelled = insert(session, status="cancelled", created_at=now - timedelta(minutes=5))
        expected_hours[(now - timedelta(minutes=5)).replace(minute=0, second=0, microsecond=0)] += 1
        # Requeued once: two waits (2 s, then 5 s), each running event paired with the queued event before it.
        requeued = insert(session, status="running", created_at=now - timedelta(minutes=61),
                          started_at=now - timedelta(minutes=30))  # fmt: skip
        expected_hours[(now - timedelta(minutes=61)).replace(minute=0, second=0, microsecond=0)] += 1
        for to_status, at in (("queued", 60 * 60), ("running", 60 * 60 - 2), ("failed", 50 * 60),
                              ("queued", 30 * 60 + 5), ("running", 30 * 60)):  # fmt: skip
            session.add(ExecutionEvent(execution_id=requeued.id, tenant_id=demo_id, kind="status",
                                       to_status=to_status, created_at=now - timedelta(seconds=at)))  # fmt: skip
        old = insert(session, status="failed", created_at=now - timedelta(days=3), started_at=now - timedelta(days=3),
                     finished_at=now - timedelta(days=3) + timedelta(seconds=999))  # fmt: skip
        insert(session, tenant="globex", user="mallory", status="failed", created_at=now - timedelta(minutes=10),
               started_at=now - timedelta(minutes=10), finished_at=now - timedelta(minutes=9))  # fmt: skip
        insert(session, tenant="globex", user="mallory", status="pending_approval", created_at=now - timedelta(days=2))
        for execution_id, resolved in ((old.id, None), (cancelled.id, now), (waiting[0].id, None)):
            session.add(DlqEntry(execution_id=execution_id, tenant_id=demo_id, reason="step_failed",
                                 resolved_at=resolved))  # fmt: skip

    view = dashboard(principal("dave", "demo"))  # a viewer may read it

    in_window = len(runs) + len(waiting) + 2
    assert view.total == in_window
    assert view.by_status == dict(Counter([r[3] for r in runs] + ["pending_approval"] * 3 + ["cancelled", "running"]))
    ended = [r for r in runs if r[3] in ENDED]
    assert view.success_rate == pytest.approx(sum(r[3] == "completed" for r in ended) / len(ended))
    for stats in view.run_modes:
        mine = [r for r in ended if r[2] == stats.run_mode]
        assert stats.ended == len(mine)
        assert stats.completed == sum(r[3] == "completed" for r in mine)
        assert stats.success_rate == pytest.approx(stats.completed / len(mine))
    assert sum(m.total for m in view.run_modes) == in_window
    groups = sorted({(r[0], r[1]) for r in ended})
    assert sorted((d.sla_class, d.action_class) for d in view.durations) == groups
    breaches = 0
    for d in view.durations:
        mine = [r for r in ended if (r[0], r[1]) == (d.sla_class, d.action_class)]
        limit = DEFAULT_POLICIES[(SlaClass(d.sla_class), ActionClass(d.action_class))].execution_s
        p50, p95 = _quantiles([r[5] for r in mine])
        assert (d.runs, d.limit_s) == (len(mine), limit)
        assert d.p50_s == pytest.approx(p50, abs=1e-3) and d.p95_s == pytest.approx(p95, abs=1e-3)
        assert d.breaches == sum(r[3] == "timeout" or r[5] > limit for r in mine)
        breaches += d.breaches
    assert view.sla_breaches == breaches == 2
    p50, p95 = _quantiles([r[6] for r in runs if r[6] is not None] + [2.0, 5.0])
    assert view.queue_wait_p50_s == pytest.approx(p50, abs=1e-3)
    assert view.queue_wait_p95_s == pytest.approx(p95, abs=1e-3)
    assert view.dlq_open == 2  # open entries, whatever their age; the resolved one is not counted
    assert view.approvals_waiting == 3
    assert view.oldest_approval_at == waiting[-1].created_at
    assert {h.hour: h.total for h in view.per_hour if h.total} == dict(expected_hours)
    assert len(view.per_hour) in (24, 25) and view.per_hour[0].hour <= view.since
    assert sum(h.completed for h in view.per_hour) == view.by_status["completed"]
    assert sum(h.failed for h in view.per_hour) == sum(
        view.by_status.get(s, 0) for s in ("failed", "partial", "timeout")
    )
    assert view.sampled == db.startswith("sqlite")


def test_dashboard_of_an_empty_window_and_its_limits(db: str) -> None:
    """No executions: zeros and None rather than errors; a window outside (0, 31 days] is InvalidInput."""
    view = dashboard(principal("dave", "demo"), since=timedelta(hours=1))
    assert (view.total, view.success_rate, view.durations, view.queue_wait_p95_s) == (0, None, [], None)
    assert all(h.total == 0 for h in view.per_hour)
    for since in (timedelta(0), timedelta(days=32)):
        with pytest.raises(InvalidInput):
            dashboard(principal("dave", "demo"), since=since)


# ------------------------------------------------------------------------------------------------ the inbox


def test_inbox_shows_what_waits_for_the_approver_never_their_own(db: str) -> None:
    """bob sees alice's pending plans with their risk and approvers, not his own request, not what he decided,
    not an expired window, not another tenant's; alice (operator) has no inbox."""
    alice, bob, carol = principal("alice", "demo"), principal("bob", "demo"), principal("carol", "demo")
    one = submit(alice, plan_text("modify-one", action_class="modify")).execution
    two = submit(alice, plan_text("deploy-two", action_class="deploy")).execution
    own = submit(bob, plan_text("bobs-own", action_class="modify")).execution
    submit(principal("mallory", "globex"), plan_text("globex-plan", action_class="modify"))
    approve(carol, two.execution_id)
    with session_scope() as session:
        stale = insert(session, status="pending_approval", level=1, name="stale",
                       created_at=utcnow() - timedelta(hours=2), approval_expires_at=utcnow() - timedelta(minutes=1))  # fmt: skip

    inbox = approval_inbox(bob)
    soonest_first = sorted((one, two), key=lambda e: e.approval_expires_at or utcnow())
    assert [i.execution_id for i in inbox] == [e.execution_id for e in soonest_first]
    by_id = {i.execution_id: i for i in inbox}
    assert own.execution_id not in by_id and stale.id not in by_id
    item = by_id[two.execution_id]
    assert (item.kind, item.name, item.requested_by, item.action_class, item.approval_level, item.sla_class) == (
        "plan", "deploy-two", "alice", "deploy", 2, two.sla_class
    )  # fmt: skip
    assert (item.plan_hash, item.approvals_required, item.approved_by) == (two.plan_hash, 2, ["carol"])
    assert item.approval_expires_at == two.approval_expires_at and item.time_left_s is not None
    assert 0 < item.time_left_s <= 1800
    assert by_id[one.execution_id].approved_by == []
    assert own.execution_id in {i.execution_id for i in approval_inbox(carol)}
    assert two.execution_id not in {i.execution_id for i in approval_inbox(carol)}  # carol already approved it
    assert len(approval_inbox(bob, limit=1)) == 1
    with pytest.raises(PermissionDenied):
        approval_inbox(alice)


def test_inbox_lists_a_level_three_gate_until_someone_opens_it(db: str) -> None:
    """A running level-3 execution parked before step 1 is a gate item for bob; once carol opens it, it is gone."""
    now = utcnow()
    with session_scope() as session:
        row = insert(session, status="running", level=3, action="deploy", sla="medium", name="gated",
                     created_at=now - timedelta(minutes=5), started_at=now - timedelta(minutes=4),
                     assets=("web-01", "db-01"))  # fmt: skip
        step0 = session.exec(select(ExecutionStep).where(ExecutionStep.execution_id == row.id,
                                                         ExecutionStep.step_index == 0)).one()  # fmt: skip
        step0.status = "completed"
        session.add(step0)
        tenant_id = step0.tenant_id
        deadline = now + timedelta(minutes=30)
        session.add(QueueItem(execution_id=row.id, tenant_id=tenant_id, sla_class="medium", step_index=1,
                              available_at=deadline))  # fmt: skip
        session.add(ExecutionEvent(execution_id=row.id, tenant_id=tenant_id, kind="gate_waiting", step_index=1))

    gates = [i for i in approval_inbox(principal("bob", "demo")) if i.kind == "gate"]
    assert [(g.execution_id, g.step_index, g.step_name, g.step_target, g.step_action_class) for g in gates] == [
        (row.id, 1, "s1", "db-01", "deploy")
    ]
    assert gates[0].approval_expires_at == deadline.astimezone(UTC) and gates[0].approvals_required == 2
    assert [i.kind for i in approval_inbox(principal("carol", "demo"))] == ["gate"]
    approve_gate(principal("carol", "demo"), row.id, 1)
    assert [i for i in approval_inbox(principal("bob", "demo")) if i.kind == "gate"] == []
