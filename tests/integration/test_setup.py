"""opsconductor init: migrate, seed the 9 policies idempotently, demo data idempotently."""

from __future__ import annotations

import pytest
from sqlalchemy import func
from sqlmodel import select

from core import InvalidInput, PolicyValues, initialize, list_policies, principal, update_policy
from core.policies import DEFAULT_POLICIES
from db.engine import session_scope
from db.enums import ActionClass, SlaClass
from db.tables import Asset, Membership, Secret, Tenant, TimeoutPolicy


def test_initialize_seeds_nine_policies_and_demo_once(db: str) -> None:
    """A second init adds nothing and keeps an admin's policy edit."""
    admin = principal("admin", "demo")
    update_policy(admin, SlaClass.FAST, ActionClass.READ, PolicyValues(6, 12, 18, 300, 4))
    report = initialize(demo=True)
    assert report.policies_added == 0 and report.created == []
    with session_scope() as session:
        assert session.exec(select(func.count()).select_from(TimeoutPolicy)).one() == 9
        assert session.exec(select(func.count()).select_from(Tenant)).one() == 2
        assert session.exec(select(func.count()).select_from(Membership)).one() == 7
        assert session.exec(select(func.count()).select_from(Asset)).one() == 5  # localhost in each, lab-1..3 in demo
        assert session.exec(select(func.count()).select_from(Secret)).one() == 2
    fast_read = next(p for p in list_policies(admin) if (p.sla_class, p.action_class) == ("fast", "read"))
    assert (fast_read.step_s, fast_read.max_attempts) == (6, 4)


def test_seeded_policies_are_the_design_table(db: str) -> None:
    """The 9 seeded rows equal DESIGN §6, in matrix order."""
    rows = list_policies(principal("dave", "demo"))
    assert [(p.sla_class, p.action_class) for p in rows] == [(s.value, a.value) for s, a in DEFAULT_POLICIES]
    assert rows[-1].model_dump() == {"sla_class": "long", "action_class": "deploy", "step_s": 300,
                                     "execution_s": 1800, "lease_s": 2160, "approval_s": 7200, "max_attempts": 3}  # fmt: skip


@pytest.mark.parametrize(
    ("values", "path"),
    [
        (PolicyValues(10, 5, 20, 60, 3), "execution_s"),
        (PolicyValues(10, 20, 5, 60, 3), "lease_s"),
        (PolicyValues(0, 20, 20, 60, 3), "step_s"),
    ],
)
def test_policy_validation(db: str, values: PolicyValues, path: str) -> None:
    """lease ≥ step and execution ≥ step, all positive; a refused edit changes nothing."""
    admin = principal("admin", "demo")
    with pytest.raises(InvalidInput) as info:
        update_policy(admin, SlaClass.FAST, ActionClass.READ, values)
    assert info.value.path == path
    assert next(p for p in list_policies(admin) if p.sla_class == "fast" and p.action_class == "read").step_s == 5
