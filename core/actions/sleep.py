"""``sleep``: waits ``seconds`` (diagnostics: timeouts, cancellation, locks)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from core.actions.context import ActionResult, StepContext
from core.actions.registry import ActionType, register
from db.enums import ActionClass


class SleepParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seconds: float = Field(ge=0, le=86400)


@register
class Sleep(ActionType):
    name = "sleep"
    params_model = SleepParams
    default_class = ActionClass.READ
    idempotent = True

    @classmethod
    def estimate_s(cls, params: BaseModel) -> float:
        assert isinstance(params, SleepParams)
        return params.seconds

    def run(self, ctx: StepContext) -> ActionResult:
        seconds = float(ctx.params["seconds"])
        budget = min(seconds, ctx.remaining_s())
        # Wake on stop (cancel, shutdown) or when the sleep or the step's deadline is over.
        if ctx.stop.wait(budget) or budget < seconds:
            return ActionResult(ok=False, stopped=True, error=f"interrupted after at most {budget:.1f}s")
        ctx.output.write(f"slept {seconds:g}s")
        return ActionResult(ok=True)

    def dry_run(self, ctx: StepContext) -> ActionResult:
        ctx.output.write(f"would sleep {float(ctx.params['seconds']):g}s")
        return ActionResult(ok=True)
