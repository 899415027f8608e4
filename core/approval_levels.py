"""Approval levels (DESIGN §3.6, §5): the floor each action class sets, and the approvers each level needs.

Level 0 none; 1 one approver; 2 two distinct approvers; 3 two approvers and a gate before every step
(core/usecases/approvals.py). Apart from core/plans.py so that a read of an execution (how many approvals it
needs) does not import the plan parser (issue 15).
"""

from __future__ import annotations

from db.enums import ActionClass

APPROVAL_FLOOR = {ActionClass.READ: 0, ActionClass.MODIFY: 1, ActionClass.DEPLOY: 2}
# Distinct approvers each level needs; level 3 adds a gate before every step (core/usecases/approvals.py).
APPROVALS_REQUIRED = {0: 0, 1: 1, 2: 2, 3: 2}
