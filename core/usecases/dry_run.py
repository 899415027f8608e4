"""A plan's dry run from the Submit page: each step's action says what it would do, touching nothing.

No execution is created and no secret is revealed: ``{{ secret:NAME }}`` references are shown masked
and the asset's credential is not fetched. (A tenant in ``dry_run`` mode goes further: its executions run
through approvals, locks and timeouts and call the same ``dry_run`` hooks; see core/engine/steps.py.)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

from core.actions import registry
from core.actions.context import OutputSink, StepContext
from core.errors import InvalidInput
from core.identity import rbac
from core.identity.rbac import Permission
from core.inventory.assets import asset_view, assets_by_name
from core.plans import parse_plan
from core.safety.credentials import substitute_refs
from core.safety.masking import Masker
from core.schemas import AssetView, DryRunStep, Principal
from core.transactions import session_scope
from db.settings import get_settings

MASKED = "***"


def dry_run_plan(principal: Principal, plan: str | bytes | Mapping[str, Any]) -> list[DryRunStep]:
    """Describe every step of ``plan`` as its action's ``dry_run`` would, in order.

    Raises:
        InvalidInput: the plan does not validate, or names an asset the tenant lacks.
    """
    settings = get_settings()
    parsed = parse_plan(plan, max_steps=settings.max_plan_steps, max_bytes=settings.max_plan_bytes)
    with session_scope() as session:
        rbac.require(session, principal, Permission.READ)
        assets = assets_by_name(session, principal.tenant_id, (s.spec.target for s in parsed.steps))
        views = {name: asset_view(asset) for name, asset in assets.items()}
    missing = [
        (f"steps[{s.index}].target", f"unknown asset {s.spec.target!r} in tenant {principal.tenant}")
        for s in parsed.steps
        if s.spec.target not in views
    ]
    if missing:
        raise InvalidInput(missing)
    return [
        _describe(step.index, step.spec.name, step.spec.action, views[step.spec.target], step.spec.params)
        for step in parsed.steps
    ]


def _describe(index: int, name: str, action: str, asset: AssetView, params: dict[str, Any]) -> DryRunStep:
    masker = Masker()
    sink = OutputSink(masker)
    ctx = StepContext(
        execution_id="dry-run",
        step_index=index,
        params=substitute_refs(params, lambda _name: MASKED),
        asset=asset,
        deadline=time.monotonic() + 5,
        stop=threading.Event(),
        output=sink,
        masker=masker,
        dry_run=True,
    )
    runner = registry.get_action(action)
    assert runner is not None  # parse_plan refuses unknown actions
    try:
        result = runner().dry_run(ctx)
    except Exception as exc:  # noqa: BLE001  a runner's bug is this step's error, not the page's
        error: str | None = f"{type(exc).__name__}: {exc}"
        ok = False
    else:
        error, ok = result.error, result.ok
    finally:
        masker.close()
    return DryRunStep(
        index=index, name=name, action=action, target=asset.name, ok=ok, description=sink.text(), error=error
    )
