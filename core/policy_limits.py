"""The numbers of the timeout policies (DESIGN §6): the 9 rows ``init`` seeds, the shape of a row's numbers,
and the limit a step runs with under a row.

Apart from core/policies.py (lookup, validation, admin edits, all through a Session) because plans judge a
plan by these numbers before any row is read (core/plans.py), and reads show a step's limit
(core/reads/plan_review.py): neither may import SQLAlchemy or the tables (issue 15).
"""

from __future__ import annotations

from typing import NamedTuple

from db.enums import ActionClass, SlaClass


class PolicyValues(NamedTuple):
    step_s: int
    execution_s: int
    lease_s: int
    approval_s: int
    max_attempts: int


DEFAULT_POLICIES: dict[tuple[SlaClass, ActionClass], PolicyValues] = {
    (SlaClass.FAST, ActionClass.READ): PolicyValues(5, 10, 15, 300, 3),
    (SlaClass.FAST, ActionClass.MODIFY): PolicyValues(8, 15, 20, 600, 3),
    (SlaClass.FAST, ActionClass.DEPLOY): PolicyValues(10, 20, 30, 900, 3),
    (SlaClass.MEDIUM, ActionClass.READ): PolicyValues(15, 30, 45, 600, 5),
    (SlaClass.MEDIUM, ActionClass.MODIFY): PolicyValues(20, 45, 60, 900, 5),
    (SlaClass.MEDIUM, ActionClass.DEPLOY): PolicyValues(30, 60, 90, 1800, 5),
    (SlaClass.LONG, ActionClass.READ): PolicyValues(60, 300, 360, 1800, 3),
    (SlaClass.LONG, ActionClass.MODIFY): PolicyValues(120, 600, 720, 3600, 3),
    (SlaClass.LONG, ActionClass.DEPLOY): PolicyValues(300, 1800, 2160, 7200, 3),
}


def effective_step_s(declared: int | None, cap_s: int) -> int:
    """A step's timeout as it runs: the declared one, never above the policy's step limit (core/engine/claim.py)."""
    return min(declared or cap_s, cap_s)
