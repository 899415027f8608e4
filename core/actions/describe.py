"""What one step would do, in its action's own words (``dry_run``), touching nothing and revealing no secret.

The one describer: the Submit page's dry run (core/usecases/dry_run.py) and every approval surface
(core/reads/plan_view.py) call it. ``{{ secret:NAME }}`` references are replaced by ``***`` before the action
sees them, and the asset's credential is never fetched.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from core.actions import registry
from core.actions.context import OutputSink, StepContext
from core.safety.credentials import substitute_refs
from core.safety.masking import Masker
from core.schemas import AssetView, DryRunStep

MASKED = "***"
DESCRIBE_BUDGET_S = 5


def describe_step(index: int, name: str, action: str, asset: AssetView, params: dict[str, Any]) -> DryRunStep:
    """The step's dry run: ``ok`` and the description its action gives, or the error it raised."""
    masker = Masker()
    sink = OutputSink(masker)
    ctx = StepContext(
        execution_id="dry-run",
        step_index=index,
        params=substitute_refs(params, lambda _name: MASKED),
        asset=asset,
        deadline=time.monotonic() + DESCRIBE_BUDGET_S,
        stop=threading.Event(),
        output=sink,
        masker=masker,
        dry_run=True,
    )
    runner = registry.get_action(action)
    if runner is None:  # parse_plan refuses unknown actions; a stored plan may name one no longer installed
        return DryRunStep(
            index=index, name=name, action=action, target=asset.name, ok=False, description="", error="unknown action"
        )
    try:
        result = runner().dry_run(ctx)
    except Exception as exc:  # noqa: BLE001  a runner's bug is this step's error, not the caller's
        error: str | None = f"{type(exc).__name__}: {exc}"
        ok = False
    else:
        error, ok = result.error, result.ok
    finally:
        masker.close()
    return DryRunStep(
        index=index, name=name, action=action, target=asset.name, ok=ok, description=sink.text(), error=error
    )
