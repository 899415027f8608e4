"""Attacks on fan-out (issue 17 item 2, DESIGN §14), from a tenant's and an operator's side, on SQLite and PostgreSQL.

Each test is an attack with real ``shell`` processes: another tenant's assets, a target list changed after the
approval, a stored plan or rows edited in the database, secrets limited to named assets, and limits written to
exhaust a worker. A test marked ``xfail(strict=True)`` shows a defect that is still open (its reason says which).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from core import add_asset, approve, get_execution, list_events, principal, submit
from core.errors import InvalidInput
from core.usecases.admin import limit_secret, set_secret
from core.usecases.dlq import list_dlq
from db.engine import session_scope
from db.enums import Connection
from db.settings import get_settings
from tests.engine_support import drive
from tests.fanout_support import NAMES, make_fleet, overlap, starts

ALICE = ("alice", "demo")

# Logs its start and end with the time and the target, sleeps, and prints its last argument (a secret, in the
# masking attack). Declared read-only in the ``fleet`` fixture, so a step running it is a ``read`` step.
SCRIPT = """#!/bin/sh
log=$1 sleep_s=$2
echo "start $OPSC_TARGET $(date +%s.%N)" >> "$log"
sleep "$sleep_s"
echo "end $OPSC_TARGET $(date +%s.%N)" >> "$log"
echo "said: $3"
"""


@pytest.fixture
def fleet(db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The fan-out fleet with this file's script (tests/fanout_support.py). Yields the script's path."""
    yield make_fleet(tmp_path, monkeypatch, SCRIPT)
    get_settings.cache_clear()


def _plan(command: str, *, targets: str = "{tags: [fan]}", limits: str = "", extra: str = "") -> str:
    return (
        "name: attack\nsteps:\n"
        f"  - name: each\n    action: shell\n    targets: {targets}\n{limits}{extra}"
        f"    params: {{command: {command}}}\n"
    )


def _command(script: Path, *, sleep: str = "0", say: str = "-") -> str:
    return f"['{script}', '{script.parent / 'log'}', '{sleep}', '{say}']"


def _count(table: str) -> int:
    with session_scope() as session:
        return int(session.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def _sql(statement: str, **params: Any) -> None:
    with session_scope() as session:
        session.execute(text(statement), params)


def _plan_json(execution_id: str) -> dict[str, Any]:
    with session_scope() as session:
        stored = session.execute(text("SELECT plan_json FROM executions WHERE id = :e"), {"e": execution_id})
        return dict(json.loads(stored.scalar_one()))


# --- 1. tenant isolation -------------------------------------------------------------------------------------


def test_another_tenant_cannot_select_the_demo_fleet_by_tag_or_name(fleet: Path) -> None:
    """mallory (globex) writes demo's tag and demo's names: neither selects a demo asset; a globex asset with the
    same tag is the only target; the refusals store nothing and name only globex."""
    mallory = principal("mallory", "globex")
    command = _command(fleet)
    for targets, path in (("{tags: [fan]}", "steps[0].targets"), ("{names: [fan-1]}", "steps[0].targets.names[0]")):
        with pytest.raises(InvalidInput) as caught:
            submit(mallory, _plan(command, targets=targets))
        assert path in [p for p, _m in caught.value.issues]
        assert "globex" in str(caught.value.issues) and "demo" not in str(caught.value.issues)
    assert _count("executions") == 0
    add_asset(principal("admin", "globex"), "g-fan", Connection.LOCAL, tags=["fan"])
    view = submit(mallory, _plan("[/bin/true]", limits="    action_class: read\n")).execution
    assert [s.target for s in view.steps] == ["g-fan"]
    # A name and a tag together: one demo name makes the whole step refused, not silently narrowed.
    with pytest.raises(InvalidInput):
        submit(mallory, _plan("[/bin/true]", targets="{tags: [fan], names: [fan-2]}"))


# --- 2. the approved list is what runs ------------------------------------------------------------------------


def _approved_fleet(script: Path, *, concurrency: int = 3, **kwargs: str) -> str:
    """A modify fan-out (one approver) over the six, submitted by alice and approved by bob; its id."""
    limits = f"    max_concurrency: {concurrency}\n    action_class: modify\n"
    plan = _plan(_command(script, **kwargs), limits=limits)
    execution_id = submit(principal(*ALICE), plan, background=True).execution.execution_id
    approve(principal("bob", "demo"), execution_id)
    return execution_id


def test_assets_added_retagged_or_untagged_after_approval_do_not_change_the_targets(fleet: Path) -> None:
    """Between the approval and the run: a new ``fan`` asset, ``fan-odd`` retagged ``fan``, ``fan-1`` losing
    its tag. The worker runs exactly the six approved targets."""
    execution_id = _approved_fleet(fleet)
    add_asset(principal("admin", "demo"), "fan-7", Connection.LOCAL, tags=["fan"])
    _sql("UPDATE assets SET tags_json = :t WHERE name = 'fan-odd'", t='["fan"]')
    _sql("UPDATE assets SET tags_json = :t WHERE name = 'fan-1'", t="[]")
    drive(execution_id)
    view = get_execution(principal(*ALICE), execution_id)
    assert view.status == "completed"
    assert sorted(starts(fleet)) == NAMES
    assert [s.target for s in view.steps] == NAMES


@pytest.mark.parametrize(
    "field, value",
    [("max_concurrency", 6), ("max_errors", 6), ("of", 7)],
)
def test_a_fanout_record_edited_in_the_stored_plan_runs_nothing(fleet: Path, field: str, value: int) -> None:
    """An operator with database access widens the approved group (all at once, no error limit, one target
    more): the plan no longer matches its hash, no target runs, the execution is dead-lettered."""
    execution_id = _approved_fleet(fleet)
    plan = _plan_json(execution_id)
    for step in plan["steps"]:
        step["fanout"][field] = value
    _sql("UPDATE executions SET plan_json = :p WHERE id = :e", p=json.dumps(plan), e=execution_id)
    drive(execution_id)
    assert get_execution(principal(*ALICE), execution_id).status == "failed"
    assert starts(fleet) == []
    [entry] = list_dlq(principal(*ALICE))
    assert entry.reason == "plan_mismatch"


def test_a_target_row_pointed_at_another_asset_runs_nothing_there(fleet: Path) -> None:
    """A step row of the group retargeted in the database (fan-3 → fan-odd): refused as a plan mismatch, and
    ``fan-odd`` never runs."""
    execution_id = _approved_fleet(fleet)
    _sql(
        "UPDATE execution_steps SET target_asset_id = (SELECT id FROM assets WHERE name = 'fan-odd') "
        "WHERE execution_id = :e AND step_index = 2",
        e=execution_id,
    )
    drive(execution_id)
    view = get_execution(principal(*ALICE), execution_id)
    assert view.status == "failed"
    assert "fan-odd" not in starts(fleet)
    assert [e.reason for e in list_dlq(principal(*ALICE))] == ["plan_mismatch"]


# --- 3. secrets limited to named assets -----------------------------------------------------------------------


def test_a_secret_limited_to_one_asset_refuses_a_fanout_over_several(fleet: Path) -> None:
    """A secret usable on fan-1 only, in a fan-out over the six: refused at submit, one issue per target it
    may not be used on, nothing stored, no value in the messages."""
    set_secret(principal("admin", "demo"), "fan_tok", "s3cr3t-fan-value", assets=["fan-1"])
    plan = _plan(_command(fleet, say="{{ secret:fan_tok }}"))
    with pytest.raises(InvalidInput) as caught:
        submit(principal(*ALICE), plan)
    refused = [m for _p, m in caught.value.issues]
    assert sorted(m.rsplit(" ", 1)[-1] for m in refused) == NAMES[1:]
    assert "s3cr3t-fan-value" not in str(caught.value.issues)
    assert _count("executions") == 0


def test_a_secret_limit_tightened_after_approval_keeps_it_off_the_other_targets(fleet: Path) -> None:
    """Approved while the secret was usable everywhere, then limited to fan-1: no target other than fan-1 gets
    the value; the execution ends failed (the run-time check is each target's)."""
    set_secret(principal("admin", "demo"), "fan_tok", "s3cr3t-fan-value")
    execution_id = _approved_fleet(fleet, say="{{ secret:fan_tok }}")
    limit_secret(principal("admin", "demo"), "fan_tok", ["fan-1"])
    drive(execution_id)
    view = get_execution(principal(*ALICE), execution_id)
    assert view.status == "failed"
    assert set(starts(fleet)) <= {"fan-1"}
    for step in view.steps:
        assert "s3cr3t-fan-value" not in (step.output or "") + (step.error or "")


def test_a_secret_printed_by_concurrent_targets_is_masked_in_every_output(fleet: Path) -> None:
    """Six targets, all at once, each printing the secret: every output shows the mask, none the value, and no
    event carries it."""
    set_secret(principal("admin", "demo"), "fan_tok", "s3cr3t-fan-value")
    execution_id = _approved_fleet(fleet, concurrency=6, sleep="1", say="{{ secret:fan_tok }}")
    drive(execution_id)
    view = get_execution(principal(*ALICE), execution_id)
    assert view.status == "completed"
    assert overlap(fleet) >= 3  # targets ran together, each with its own masker
    for step in view.steps:
        assert "said:" in (step.output or "")
        assert "s3cr3t-fan-value" not in (step.output or "")
    events = list_events(principal(*ALICE), execution_id)
    assert not any("s3cr3t-fan-value" in (e.message or "") + json.dumps(e.data or {}) for e in events)


# --- 7. resource abuse ----------------------------------------------------------------------------------------


def _fanout_threads(run: Any) -> int:
    """How many slot threads ``run()`` started (counted as each begins, so none is missed however short)."""
    started: set[str] = set()  # by name: a thread's ident is reused once it ends
    lock = threading.Lock()

    def trace(frame: Any, event: str, arg: Any) -> None:  # the first call in each new thread
        if (name := threading.current_thread().name).startswith("opsc-fanout-"):
            with lock:
                started.add(name)

    threading.settrace(trace)  # type: ignore[arg-type]
    try:
        run()
    finally:
        threading.settrace(None)  # type: ignore[arg-type]
    return len(started)


def test_a_huge_max_concurrency_starts_no_more_slots_than_targets(fleet: Path) -> None:
    """``max_concurrency: 200`` over six targets: the resolved limit is six, and the worker starts at most six slot
    threads (a tenant must not be able to exhaust a worker's threads; above 200 a count is refused)."""
    plan = _plan(_command(fleet), limits="    max_concurrency: 200\n")  # the most a count may say
    view = submit(principal(*ALICE), plan, background=True).execution
    threads = _fanout_threads(lambda: drive(view.execution_id))
    assert get_execution(principal(*ALICE), view.execution_id).status == "completed"
    assert threads <= len(NAMES), f"{threads} slot threads for {len(NAMES)} targets"
    assert view.steps[0].fanout is not None and view.steps[0].fanout.max_concurrency <= len(NAMES)


def test_two_hundred_targets_all_at_once_each_run_once(fleet: Path) -> None:
    """The largest fan-out (200 assets) at ``100%``: every target ran exactly once and the run completes; 201
    are refused at submit with the path."""
    admin = principal("admin", "demo")
    for n in range(7, 201):
        add_asset(admin, f"fan-{n}", Connection.LOCAL, tags=["fan"])
    # A step timeout of 60 s puts the plan in a class whose limit holds 200 claims, not in ``fast`` (10 s).
    plan = _plan(_command(fleet, sleep="0.5"), limits="    max_concurrency: 100%\n    timeout_s: 60\n")
    execution_id = submit(principal(*ALICE), plan, background=True).execution.execution_id
    approve(principal("bob", "demo"), execution_id)  # 200 targets: one level more than a read
    began = time.monotonic()
    drive(execution_id, timeout_s=240)
    took = time.monotonic() - began
    view = get_execution(principal(*ALICE), execution_id)
    print(f"200 targets at 100%: {took:.1f} s, overlap {overlap(fleet)}")
    assert view.status == "completed", view.error
    assert sorted(starts(fleet)) == sorted(f"fan-{n}" for n in range(1, 201))
    add_asset(admin, "fan-201", Connection.LOCAL, tags=["fan"])
    with pytest.raises(InvalidInput) as caught:
        submit(principal(*ALICE), plan)
    assert "steps[0].targets" in [p for p, _m in caught.value.issues]


def test_level_three_with_a_fanout_is_refused(fleet: Path) -> None:
    """Level 3 gates each step; a fan-out is not gated per target, so the combination is refused at submit."""
    plan = "approval_level: 3\n" + _plan("[/bin/true]")
    with pytest.raises(InvalidInput) as caught:
        submit(principal(*ALICE), plan)
    assert "approval_level" in [p for p, _m in caught.value.issues]
    assert _count("executions") == 0


# --- 8. bad input ---------------------------------------------------------------------------------------------

BAD = {
    "    targets: {tags: fan}\n": "steps[0].targets.tags",
    "    targets: {names: [1]}\n": "steps[0].targets.names[0]",
    "    targets: {tags: [fan], colour: red}\n": "steps[0].targets.colour",
    "    targets: [fan-1]\n": "steps[0].targets",
    "    targets: {tags: [fan]}\n    max_concurrency: -1\n": "steps[0].max_concurrency",
    "    targets: {tags: [fan]}\n    max_concurrency: 1.5\n": "steps[0].max_concurrency",
    "    targets: {tags: [fan]}\n    max_concurrency: true\n": "steps[0].max_concurrency",
    "    targets: {tags: [fan]}\n    max_concurrency: '-5%'\n": "steps[0].max_concurrency",
    "    targets: {tags: [fan]}\n    max_concurrency: '%'\n": "steps[0].max_concurrency",
    "    targets: {tags: [fan]}\n    max_errors: -2\n": "steps[0].max_errors",
    "    targets: {tags: [fan]}\n    max_errors: '1000%'\n": "steps[0].max_errors",
    "    targets: {tags: [fan]}\n    max_errors: [1]\n": "steps[0].max_errors",
    "    targets: {tags: []}\n": "steps[0].targets",
    "    targets: null\n    max_concurrency: 2\n": "steps[0].target",
}


@pytest.mark.parametrize("selection", list(BAD))
def test_malformed_targets_and_limits_are_refused_with_their_path(fleet: Path, selection: str) -> None:
    """Each malformed selection or limit is an InvalidInput naming its path (no other exception), and nothing
    is stored."""
    plan = f"name: bad\nsteps:\n  - name: s\n    action: noop\n{selection}"
    with pytest.raises(InvalidInput) as caught:
        submit(principal(*ALICE), plan)
    paths = [p for p, _m in caught.value.issues]
    assert any(p.startswith(BAD[selection]) for p in paths), (selection, caught.value.issues)
    assert _count("executions") == 0


def test_a_fanout_record_cannot_be_written_into_a_plan(fleet: Path) -> None:
    """A plan written pre-expanded, with its own ``fanout`` record (to claim a group over steps of its choosing
    or limits nobody resolved), is refused: only the expansion writes that record."""
    plan = (
        "name: forged\nsteps:\n"
        "  - name: a\n    action: noop\n    target: fan-1\n"
        "    fanout: {step: a, position: 0, of: 2, max_concurrency: 2, max_errors: 9}\n"
        "  - name: b\n    action: noop\n    target: fan-2\n"
    )
    with pytest.raises(InvalidInput) as caught:
        submit(principal(*ALICE), plan)
    assert any("fanout" in p for p, _m in caught.value.issues)
    assert _count("executions") == 0
