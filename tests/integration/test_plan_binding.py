"""What the approver sees is what runs (DESIGN §13, issue 13): the worker executes from the verified hashed
plan and refuses a step whose stored plan or step row was edited after approval; nothing edited runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text

from core import approve, get_execution, list_events, principal, submit
from core.plans import canonical_json, plan_hash
from core.transactions import session_scope
from core.usecases.dlq import list_dlq
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


def test_a_plan_edited_with_its_hash_recomputed_has_no_approval(approved: tuple[str, Path], tmp_path: Path) -> None:
    """Recomputing the hash after the edit does not help: the approval was given for the old hash."""
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
            text("UPDATE execution_steps SET params_json = :p WHERE execution_id = :id"),
            {"p": canonical_json(plan["steps"][0]["params"]), "id": execution_id},
        )
    drive(execution_id)
    view = get_execution(principal("admin", "demo"), execution_id)
    assert view.status == "failed" and "approvals no longer valid" in (view.steps[0].error or "")
    assert not evil.exists() and not log.exists()


def test_an_untouched_approved_plan_runs_from_the_plan(approved: tuple[str, Path]) -> None:
    """The control: the same approved plan, unedited, runs its one command once."""
    execution_id, log = approved
    drive(execution_id)
    assert get_execution(principal("alice", "demo"), execution_id).status == "completed"
    assert log.read_text() == "approved\n"
