"""Plan inputs through the submit, the approval and the worker (DESIGN §14, §3.6): the values are in the hashed
plan, so an approval of the plan with one value does not approve it with another, and what runs is the
concrete plan the approver saw, each value one argv element."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from core import (
    Connection,
    InvalidInput,
    add_asset,
    approve,
    declared_inputs,
    get_execution,
    preview,
    principal,
    submit,
    submit_many,
)
from core.transactions import session_scope
from tests.engine_support import drive

PLAN = """\
name: echo {{ input:service }}
inputs:
  - {name: service, type: choice, choices: [nginx, cron], description: The unit}
  - {name: note, type: string, default: hello}
  - {name: host, type: asset, default: localhost}
steps:
  - name: echo
    action: shell
    target: "{{ input:host }}"
    action_class: modify
    params:
      command: "printf '%s|%s|' {{ input:service }} '{{ input:note }}'"
"""


def _stored(execution_id: str) -> tuple[dict, str]:
    with session_scope() as session:
        row = session.execute(
            text("SELECT plan_json, plan_hash FROM executions WHERE id = :id"), {"id": execution_id}
        ).one()
    return json.loads(row[0]), row[1]


def test_an_approval_of_one_input_value_does_not_approve_another(db: str) -> None:
    """Input A approved and run; input B is a different plan hash, waiting for its own approval."""
    alice, bob = principal("alice", "demo"), principal("bob", "demo")
    first = submit(alice, PLAN, inputs={"service": "nginx", "note": "$(touch /tmp/pwned); rm -rf /"}).execution
    second = submit(alice, PLAN, inputs={"service": "cron"}).execution
    assert first.status == second.status == "pending_approval"
    assert first.plan_hash != second.plan_hash
    assert first.name == "echo nginx" and second.name == "echo cron"

    assert approve(bob, first.execution_id).status == "queued"
    assert get_execution(alice, second.execution_id).status == "pending_approval"  # not approved by A's approval

    drive(first.execution_id)
    done = get_execution(alice, first.execution_id)
    assert done.status == "completed"
    assert done.steps[0].output == "nginx|$(touch /tmp/pwned); rm -rf /|"  # one element each, never evaluated

    plan, stored_hash = _stored(first.execution_id)
    assert stored_hash == first.plan_hash
    assert plan["steps"][0]["params"]["command"] == ["printf", "%s|%s|", "nginx", "$(touch /tmp/pwned); rm -rf /"]
    assert plan["inputs"] == {"service": "nginx", "note": "$(touch /tmp/pwned); rm -rf /", "host": "localhost"}
    assert "{{ input:" not in json.dumps(plan)


def test_the_same_values_are_the_same_plan(db: str) -> None:
    """Idempotency follows the hash: the same values again return the active execution; others do not."""
    alice = principal("alice", "demo")
    first = submit(alice, PLAN, inputs={"service": "nginx"})
    again = submit(alice, PLAN, inputs={"service": "nginx", "note": "hello"})  # the default, spelt out
    other = submit(alice, PLAN, inputs={"service": "nginx", "note": "bye"})
    assert first.created and not again.created and other.created
    assert again.execution.execution_id == first.execution.execution_id
    assert preview(alice, PLAN, inputs={"service": "nginx"}).plan_hash == first.execution.plan_hash


def test_an_asset_input_must_name_an_asset_of_the_tenant(db: str) -> None:
    """Another tenant's asset is unknown here, named at the input's path; nothing is written."""
    add_asset(principal("admin", "globex"), "globex-db", Connection.LOCAL)
    alice = principal("alice", "demo")
    with pytest.raises(InvalidInput) as caught:
        submit(alice, PLAN, inputs={"service": "cron", "host": "globex-db"})
    assert ("inputs.host", "unknown asset 'globex-db' in tenant demo") in caught.value.issues
    with session_scope() as session:
        count = session.execute(text("SELECT count(*) FROM executions WHERE name = 'echo cron'")).scalar()
    assert count == 0


def test_a_batch_takes_one_set_of_values_per_plan(db: str) -> None:
    """``submit_many`` binds each plan to its own values; a bad one is named ``plans[i].inputs…``."""
    alice = principal("alice", "demo")
    with pytest.raises(InvalidInput) as caught:
        submit_many(alice, [PLAN, PLAN], inputs=[{"service": "nginx"}, {"service": "sshd"}])
    assert caught.value.issues == [("plans[1].inputs.service", "must be one of nginx, cron")]
    results = submit_many(alice, [PLAN, PLAN], inputs=[{"service": "nginx"}, {"service": "cron"}])
    assert [r.execution.name for r in results] == ["echo nginx", "echo cron"]


def test_a_secret_ref_input_is_checked_like_any_reference(db: str) -> None:
    """Its value names a secret of the tenant; an unknown one is refused; the stored plan keeps the reference."""
    plan = (
        "name: with-token\ninputs:\n  - {name: token, type: secret_ref}\nsteps:\n"
        "  - {name: s, action: shell, target: localhost, params: {command: [env], env: {T: '{{ input:token }}'}}}\n"
    )
    alice = principal("alice", "demo")
    with pytest.raises(InvalidInput) as caught:
        submit(alice, plan, inputs={"token": "nope"})
    assert ("secrets", "unknown secret 'nope' in tenant demo") in caught.value.issues
    view = submit(alice, plan, inputs={"token": "demo_token"}).execution
    stored, _hash = _stored(view.execution_id)
    assert stored["steps"][0]["params"]["env"] == {"T": "{{ secret:demo_token }}"}
    assert stored["inputs"] == {"token": "{{ secret:demo_token }}"}


def test_declared_inputs_of_a_demo_runbook() -> None:
    """The demo's parameterised runbook declares a choice input the console renders as a selectbox."""
    from core.ops.setup import DEMO_RUNBOOKS

    texts = {name: plan for name, _description, plan in DEMO_RUNBOOKS}
    [service] = [i for i in declared_inputs(texts["Restart a service"]) if i.name == "service"]
    assert service.type == "choice" and service.choices


def test_a_published_runbook_vouches_for_no_step_that_takes_an_input(db: str) -> None:
    """The admin published ``{{ input:dir }}``, not any value (nor the sample the template validated with)."""
    from core import preview, publish_runbook, save_runbook

    text = (
        "name: look\ninputs:\n  - {name: dir, type: string}\nsteps:\n"
        "  - {name: up, action: shell, target: localhost, params: {command: [uptime]}}\n"
        "  - {name: du, action: shell, target: localhost, params: {command: [du, -sh, '{{ input:dir }}']}}\n"
    )
    admin, alice = principal("admin", "demo"), principal("alice", "demo")
    save_runbook(admin, "Look", text)
    assert publish_runbook(admin, "Look").published
    for value in ("/tmp", "dir"):  # "dir" is the template's sample for the input
        steps = preview(alice, text, inputs={"dir": value}).steps
        assert [s["action_class"] for s in steps] == ["read", "modify"], value


def test_an_ended_execution_with_inputs_is_rerun_with_its_values(db: str) -> None:
    """``rerun`` submits the concrete plan again (the steps hold the values); a new execution, approved anew."""
    from core import cancel, rerun

    alice = principal("alice", "demo")
    first = submit(alice, PLAN, inputs={"service": "cron", "note": "again"}).execution
    cancel(alice, first.execution_id)
    again = rerun(alice, first.execution_id).execution
    assert again.execution_id != first.execution_id
    assert (again.name, again.status) == ("echo cron", "pending_approval")
    plan, _hash = _stored(again.execution_id)
    assert plan["steps"][0]["params"]["command"] == ["printf", "%s|%s|", "cron", "again"]


def test_show_and_the_approval_view_list_the_values(db: str) -> None:
    """The execution's view carries the values from the hashed plan (show --json, the approval screen)."""
    alice = principal("alice", "demo")
    view = submit(alice, PLAN, inputs={"service": "cron"}).execution
    assert get_execution(principal("bob", "demo"), view.execution_id).inputs == {
        "service": "cron",
        "note": "hello",
        "host": "localhost",
    }
    plain = submit(alice, "name: p\nsteps:\n  - {name: s, action: noop, target: localhost}\n").execution
    assert get_execution(alice, plain.execution_id).inputs is None
