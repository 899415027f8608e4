"""Dry-run descriptions never show a resolved secret, whatever quotes it holds (issue 13 item 7).

Each action's ``dry_run`` used to quote (shlex, repr) the resolved values and let the output sink mask the
finished line; the masker matches the raw value, so ``ab'c`` quoted as ``'ab'"'"'c'`` went through.
"""

from __future__ import annotations

import threading
import time
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel, ConfigDict

from core.actions.automation import Automation
from core.actions.context import OutputSink, StepContext
from core.actions.registry import ActionType
from core.actions.shell import Shell
from core.actions.ssh import Ssh
from core.schemas import AssetView
from db.settings import get_settings
from tests.maskers import tracked_masker

# Quotes of both kinds, a backslash and a space: every quoting scheme has to escape something here.
SECRET = "Zq9'Xk \"Wm\\Tp"
FRAGMENTS = ("Zq9", "Xk", "Wm", "Tp")
BALANCED = "Rv7'Jh'Lu"  # shlex.split turns it into Rv7JhLu: a string command must be masked before the split


def context(params: dict[str, Any], *, connection: str = "local", host: str | None = None) -> StepContext:
    masker = tracked_masker(SECRET, BALANCED)
    asset = AssetView(
        id="a1",
        name="box",
        connection=connection,
        host=host,
        port=22 if host else None,
        base_url=None,
        tags=[],
        credential_ref=None,
        has_known_host_key=True,
    )
    return StepContext(
        execution_id="e1",
        step_index=0,
        params=params,
        asset=asset,
        deadline=time.monotonic() + 5,
        stop=threading.Event(),
        output=OutputSink(masker),
        masker=masker,
        dry_run=True,
    )


def described(action: ActionType, ctx: StepContext) -> str:
    result = action.dry_run(ctx)
    text = ctx.output.text() + (result.error or "")
    for secret in (SECRET, BALANCED):
        for fragment in (*FRAGMENTS, "Rv7", "Jh", "Lu"):
            if fragment in secret:
                assert fragment not in text, f"{fragment!r} of a secret in {text!r}"
    return text


@pytest.mark.parametrize(
    "params",
    [
        {"command": ["mysql", f"--password={SECRET}", "-e", "select 1"]},
        {"command": ["login", SECRET], "shell": True},
        {"command": f"login --user x --key {BALANCED}"},
        {"command": f"echo {BALANCED} | sha1sum", "shell": True},
        {"command": ["ls"], "cwd": f"/srv/{SECRET}"},
    ],
    ids=["argv", "argv-shell", "string", "string-shell", "cwd"],
)
def test_shell_dry_run_masks_before_quoting(params: dict[str, Any]) -> None:
    """shell: the argv and cwd are masked, then quoted; the command's shape is still shown."""
    text = described(Shell(), context(params))
    assert text.startswith("would run ") and "***" in text


@pytest.mark.parametrize(
    "params",
    [
        {"username": "deploy", "command": ["mysql", f"--password={SECRET}"]},
        {"username": "deploy", "command": f"login {BALANCED}"},
        {"username": "deploy", "command": "ls", "cwd": f"/srv/{SECRET}"},
    ],
    ids=["argv", "string", "cwd"],
)
def test_ssh_dry_run_masks_before_quoting(params: dict[str, Any]) -> None:
    """ssh: the remote command line is built from masked values."""
    text = described(Ssh(), context(params, connection="ssh", host="127.0.0.1"))
    assert "would run over ssh as deploy@127.0.0.1:22" in text and "***" in text


def test_automation_dry_run_masks_before_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    """automation: the command is masked before it is repr'd (repr escapes a quote when both kinds occur)."""
    monkeypatch.setenv("OPSC_AUTOMATION_URL", "http://automation.invalid")
    get_settings.cache_clear()
    try:
        text = described(Automation(), context({"command": f"login {SECRET}"}))
    finally:
        monkeypatch.delenv("OPSC_AUTOMATION_URL")
        get_settings.cache_clear()
    assert "would POST http://automation.invalid/execute" in text and "***" in text


class _Plugin(ActionType):
    """A plugin without its own dry_run: the default describes the params."""

    class Params(BaseModel):
        model_config = ConfigDict(extra="allow")

    name: ClassVar[str] = "test-plugin"
    params_model: ClassVar[type[BaseModel]] = Params


def test_the_default_dry_run_masks_before_repr() -> None:
    """The registry's default dry_run (plugins) masks every string of the params, nested ones too."""
    text = described(_Plugin(), context({"login": {"secret": [SECRET]}, "key": BALANCED}))
    assert "would run test-plugin on box with" in text and "***" in text


def test_shell_dry_run_shows_stdin_masked() -> None:
    """``sh`` reading a script from stdin: the dry run shows the script (masked), not only ``would run sh``."""
    text = described(Shell(), context({"command": ["sh"], "stdin": f"rm -rf /srv\necho {SECRET}\n"}))
    assert 'with stdin "rm -rf /srv\\necho ***\\n"' in text and SECRET not in text
