"""A plan's dry run from the Submit page: each step's action says what it would do, touching nothing.

No execution is created and no secret is revealed: ``{{ secret:NAME }}`` references are shown masked
and the asset's credential is not fetched. (A tenant in ``dry_run`` mode goes further: its executions run
through approvals, locks and timeouts and call the same ``dry_run`` hooks; see core/engine/steps.py.)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core import plan_fanout
from core.actions.describe import MASKED, describe_step
from core.errors import InvalidInput
from core.identity import rbac
from core.identity.permissions import Permission
from core.inventory.asset_view import asset_view
from core.inventory.assets import assets_by_name, list_assets
from core.plans import parse_plan
from core.schemas import DryRunStep, Principal
from core.transactions import session_scope
from core.usecases.intake import asset_names
from db.settings import get_settings

__all__ = ["MASKED", "dry_run_plan"]


def dry_run_plan(
    principal: Principal, plan: str | bytes | Mapping[str, Any], *, inputs: Mapping[str, Any] | None = None
) -> list[DryRunStep]:
    """Describe every step of ``plan`` (its declared inputs bound to ``inputs``) as its action's ``dry_run``
    would, in order.

    Raises:
        InvalidInput: the plan does not validate, or names an asset the tenant lacks.
    """
    settings = get_settings()
    parsed = parse_plan(plan, max_steps=settings.max_plan_steps, max_bytes=settings.max_plan_bytes, inputs=inputs)
    with session_scope() as session:
        rbac.require(session, principal, Permission.READ)
        if plan_fanout.needs_tags(parsed):
            views = {view.name: view for view in list_assets(session, principal.tenant_id)}
        else:
            names = asset_names(parsed)
            views = {name: asset_view(a) for name, a in assets_by_name(session, principal.tenant_id, names).items()}
    inventory = {name: frozenset(view.tags) for name, view in views.items()}
    parsed = plan_fanout.expand(parsed, inventory, tenant=principal.tenant, approval_targets=0)
    missing = [
        (f"{s.path}.target", f"unknown asset {s.spec.asset!r} in tenant {principal.tenant}")
        for s in parsed.all_steps
        if s.spec.asset not in views
    ]
    missing += [
        (path, f"unknown asset {name!r} in tenant {principal.tenant}")
        for path, name in parsed.input_assets
        if name not in views
    ]
    if missing:
        raise InvalidInput(missing)
    return [
        describe_step(step.index, step.spec.name, step.spec.action, views[step.spec.asset], step.spec.params)
        for step in parsed.all_steps
    ]
