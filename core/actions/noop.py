"""``noop``: does nothing and returns its params (diagnostics, like StackStorm's core.noop)."""

from __future__ import annotations

import json

from pydantic import BaseModel, ConfigDict

from core.actions.context import ActionResult, StepContext
from core.actions.registry import ActionType, register
from db.enums import ActionClass


class NoopParams(BaseModel):
    model_config = ConfigDict(extra="allow")


@register
class Noop(ActionType):
    name = "noop"
    params_model = NoopParams
    default_class = ActionClass.READ
    idempotent = True
    default_estimate_s = 0.1

    def run(self, ctx: StepContext) -> ActionResult:
        if ctx.params:
            ctx.output.write(json.dumps(ctx.params, sort_keys=True, default=str))
        return ActionResult(ok=True, data=dict(ctx.params))

    def dry_run(self, ctx: StepContext) -> ActionResult:
        ctx.output.write("would do nothing (noop)")
        return ActionResult(ok=True)
