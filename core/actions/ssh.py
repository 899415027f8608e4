"""``ssh``: one command on an ``ssh`` asset, with asyncssh (DESIGN §8).

- The command is a list (joined with ``shlex.join``, so each item reaches the remote shell as one word) or a
  string, sent as-is. Either way sshd hands it to the remote user's shell, so both forms are ``modify`` by
  default: unlike ``shell``'s argv form there is no way to run a remote command without a shell.
- The host key is always checked against the asset's ``known_host_key``; without one the step refuses to
  connect unless an admin set ``skip_host_key`` on the asset (labs). No plan parameter can turn the check
  off or override the key (DESIGN §13). The asset's credential is a private key (``-----BEGIN``…) or a
  password; nothing from ``~/.ssh`` (config, keys, agent) is used.
- ``env`` goes as SSH environment requests, not on the command line (where ``ps`` would show secret
  values); OpenSSH servers drop names their ``AcceptEnv`` does not list.
- Output (stdout and stderr, merged line by line) streams into the step output in chunks, never whole;
  undecodable bytes and NUL become U+FFFD.
- Cancel and timeouts: the client runs in a private event loop polling ``ctx.should_stop()``; on stop the
  remote process gets SIGTERM, then the channel and the connection are closed.
- No orphans: a command without ``stdin`` runs under a remote watchdog (``sent_command``) that ends the
  session's process group when the channel closes, so a cancel, a timeout or a dead worker does not leave it
  running on the host (sshd would, without a pty).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.actions.context import ActionResult, StepContext
from core.actions.registry import ActionType, register
from db.enums import ActionClass, Connection

DEFAULT_PORT = 22
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class SshParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    command: str | list[str]
    username: str = Field(min_length=1, max_length=256)
    env: dict[str, str] = Field(default_factory=dict)
    stdin: str | None = None
    cwd: str | None = Field(default=None, min_length=1)

    @field_validator("command")
    @classmethod
    def _command(cls, value: str | list[str]) -> str | list[str]:
        parts = [value] if isinstance(value, str) else value
        if not parts or not all(part.strip() for part in parts):
            raise ValueError("must be a non-empty string or a non-empty list of non-empty strings")
        if any("\x00" in part for part in parts):
            raise ValueError("must not contain NUL")
        if isinstance(value, str):
            shlex.split(value)  # unbalanced quotes fail here, at submit, not on the remote host
        return value

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        bad = sorted(name for name in value if not _ENV_NAME.match(name))
        if bad:
            raise ValueError(f"invalid variable names {bad}")
        return value


def skips_host_key(ctx: StepContext) -> bool:
    """True only for an asset an admin marked ``skip_host_key`` that has no known key (a known key is checked)."""
    return ctx.asset.skip_host_key and not ctx.asset.has_known_host_key


def remote_command(params: SshParams) -> str:
    """The step's command line (a list is quoted item by item, never concatenated), as ``dry_run`` shows it."""
    command = shlex.join(params.command) if isinstance(params.command, list) else params.command
    return f"cd {shlex.quote(params.cwd)} && {command}" if params.cwd else command


# Without a pty, sshd does not end a command whose channel closed: a `sleep 3600` outlives a cancelled step
# or a dead worker. So the command runs in the background of a small sh whose watchdog reads the channel's
# stdin, which the client keeps open (sending nothing) until it is done: when the channel or the connection
# goes, sshd closes that pipe and the watchdog ends the session's process group: SIGTERM, SIGKILL 2 s later.
# The group is `-$$`, the wrapper's own, which exists only if it leads one (sshd makes each session its own
# group): under a server that does not, the kill finds no such group and hits nothing else. A pty would end
# the command with SIGHUP, but it turns stdin into a terminal and makes pagers (git, less) wait for a key.
_WATCHDOG = (
    "exec 3<&0; "  # a background list's stdin is /dev/null unless redirected: keep the channel's as fd 3
    '( eval "$1" ) </dev/null 3<&- & c=$!; '
    "( trap '' TERM; cat >/dev/null; kill -s TERM -- -$$; sleep 2; kill -s KILL -- -$$ ) <&3 >/dev/null 2>&1 & "
    'exec 3<&-; wait "$c"'
)


def sent_command(params: SshParams) -> str:
    """The exact command line sent to the server: the step's command, under the watchdog unless the step
    feeds it stdin (then stdin is the command's and ends with EOF: a closed channel ends it only when it
    next reads or writes)."""
    command = remote_command(params)
    if params.stdin is not None:
        return command
    return f"exec sh -c {shlex.quote(_WATCHDOG)} opsc-step {shlex.quote(command)}"


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    username: str

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


class Refused(Exception):
    """The step cannot connect as configured (its message is the step error)."""


@register
class Ssh(ActionType):
    name = "ssh"
    params_model = SshParams
    # Both command forms pass through the remote shell (see the module docstring): never a plain read.
    default_class = ActionClass.MODIFY
    idempotent = False
    default_estimate_s = 5.0
    connections = frozenset({Connection.SSH})
    command_param = "command"  # a string is sent to the remote shell as is (``shell_reads``: always)

    def run(self, ctx: StepContext) -> ActionResult:
        params = SshParams.model_validate(ctx.params)
        try:
            target = _target(ctx, params)
            _precheck(ctx, params)
        except Refused as exc:
            return ActionResult(ok=False, error=safe(ctx, str(exc)))
        # asyncssh costs ~23 MB of memory: only a process that runs an ssh step loads it.
        from core.actions import ssh_session

        return ssh_session.run(ctx, params, target)

    def dry_run(self, ctx: StepContext) -> ActionResult:
        params = SshParams.model_validate(ctx.params)
        try:
            target = _target(ctx, params)
        except Refused as exc:
            return ActionResult(ok=False, error=str(exc))
        # Masked before remote_command quotes it: a quoted secret is no longer what the masker looks for.
        shown = params.model_copy(update={"command": ctx.shown(params.command), "cwd": ctx.shown(params.cwd)})
        line = f"would run over ssh as {target.username}@{target}: {remote_command(shown)}"
        if params.env:
            line += f" with env {sorted(params.env)}"
        if params.stdin is not None:
            line += f" with {len(params.stdin.encode())} bytes on stdin"
        if skips_host_key(ctx):
            line += f" (host key NOT checked: {ctx.asset.name} has skip_host_key)"
        ctx.output.write(safe(ctx, line))
        try:
            _precheck(ctx, params)
        except Refused as exc:  # the live run would be refused before connecting: say so now
            return ActionResult(ok=False, error=safe(ctx, str(exc)))
        return ActionResult(ok=True)


def _target(ctx: StepContext, params: SshParams) -> Target:
    if not ctx.asset.host:
        raise Refused(f"asset {ctx.asset.name} has no host")
    return Target(ctx.asset.host, ctx.asset.port or DEFAULT_PORT, params.username)


def _precheck(ctx: StepContext, params: SshParams) -> None:
    """What must hold before any connection: a host key to check against (or the explicit opt-out), a credential."""
    if not ctx.asset.has_known_host_key and not ctx.asset.skip_host_key:
        raise Refused(
            f"asset {ctx.asset.name} has no known host key; add one with "
            f"`opsconductor assets add {ctx.asset.name} --connection ssh ... --known-host-key '<ssh-ed25519 AAAA…>'` "
            "(labs only: --skip-host-key)"
        )
    if not ctx.credential:
        raise Refused(
            f"asset {ctx.asset.name} has no credential: set its credential_ref to a secret holding "
            "a password or a private key"
        )


def safe(ctx: StepContext, text: str) -> str:
    """``text`` masked: errors are persisted too, and must never carry the credential."""
    return ctx.masker.mask(text) or text
