"""Whether an execution's rows still say what its hashed plan says (DESIGN §3.6, §13).

The hashed plan (``plan_json``) is the one source of a step's action, target, class, params and timeout; the
execution's and step rows' copies of them serve reads and indexes only. ``verified_plan`` parses the plan only
while its text matches its hash; ``execution_differences`` and ``step_differences`` name every copy that
disagrees with it. The worker refuses to run a step while any does (core/engine/claim.py); every read shows it
(core/reads/plan_review.py). Apart from core/approval_rules.py, whose seals and approver counts read the
database, because these rules are pure and the one-shot ``show`` (issue 15) must not import SQLAlchemy.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from core.plan_hash import canonical_json, plan_hash
from core.plan_phases import flat_steps
from db.enums import ActionClass

if TYPE_CHECKING:
    from core.rows import ExecutionRow, StepRow


def verified_plan(execution: ExecutionRow) -> dict[str, Any] | None:
    """The execution's plan, parsed, if the stored text still matches its hash (None: it was changed)."""
    if plan_hash(execution.plan_json) != execution.plan_hash:
        return None
    try:
        plan = json.loads(execution.plan_json)
    except ValueError:
        return None
    return plan if isinstance(plan, dict) and isinstance(plan.get("steps"), list) else None


def execution_differences(execution: ExecutionRow, plan: Mapping[str, Any]) -> list[str]:
    """The execution row's fields that disagree with its hashed plan (name, level, class, continue_on_error)."""
    found = [
        field
        for field, stored in (
            ("name", execution.name),
            ("description", execution.description),
            ("approval_level", execution.approval_level),
            ("continue_on_error", execution.continue_on_error),
        )
        if plan.get(field, None if field != "description" else "") != stored
    ]
    classes = [str(s.get("action_class")) for _phase, s in flat_steps(plan) if isinstance(s, Mapping)]
    try:
        highest = max((ActionClass(c) for c in classes), key=lambda c: c.rank).value if classes else None
    except ValueError:
        highest = None
    if classes and highest != execution.action_class:
        found.append("action_class")
    return found


def step_differences(plan_step: Any, row: StepRow) -> list[str]:
    """The step row's copies that disagree with the hashed plan's step at its index (all of them: no step)."""
    if not isinstance(plan_step, Mapping):
        return ["step"]
    params = plan_step.get("params")
    found = [
        field
        for field, stored in (
            ("name", row.name),
            ("action", row.action),
            ("target", row.target_asset_id),
            ("action_class", row.action_class),
            ("timeout_s", row.timeout_s),
        )
        if plan_step.get(field) != stored
    ]
    # Compared as canonical text: parsed JSON would call true and 1 equal.
    if not isinstance(params, Mapping) or canonical_json(params) != row.params_json:
        found.append("params")
    return found
