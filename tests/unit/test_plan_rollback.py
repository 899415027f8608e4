"""Rollback steps in a plan (DESIGN §14): parsed and validated like ``steps`` with their own paths, numbered
after the main steps, counted in the class and level, and part of the canonical form and hash.

Pure: no database, no services.
"""

from __future__ import annotations

from typing import Any

import pytest

from core.errors import InvalidInput
from core.plan_phases import flat_steps, phase_range, step_at
from core.plans import canonical_plan, limit_issues, parse_plan, plan_hash
from core.policies import DEFAULT_POLICIES
from db.enums import ActionClass, StepPhase


def step(name: str, action: str = "noop", target: str = "web-01", **fields: Any) -> dict[str, Any]:
    return {"name": name, "action": action, "target": target, **fields}


def plan(**top: Any) -> dict[str, Any]:
    return {"name": "p", "steps": [step("a"), step("b")], **top}


def refused(source: Any) -> list[tuple[str, str]]:
    with pytest.raises(InvalidInput) as info:
        parse_plan(source)
    return info.value.issues


def canonical(source: Any) -> dict[str, Any]:
    return canonical_plan(parse_plan(source), {"web-01": "asset-1", "db-01": "asset-2"})


def test_rollback_steps_follow_the_main_steps_in_one_numbering() -> None:
    """on_failure steps take the indices after the main steps, on_cancel after them; each knows its own path."""
    parsed = parse_plan(plan(on_failure=[step("undo")], on_cancel=[step("tidy-1"), step("tidy-2")]))
    assert [(s.index, s.phase, s.path) for s in parsed.all_steps] == [
        (0, StepPhase.MAIN, "steps[0]"),
        (1, StepPhase.MAIN, "steps[1]"),
        (2, StepPhase.ON_FAILURE, "on_failure[0]"),
        (3, StepPhase.ON_CANCEL, "on_cancel[0]"),
        (4, StepPhase.ON_CANCEL, "on_cancel[1]"),
    ]
    assert [s.index for s in parsed.steps] == [0, 1]  # ``steps`` stays the main ones
    shape = canonical(plan(on_failure=[step("undo")], on_cancel=[step("tidy-1"), step("tidy-2")]))
    assert [(p.value, s["name"]) for p, s in flat_steps(shape)] == [
        ("main", "a"),
        ("main", "b"),
        ("on_failure", "undo"),
        ("on_cancel", "tidy-1"),
        ("on_cancel", "tidy-2"),
    ]
    assert phase_range(shape, StepPhase.ON_FAILURE) == range(2, 3)
    assert phase_range(shape, StepPhase.ON_CANCEL) == range(3, 5)
    assert step_at(shape, 3) == (StepPhase.ON_CANCEL, shape["on_cancel"][0]) and step_at(shape, 5) is None


def test_validation_errors_name_the_rollback_path() -> None:
    """Missing fields, unknown actions, bad params and unknown keys in a rollback step: each at its own path."""
    assert refused(plan(on_failure=[{"name": "x", "action": "noop"}])) == [
        ("on_failure[0].target", "required (one asset; or targets, for a fan-out)")
    ]
    issues = refused(plan(on_failure=[step("y", action="nope")], on_cancel=[step("z", action="shell", params={})]))
    assert [p for p, _m in issues] == ["on_failure[0].action", "on_cancel[0].params.command"]
    assert refused(plan(on_failure=[step("u", bogus=1)])) == [("on_failure[0].bogus", "unknown field")]
    assert refused(plan(on_failure=step("u")))[0][0] == "on_failure"  # a list, not one mapping


def test_step_names_are_unique_across_main_and_rollback_steps() -> None:
    assert refused(plan(on_failure=[step("b")])) == [("on_failure[0].name", "duplicate of steps[1].name ('b')")]
    assert refused(plan(on_failure=[step("u")], on_cancel=[step("u")])) == [
        ("on_cancel[0].name", "duplicate of on_failure[0].name ('u')")
    ]


def test_a_rollback_step_counts_towards_the_step_limit() -> None:
    with pytest.raises(InvalidInput, match="rollback included"):
        parse_plan(plan(on_failure=[step(f"u{i}") for i in range(3)]), max_steps=4)


def test_the_plans_class_and_level_count_its_rollback_steps() -> None:
    """A read-only plan whose rollback modifies is a modify plan (level 1): the approver approves the rollback."""
    parsed = parse_plan(plan(on_failure=[step("undo", action_class="modify")]))
    assert [s.action_class for s in parsed.steps] == [ActionClass.READ, ActionClass.READ]
    assert (parsed.action_class, parsed.approval_level) == (ActionClass.MODIFY, 1)
    deploy = parse_plan(plan(on_cancel=[step("undo", action_class="deploy")]))
    assert (deploy.action_class, deploy.approval_level) == (ActionClass.DEPLOY, 2)


def test_a_rollback_steps_timeout_is_judged_at_its_path() -> None:
    """A declared timeout no class holds is refused at the rollback step's path; it does not count in the
    plan's estimate (the rollback gets its own time when it starts)."""
    parsed = parse_plan(plan(on_failure=[step("undo", timeout_s=100000 // 2)]))
    assert limit_issues(parsed.all_steps, DEFAULT_POLICIES) == [
        ("on_failure[0].timeout_s", "50000 exceeds the longest step limit for read (60 s)")
    ]
    timed = parse_plan(plan(on_failure=[step("undo", timeout_s=50)]))
    assert timed.estimated_s == parse_plan(plan()).estimated_s


def test_the_canonical_form_and_hash_cover_rollback_steps() -> None:
    """Without rollback the canonical form has no rollback keys (hashes as before); with it, any change to a
    rollback step, its list or its order changes the hash."""
    bare = canonical(plan())
    assert "on_failure" not in bare and "on_cancel" not in bare
    assert canonical(plan(on_failure=[], on_cancel=[])) == bare
    undo = plan(on_failure=[step("undo", target="db-01")])
    shape = canonical(undo)
    assert shape["on_failure"] == [
        {
            "name": "undo",
            "action": "noop",
            "target": "asset-2",
            "action_class": "read",
            "params": {},
            "timeout_s": None,
        }
    ]
    hashes = {
        plan_hash(bare),
        plan_hash(shape),
        plan_hash(canonical(plan(on_cancel=[step("undo", target="db-01")]))),
        plan_hash(canonical(plan(on_failure=[step("undo", target="web-01")]))),
        plan_hash(canonical(plan(on_failure=[step("undo", target="db-01", timeout_s=3)]))),
        plan_hash(canonical(plan(on_failure=[step("undo", target="db-01"), step("undo-2")]))),
        plan_hash(canonical(plan(on_failure=[step("undo-2"), step("undo", target="db-01")]))),
    }
    assert len(hashes) == 7


def test_inputs_fill_rollback_steps_too() -> None:
    """A declared input is substituted into a rollback step's target and params before the hash."""
    source = {
        "name": "p",
        "inputs": [{"name": "host", "type": "string"}],
        "steps": [step("a", target="{{ input:host }}")],
        "on_failure": [
            step("undo", action="shell", target="{{ input:host }}", params={"command": ["echo", "{{ input:host }}"]})
        ],
    }
    parsed = parse_plan(source, inputs={"host": "web-01"})
    [undo] = parsed.rollback
    assert (undo.spec.target, undo.params["command"]) == ("web-01", ["echo", "web-01"])
    assert undo.index in parsed.templated
    with pytest.raises(InvalidInput) as info:
        parse_plan({**source, "on_failure": [step("undo", target="{{ input:nope }}")]}, inputs={"host": "web-01"})
    assert info.value.issues == [("on_failure[0].target", "unknown input 'nope' (declare it under inputs:)")]
