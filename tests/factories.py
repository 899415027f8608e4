"""Small builders for tests: plans as text, raw execution rows in a chosen status, and a throttle's end."""

from __future__ import annotations

import datetime as dt

from sqlmodel import Session, select

from core.plans import canonical_json, plan_hash
from db.clock import utcnow
from db.enums import ExecutionStatus
from db.tables import Execution, Tenant, User, new_id


def plan_text(name: str = "p", *, action_class: str = "read", steps: int = 1, command: str = "echo hi") -> str:
    """A YAML plan of ``steps`` shell steps on ``localhost`` with the given requested action class."""
    lines = [f"name: {name}", "steps:"]
    for i in range(steps):
        lines.append(
            f"  - {{name: s{i}, action: shell, target: localhost, action_class: {action_class}, "
            f"params: {{command: '{command}'}}}}"
        )
    return "\n".join(lines) + "\n"


def noop_plan(name: str = "n", *, level: int | None = None) -> str:
    """A one-step noop plan (read, fast): level 0 unless ``level`` raises it."""
    extra = f"approval_level: {level}\n" if level is not None else ""
    return f"name: {name}\n{extra}steps:\n  - {{name: a, action: noop, target: localhost}}\n"


def raw_execution(
    session: Session,
    status: ExecutionStatus,
    *,
    tenant: str = "demo",
    user: str = "alice",
    execution_id: str | None = None,
    name: str = "raw",
) -> Execution:
    """Insert an execution directly in ``status`` (bypassing submit) for FSM-level tests (``execution_id``: a
    chosen id, e.g. to share a prefix with another)."""
    tenant_id = session.exec(select(Tenant.id).where(Tenant.name == tenant)).one()
    user_id = session.exec(select(User.id).where(User.username == user)).one()
    plan_json = canonical_json({"name": "raw", "steps": []})
    row = Execution(
        id=execution_id or new_id(),
        tenant_id=tenant_id,
        requested_by=user_id,
        name=name,
        plan_json=plan_json,
        plan_hash=plan_hash(plan_json),
        action_class="read",
        approval_level=1,
        sla_class="fast",
        execution_mode="background",
        run_mode="live",
        status=status.value,
        idempotency_key=new_id(),
    )
    session.add(row)
    session.flush()
    return row


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """A YAML "billion laughs": each anchor repeats the previous one ``width`` times (9**9 strings from ~500 bytes)."""
    lines = [f"a0: &a0 [{', '.join(['lol'] * width)}]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


def throttle_ends_in(username: str, from_now: dt.timedelta) -> None:
    """Move the end of ``username``'s sign-in throttle to ``from_now`` (negative: over), so tests need not sleep
    through it; fails if the account is not throttled."""
    from core.transactions import session_scope

    with session_scope() as session:
        user = session.exec(select(User).where(User.username == username)).one()
        assert user.locked_until is not None, "the failures did not throttle the account"
        user.locked_until = utcnow() + from_now
        session.add(user)
