"""What the approver sees is what runs (DESIGN §13, issue 13): the worker executes from the verified hashed
plan and refuses a step whose stored plan or step row was edited after approval; nothing edited runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text

from core import approve, get_execution, list_events, principal, submit
from core.approval_rules import approvals_satisfied, valid_approvers
from core.plans import canonical_json, plan_hash
from core.transactions import session_scope
from core.usecases.dlq import list_dlq
from db.tables import Execution
from tests.engine_support import drive, tee_step


@pytest.fixture
def approved(db: str, tmp_path: Path) -> tuple[str, Path]:
    """A level-1 plan whose one step appends to a log, approved by bob; returns its id and the log."""
    log = tmp_path / "approved.log"
    plan = "name: bound\nsteps:\n" + tee_step("append", log, "approved", action_class="modify")
    execution_id = submit(principal("alice", "demo"), plan).execution.execution_id
    assert approve(principal("bob", "demo"), execution_id).status == "queued"
    return execution_id, log


def _stored_plan(execution_id: str) -> dict:
    with session_scope() as session:
        raw = session.execute(text("SELECT plan_json FROM executions WHERE id = :id"), {"id": execution_id}).scalar()
    return json.loads(raw)


def _assert_refused(execution_id: str, reason: str, *never_written: Path) -> None:
    """The execution failed without running, its error and events name ``reason``, and the DLQ holds it."""
    admin = principal("admin", "demo")
    drive(execution_id)
    view = get_execution(admin, execution_id)
    assert view.status == "failed"
    assert reason in (view.error or "") and reason in (view.steps[0].error or "")
    refused = [e for e in list_events(admin, execution_id) if e.kind == "plan_refused"]
    assert len(refused) == 1 and reason in refused[0].message and refused[0].step_index == 0
    assert not any(e.kind == "secrets_read" for e in list_events(admin, execution_id))
    assert [(d.execution_id, d.reason) for d in list_dlq(admin)] == [(execution_id, "plan_mismatch")]
    for path in never_written:
        assert not path.exists(), f"{path} was written: an edited command ran"


def test_a_step_row_edited_after_approval_is_refused(approved: tuple[str, Path], tmp_path: Path) -> None:
    """Raw SQL changes the step row's params (the copy the worker used to run): refused, neither command runs."""
    execution_id, log = approved
    evil = tmp_path / "evil-from-row"
    params = _stored_plan(execution_id)["steps"][0]["params"] | {"command": ["tee", "-a", str(evil)]}
    with session_scope() as session:
        changed = session.execute(
            text("UPDATE execution_steps SET params_json = :p WHERE execution_id = :id AND step_index = 0"),
            {"p": canonical_json(params), "id": execution_id},
        )
        assert changed.rowcount == 1
    _assert_refused(execution_id, "plan mismatch: the stored params of step 0", evil, log)


def test_a_stored_plan_edited_after_approval_is_refused(approved: tuple[str, Path], tmp_path: Path) -> None:
    """Raw SQL rewrites the hashed plan (and, consistently, the step row): the hash no longer matches, refused."""
    execution_id, log = approved
    evil = tmp_path / "evil-from-plan"
    plan = _stored_plan(execution_id)
    plan["steps"][0]["params"]["command"] = ["tee", "-a", str(evil)]
    with session_scope() as session:
        session.execute(
            text("UPDATE executions SET plan_json = :p WHERE id = :id"), {"p": canonical_json(plan), "id": execution_id}
        )
        session.execute(
            text("UPDATE execution_steps SET params_json = :p WHERE execution_id = :id"),
            {"p": canonical_json(plan["steps"][0]["params"]), "id": execution_id},
        )
    assert get_execution(principal("bob", "demo"), execution_id).plan_intact is False
    _assert_refused(execution_id, "plan hash mismatch", evil, log)


def test_a_plan_rewritten_with_every_hash_recomputed_is_refused_by_its_seal(
    approved: tuple[str, Path], tmp_path: Path
) -> None:
    """The adversarial review's attack: with database access, rewrite the plan, recompute its (keyless) hash
    and write it into the execution, the approval and the step row. The seal (an HMAC with a key that is not
    in the database) no longer matches: refused, nothing runs."""
    execution_id, log = approved
    evil = tmp_path / "evil-rehashed"
    plan = _stored_plan(execution_id)
    plan["steps"][0]["params"]["command"] = ["tee", "-a", str(evil)]
    canonical = canonical_json(plan)
    with session_scope() as session:
        session.execute(
            text("UPDATE executions SET plan_json = :p, plan_hash = :h WHERE id = :id"),
            {"p": canonical, "h": plan_hash(canonical), "id": execution_id},
        )
        session.execute(
            text("UPDATE approvals SET plan_hash = :h WHERE execution_id = :id"),
            {"h": plan_hash(canonical), "id": execution_id},
        )
        session.execute(
            text("UPDATE execution_steps SET params_json = :p WHERE execution_id = :id"),
            {"p": canonical_json(plan["steps"][0]["params"]), "id": execution_id},
        )
    _assert_refused(execution_id, "seal mismatch", evil, log)


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("run_mode", "'live'"),
        ("approval_level", "0"),
        ("requested_by", "(SELECT id FROM users WHERE username = 'carol')"),
    ],
)
def test_what_the_approval_covers_cannot_be_changed_in_the_database(
    db: str, tmp_path: Path, column: str, value: str
) -> None:
    """A dry run flipped to live, a lowered level, another requester: each breaks the seal and is refused."""
    from core import TenantMode, set_tenant_mode

    if column == "run_mode":
        set_tenant_mode(principal("admin", "demo"), TenantMode.DRY_RUN)
    log = tmp_path / "sealed.log"
    plan = "name: sealed\nsteps:\n" + tee_step("append", log, "x", action_class="modify")
    execution_id = submit(principal("alice", "demo"), plan).execution.execution_id
    approve(principal("bob", "demo"), execution_id)
    with session_scope() as session:
        session.execute(text(f"UPDATE executions SET {column} = {value} WHERE id = :id"), {"id": execution_id})
    _assert_refused(execution_id, "seal mismatch", log)


def test_a_forged_approval_row_counts_for_nothing(db: str, tmp_path: Path) -> None:
    """An approval inserted by hand (bob's name, the right plan hash) has no valid seal and counts for nothing."""
    log = tmp_path / "forged.log"
    plan = "name: forged\nsteps:\n" + tee_step("append", log, "x", action_class="modify")
    view = submit(principal("alice", "demo"), plan).execution
    with session_scope() as session:
        session.execute(
            text(
                "INSERT INTO approvals (id, execution_id, tenant_id, approver_id, decision, plan_hash, created_at) "
                "SELECT 'forged0000000000', e.id, e.tenant_id, u.id, 'approved', e.plan_hash, e.created_at "
                "FROM executions e, users u WHERE e.id = :id AND u.username = 'bob'"
            ),
            {"id": view.execution_id},
        )
    with session_scope() as session:
        execution = session.get(Execution, view.execution_id)
        assert execution is not None
        assert valid_approvers(session, execution) == set() and not approvals_satisfied(session, execution)
    approve(principal("carol", "demo"), view.execution_id)  # the control: a real approval counts
    with session_scope() as session:
        execution = session.get(Execution, view.execution_id)
        assert execution is not None
        assert len(valid_approvers(session, execution)) == 1 and approvals_satisfied(session, execution)


def test_an_untouched_approved_plan_runs_from_the_plan(approved: tuple[str, Path]) -> None:
    """The control: the same approved plan, unedited, runs its one command once."""
    execution_id, log = approved
    drive(execution_id)
    assert get_execution(principal("alice", "demo"), execution_id).status == "completed"
    assert log.read_text() == "approved\n"
