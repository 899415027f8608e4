"""``shell``: a command on a ``local`` asset, run as argv without a shell unless ``shell: true``."""

from __future__ import annotations

import shlex

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.actions.registry import ActionType, register
from db.enums import ActionClass, Connection


class ShellParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    command: str | list[str]
    shell: bool = False
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    stdin: str | None = None

    @field_validator("command")
    @classmethod
    def _not_empty(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, str):
            if not value.strip():
                raise ValueError("must not be empty")
            if "\x00" in value:
                raise ValueError("must not contain NUL")
            shlex.split(value)  # unbalanced quotes fail here, at submit, not at run time
        else:
            if not value or not all(part for part in value):
                raise ValueError("must be a non-empty list of non-empty strings")
            if any("\x00" in part for part in value):
                raise ValueError("must not contain NUL")
        return value


@register
class Shell(ActionType):
    name = "shell"
    params_model = ShellParams
    # DESIGN §5's example: a `systemctl status` step is a read. The plan raises the class for changes.
    default_class = ActionClass.READ
    idempotent = False
    default_estimate_s = 5.0
    connections = frozenset({Connection.LOCAL})

    @classmethod
    def action_class(cls, params: BaseModel) -> ActionClass:
        # A shell interprets its input (pipes, redirects, `;`): treat it as at least `modify`.
        assert isinstance(params, ShellParams)
        return ActionClass.MODIFY if params.shell else cls.default_class
