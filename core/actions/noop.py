"""``noop``: does nothing and returns its params (diagnostics, like StackStorm's core.noop)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

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
