"""``shell``: a command on a ``local`` asset, run as argv without a shell unless ``shell: true``.

The child runs confined by core/safety/runner.py (as the runner user, or in a sandbox; never with the
worker's rights, environment or file descriptors) in its own session, in a unit that dies with the
worker; the group is recorded on the step row (``ctx.started_process``) for the sweeper. On stop or
deadline the whole group gets SIGTERM, then SIGKILL after a grace period; when the command ends, the unit
kills what it left behind, so no grandchild outlives the step.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.actions.context import ActionResult, StepContext
from core.actions.registry import ActionType, register
from core.errors import SafetyRefused
from core.safety import runner
from db.enums import ActionClass, Connection

if TYPE_CHECKING:
    from core.risk import Trust

KILL_GRACE_S = 2.0


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


def argv_for(params: ShellParams) -> list[str]:
    """The exact argv: the list as given, a string split with shlex, or ``/bin/sh -c`` only if ``shell``."""
    if params.shell:
        command = params.command if isinstance(params.command, str) else shlex.join(params.command)
        return ["/bin/sh", "-c", command]
    return list(params.command) if isinstance(params.command, list) else shlex.split(params.command)


@register
class Shell(ActionType):
    name = "shell"
    params_model = ShellParams
    # DESIGN §13: the server decides risk. Any argv can change things (`rm -f`, `sh -c`, `python3 -c`), so a
    # command is `modify` unless an admin vouched for it (declared_read below).
    default_class = ActionClass.MODIFY
    idempotent = False
    default_estimate_s = 5.0
    connections = frozenset({Connection.LOCAL})
    command_param = "command"

    @classmethod
    def shell_reads(cls, params: Mapping[str, Any]) -> bool:
        """Only with ``shell`` (any value but a literal false, so an input in ``shell`` counts as true)."""
        return params.get("shell", False) is not False

    @classmethod
    def declared_read(cls, params: BaseModel, trust: Trust, *, published: bool) -> bool:
        """``read`` when the exact argv starts with a prefix an admin declared read-only (word by word, never a
        joined string), or the step is one of a published runbook. ``shell: true`` never: a shell interprets
        its input (pipes, redirects, `;`). A step that sets ``env`` is vouched for by publication only: PATH or
        LD_PRELOAD would change what a declared prefix runs.
        """
        assert isinstance(params, ShellParams)
        if params.shell:
            return False
        if published:
            return True
        return not params.env and trust.read_only_argv(argv_for(params))

    def run(self, ctx: StepContext) -> ActionResult:
        params = ShellParams.model_validate(ctx.params)
        try:
            # OPSC_TARGET: the asset the step runs for (a fan-out's steps share their params, not their target).
            env = params.env | {"OPSC_TARGET": ctx.asset.name}
            with runner.confined_popen(
                argv_for(params), env=env, cwd=params.cwd, stdin_pipe=params.stdin is not None
            ) as proc:
                ctx.started_process(proc.pid)  # it leads its own group
                return _follow(proc, params, ctx)
        except SafetyRefused as exc:
            return ActionResult(ok=False, error=exc.message)
        except OSError as exc:
            what = f" ({exc.filename})" if exc.filename else ""
            return ActionResult(ok=False, error=f"cannot start command: {exc.strerror or exc}{what}")

    def dry_run(self, ctx: StepContext) -> ActionResult:
        # Masked before it is split and quoted (a string is masked whole, so a secret holding quotes or spaces
        # is one *** however shlex would have cut it); env values are never shown, only their names.
        params = ShellParams.model_validate(ctx.params)
        shown = params.model_copy(update={"command": ctx.shown(params.command), "cwd": ctx.shown(params.cwd)})
        where = f" in {shown.cwd}" if shown.cwd else ""
        env = f" with env {sorted(params.env)}" if params.env else ""
        # What goes in on stdin is part of the command (``sh`` reading a script): shown, masked, on one line.
        stdin = f" with stdin {json.dumps(ctx.shown(params.stdin))}" if params.stdin is not None else ""
        ctx.output.write(f"would run {shlex.join(argv_for(shown))} on {ctx.asset.name}{where}{env}{stdin}")
        return ActionResult(ok=True)


def _follow(proc: subprocess.Popen[bytes], params: ShellParams, ctx: StepContext) -> ActionResult:
    """Stream the output until the command ends, or kill its group on a stop or the deadline."""
    reader = threading.Thread(target=_pump, args=(proc, ctx), daemon=True)
    reader.start()
    if params.stdin is not None:
        threading.Thread(target=_feed, args=(proc, params.stdin), daemon=True).start()
    while proc.poll() is None:
        if ctx.should_stop():
            _kill_group(proc)
            reader.join(timeout=1)
            why = "cancelled" if ctx.stop.is_set() else "timed out"
            return ActionResult(ok=False, stopped=True, exit_code=proc.returncode, error=f"command {why}")
        time.sleep(0.05)
    reader.join(timeout=1)
    if proc.returncode != 0:
        return ActionResult(ok=False, exit_code=proc.returncode, error=f"exit code {proc.returncode}")
    return ActionResult(ok=True, exit_code=0)


def _pump(proc: subprocess.Popen[bytes], ctx: StepContext) -> None:
    assert proc.stdout is not None
    for line in iter(proc.stdout.readline, b""):
        ctx.output.write(line.decode("utf-8", errors="replace"))


def _feed(proc: subprocess.Popen[bytes], data: str) -> None:
    assert proc.stdin is not None
    try:
        proc.stdin.write(data.encode())
        proc.stdin.close()
    except BrokenPipeError:
        pass  # the command exited without reading all of its input: its exit code tells


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group, SIGKILL it after the grace period."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=KILL_GRACE_S)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # the leader may be gone while children linger
    proc.wait()
