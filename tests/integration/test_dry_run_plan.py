"""The Submit page's dry run: every step describes itself, secrets stay masked, nothing is touched."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import func, select

from core import InvalidInput, dry_run_plan, principal
from core.transactions import session_scope
from db.tables import Execution, ExecutionEvent


def test_a_plan_is_described_step_by_step_and_nothing_runs(db: str, tmp_path: Path) -> None:
    marker = tmp_path / "created-by-the-step"
    plan = (
        "name: touchy\nsteps:\n"
        f"  - {{name: create, action: shell, target: localhost, action_class: modify, params: {{command: [touch, '{marker}']}}}}\n"
        "  - {name: token, action: shell, target: localhost, params: {command: [echo, '{{ secret:demo_token }}']}}\n"
    )
    steps = dry_run_plan(principal("alice", "demo"), plan)
    assert [(s.index, s.name, s.action, s.target, s.ok) for s in steps] == [
        (0, "create", "shell", "localhost", True),
        (1, "token", "shell", "localhost", True),
    ]
    assert str(marker) in steps[0].description and "touch" in steps[0].description
    assert "***" in steps[1].description and "s3cr3t" not in steps[1].description
    assert not marker.exists()
    with session_scope() as session:
        assert session.exec(select(func.count()).select_from(Execution)).one() == 0
        assert session.exec(select(func.count()).select_from(ExecutionEvent)).one() == 0


def test_an_unknown_asset_is_an_error_with_its_path(db: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        dry_run_plan(principal("mallory", "globex"), "name: x\nsteps:\n  - {name: a, action: noop, target: web-9}\n")
    assert refused.value.path == "steps[0].target"
