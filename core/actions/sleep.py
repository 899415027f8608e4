"""``sleep``: waits ``seconds`` (diagnostics: timeouts, cancellation, locks)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

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
