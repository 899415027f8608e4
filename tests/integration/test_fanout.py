"""Fan-out (issue 17 item 2, DESIGN §14) through the engine, on SQLite and PostgreSQL, with real ``shell`` steps.

A step with ``targets:`` runs once per selected asset (its own row, attempts, output, status), at most
``max_concurrency`` at a time, and starts no new target once more than ``max_errors`` failed. Each target's
process sees its asset's name in ``OPSC_TARGET``, which is how these tests make chosen targets fail.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import func, select

from core import add_asset, get_execution, list_events, principal, submit
from core.engine.steps import Outcome
from core.errors import InvalidInput
from core.usecases.dlq import list_dlq
from db.engine import session_scope
from db.enums import Connection
from db.settings import get_settings
from db.tables import Execution
from tests.engine_support import drive
from tests.fanout_support import NAMES, make_fleet, overlap, starts

ALICE = ("alice", "demo")


# The step every target runs: logs its start and end with the time, sleeps, fails (exit 3) where told to, and
# (``once``) fails its first attempt only. Declared read-only for the tenant, so it is a ``read`` step (retried).
SCRIPT = """#!/bin/sh
log=$1 sleep_s=$2 fail=$3 once=$4
echo "start $OPSC_TARGET $(date +%s.%N)" >> "$log"
sleep "$sleep_s"
echo "end $OPSC_TARGET $(date +%s.%N)" >> "$log"
case ",$fail," in *",$OPSC_TARGET,"*) exit 3 ;; esac
case ",$once," in *",$OPSC_TARGET,"*) [ -e "$log.$OPSC_TARGET" ] || { touch "$log.$OPSC_TARGET"; exit 1; } ;; esac
exit 0
"""


@pytest.fixture
def fleet(db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The fan-out fleet with this file's script (tests/fanout_support.py). Yields the script's path."""
    yield make_fleet(tmp_path, monkeypatch, SCRIPT)
    get_settings.cache_clear()


def _plan(command: str, *, limits: str = "", extra: str = "", name: str = "fleet") -> str:
    return (
        f"name: {name}\nsteps:\n"
        f"  - name: each\n    action: shell\n    targets: {{tags: [fan]}}\n{limits}"
        f"    params: {{command: {command}}}\n{extra}"
    )


def _command(script: Path, *, sleep: str = "0", fail: tuple[str, ...] = (), once: tuple[str, ...] = ()) -> str:
    log = script.parent / "log"
    return f"['{script}', '{log}', '{sleep}', '{','.join(fail) or '-'}', '{','.join(once) or '-'}']"


def _bg(plan: str) -> str:
    return submit(principal(*ALICE), plan, background=True).execution.execution_id


def test_a_fan_out_runs_each_tagged_asset_once_two_at_a_time(fleet: Path) -> None:
    """Six targets, ``max_concurrency: 2``: each ran exactly once, never more than two at once, and two did run
    together (the limit is used, not just respected); each target has its own row and output."""
    execution_id = _bg(_plan(_command(fleet, sleep="0.4"), limits="    max_concurrency: 2\n"))
    outcomes = drive(execution_id)
    assert outcomes[-1] is Outcome.FINISHED
    view = get_execution(principal(*ALICE), execution_id)
    assert view.status == "completed"
    assert [(s.name, s.target, s.status, s.attempts) for s in view.steps] == [
        (f"each[{n}]", n, "completed", 1) for n in NAMES
    ]
    assert sorted(starts(fleet)) == NAMES
    assert overlap(fleet) == 2


def test_max_errors_one_stops_after_the_second_failure_and_skips_the_rest(fleet: Path) -> None:
    """One at a time, in name order: the first failure (a read target: its three attempts) is tolerated, the
    second stops the fan-out; the targets after it never start (``skipped``), the execution is failed with a DLQ
    entry naming the limit."""
    command = _command(fleet, fail=("fan-2", "fan-4"))
    execution_id = _bg(_plan(command, limits="    max_concurrency: 1\n    max_errors: 1\n"))
    drive(execution_id)
    view = get_execution(principal(*ALICE), execution_id)
    assert view.status == "failed"
    assert [s.status for s in view.steps] == ["completed", "failed", "completed", "failed", "skipped", "skipped"]
    assert starts(fleet) == ["fan-1", *["fan-2"] * 3, "fan-3", *["fan-4"] * 3]
    [entry] = list_dlq(principal(*ALICE))
    assert (entry.reason, entry.step_index) == ("max_errors", 0)
    assert "2 of 6 targets failed (max_errors 1)" in (view.error or "")
    assert "fanout_stopped" in [e.kind for e in list_events(principal(*ALICE), execution_id)]


def test_failures_within_max_errors_go_on_and_end_partial(fleet: Path) -> None:
    """``max_errors: 50%`` of six is three: two failures run every target and the next step; the end is partial."""
    after = fleet.parent / "after"
    extra = (
        "  - name: after\n    action: shell\n    target: localhost\n"
        f"    params: {{command: [tee, -a, '{after}'], stdin: done}}\n"
    )
    command = _command(fleet, fail=("fan-1", "fan-6"))
    execution_id = _bg(_plan(command, limits="    max_concurrency: 3\n    max_errors: 50%\n", extra=extra))
    drive(execution_id)
    view = get_execution(principal(*ALICE), execution_id)
    assert view.status == "partial"
    assert [s.status for s in view.steps] == ["failed", *["completed"] * 4, "failed", "completed"]
    assert after.read_text() == "done"
    kinds = [e.kind for e in list_events(principal(*ALICE), execution_id)]
    assert "fanout_finished" in kinds and "fanout_stopped" not in kinds


def test_a_read_target_that_fails_once_is_retried_in_its_slot(fleet: Path) -> None:
    """At-least-once per target (DESIGN §3.5): a read target failing its first attempt runs again and completes;
    the others ran once."""
    execution_id = _bg(_plan(_command(fleet, once=("fan-3",)), limits="    max_concurrency: 3\n"))
    drive(execution_id)
    view = get_execution(principal(*ALICE), execution_id)
    assert view.status == "completed"
    assert [s.attempts for s in view.steps] == [1, 1, 2, 1, 1, 1]
    assert sorted(starts(fleet)) == sorted([*NAMES, "fan-3"])


def test_the_hash_covers_the_targets_and_the_approver_sees_each(fleet: Path) -> None:
    """The expanded steps are in the hashed plan: one more tagged asset is another plan (another hash), and a
    modify fan-out to the tenant's threshold of assets (10 by default) needs two approvers, not one."""
    modify = (
        "name: wide\nsteps:\n  - name: touch\n    action: shell\n    targets: {tags: [fan]}\n"
        "    max_concurrency: 3\n    params: {command: [/bin/true]}\n"
    )
    first = submit(principal(*ALICE), modify).execution
    assert (first.approval_level, len(first.steps)) == (1, 6)
    add_asset(principal("admin", "demo"), "fan-7", Connection.LOCAL, tags=["fan"])
    second = submit(principal(*ALICE), modify.replace("wide", "wide-2")).execution
    assert len(second.steps) == 7
    renamed = submit(principal(*ALICE), modify).execution
    assert renamed.plan_hash != first.plan_hash  # same text, one more target
    for n in range(8, 11):
        add_asset(principal("admin", "demo"), f"fan-{n}", Connection.LOCAL, tags=["fan"])
    wide = submit(principal(*ALICE), modify.replace("wide", "wide-3")).execution
    assert (len(wide.steps), wide.approval_level) == (10, 2)


def test_bad_selections_and_limits_name_their_paths(fleet: Path) -> None:
    """Every problem of a fan-out step is refused with the path of what was written, and nothing is stored."""
    cases = {
        "    targets: {tags: [nope]}\n": "steps[0].targets",
        "    targets: {names: [fan-1, ghost]}\n": "steps[0].targets.names[1]",
        "    targets: {tags: [fan]}\n    max_concurrency: lots\n": "steps[0].max_concurrency",
        "    targets: {tags: [fan]}\n    max_errors: 120%\n": "steps[0].max_errors",
        "    targets: {tags: [fan]}\n    max_concurrency: 201\n": "steps[0].max_concurrency",
        "    target: localhost\n    max_errors: 1\n": "steps[0].max_errors",
        "    target: localhost\n    targets: {tags: [fan]}\n": "steps[0].targets",
        "    targets: {}\n": "steps[0].targets",
    }
    for selection, path in cases.items():
        plan = f"name: bad\nsteps:\n  - name: s\n    action: noop\n{selection}"
        with pytest.raises(InvalidInput) as caught:
            submit(principal(*ALICE), plan)
        assert path in [p for p, _m in caught.value.issues], (selection, caught.value.issues)
    with session_scope() as session:
        assert session.exec(select(func.count()).select_from(Execution)).one() == 0
