"""Every approval surface shows what will run (issue 13): each step's action, target and canonical params from
the hashed plan, secret references as references (never a value), the dry run, and what changed since the
last approved run of the same plan name."""

from __future__ import annotations

import json

from core import approval_inbox, approve, get_execution, principal, reject, submit
from core.ops.setup import DEMO_SECRET

SECRET_VALUE = "demo-demo-s3cr3t-value"  # what core/ops/setup.py seeds for demo_token in tenant demo
REF = "{{ secret:demo_token }}"


def _plan(command: str, *, name: str = "nightly") -> str:
    return (
        f"name: {name}\nsteps:\n"
        "  - {name: fetch, action: shell, target: localhost, "
        f"params: {{command: [{command}], env: {{TOKEN: '{REF}'}}}}}}\n"
    )


def _submit(plan: str, key: str) -> str:
    return submit(principal("alice", "demo"), plan, idempotency_key=key).execution.execution_id


def test_the_view_and_the_inbox_show_params_with_the_secret_reference_never_its_value(db: str) -> None:
    """get_execution and the inbox carry the canonical params (reference kept) and the dry run (masked)."""
    assert DEMO_SECRET == "demo_token"
    execution_id = _submit(_plan("printenv, TOKEN"), "k1")
    view = get_execution(principal("bob", "demo"), execution_id)
    step = view.steps[0]
    assert view.plan_intact and view.status == "pending_approval"
    assert (step.action, step.target, step.action_class) == ("shell", "localhost", "modify")
    assert step.params is not None
    assert step.params["command"] == ["printenv", "TOKEN"] and step.params["env"] == {"TOKEN": REF}
    assert step.dry_run is not None and "would run printenv TOKEN on localhost" in step.dry_run
    [item] = [i for i in approval_inbox(principal("bob", "demo")) if i.execution_id == execution_id]
    assert [(s.name, s.action, s.target, s.params, s.dry_run) for s in item.steps] == [
        ("fetch", "shell", "localhost", step.params, step.dry_run)
    ]
    for shown in (view.model_dump_json(), item.model_dump_json()):
        assert REF in json.loads(shown)["steps"][0]["params"]["env"]["TOKEN"]
        assert SECRET_VALUE not in shown


def test_a_changed_plan_shows_a_diff_against_the_last_approved_run(db: str) -> None:
    """The second run of the plan name differs from the approved first: the inbox and the view show the diff."""
    first = _submit(_plan("echo, one"), "k1")
    approve(principal("bob", "demo"), first)
    second = _submit(_plan("echo, two"), "k2")
    view = get_execution(principal("bob", "demo"), second)
    assert view.compared_with == first
    diff = view.changes_since_approved or ""
    assert diff.startswith(f"--- last approved run {first[:8]} (queued)\n+++ this plan\n")
    assert '-       "one"' in diff and '+       "two"' in diff and '"echo"' in diff
    assert SECRET_VALUE not in diff
    [item] = [i for i in approval_inbox(principal("carol", "demo")) if i.execution_id == second]
    assert (item.changes_since_approved, item.compared_with) == (diff, first)


def test_an_unchanged_plan_or_a_first_run_shows_no_diff(db: str) -> None:
    """Same steps as the last approved run: no diff; a plan name never approved before: none either."""
    first = _submit(_plan("echo, same"), "k1")
    assert get_execution(principal("bob", "demo"), first).changes_since_approved is None
    approve(principal("bob", "demo"), first)
    again = _submit(_plan("echo, same"), "k2")
    view = get_execution(principal("bob", "demo"), again)
    assert (view.changes_since_approved, view.compared_with) == (None, None)
    [item] = [i for i in approval_inbox(principal("bob", "demo")) if i.execution_id == again]
    assert item.changes_since_approved is None and item.steps[0].params is not None


def test_a_rejected_run_is_not_what_the_diff_compares_with(db: str) -> None:
    """Only approved runs count: a rejected earlier run of the same name is passed over."""
    approved = _submit(_plan("echo, approved"), "k1")
    approve(principal("bob", "demo"), approved)
    rejected = _submit(_plan("echo, rejected"), "k2")
    reject(principal("bob", "demo"), rejected)
    current = _submit(_plan("echo, approved"), "k3")
    assert get_execution(principal("bob", "demo"), current).changes_since_approved is None  # same as the approved


def test_a_different_plan_name_is_another_runbook(db: str) -> None:
    """Runs are linked by plan name within the tenant: another name is never compared with."""
    approve(principal("bob", "demo"), _submit(_plan("echo, one", name="a-plan"), "k1"))
    other = _submit(_plan("echo, two", name="b-plan"), "k2")
    assert get_execution(principal("bob", "demo"), other).compared_with is None
