"""The asyncssh side of the ``ssh`` action (core/actions/ssh.py): connect with the asset's host key and
credential, run the command, stream its output, and stop it on cancel or timeout.

Kept apart so that asyncssh (about 23 MB) is imported only by a process that runs an ssh step.
"""

from __future__ import annotations

import asyncio
import codecs
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import asyncssh

from core.actions.context import ActionResult, OutputSink, StepContext
from core.actions.ssh import Refused, SshParams, Target, safe, sent_command, skips_host_key

CONNECT_TIMEOUT_S = 10.0
POLL_S = 0.05
TERM_GRACE_S = 0.5  # after SIGTERM, how long the remote command may take to exit before the channel closes
CHUNK_BYTES = 64 * 1024
LINE_LIMIT = 64 * 1024  # a "line" longer than this is written as it is: the buffer stays bounded


def run(ctx: StepContext, params: SshParams, target: Target) -> ActionResult:
    """Run the step's command on ``target`` (checks of ssh.py already passed)."""
    try:
        options = _options(ctx, params, target)
    except Refused as exc:
        return ActionResult(ok=False, error=safe(ctx, str(exc)))
    return _in_private_loop(_session(ctx, params, target, options))


def _options(ctx: StepContext, params: SshParams, target: Target) -> dict[str, Any]:
    """asyncssh.connect keyword arguments: host key policy and credential, and nothing from ``~/.ssh``."""
    assert ctx.credential is not None  # _precheck
    options: dict[str, Any] = {
        "port": target.port,
        "username": target.username,
        "known_hosts": None if skips_host_key(ctx) else ([*_trusted_keys(ctx)], [], []),
        "config": None,
        "agent_path": None,
        "client_keys": None,
        "password": None,
    }
    if ctx.credential.lstrip().startswith("-----BEGIN"):
        try:
            options["client_keys"] = [asyncssh.import_private_key(ctx.credential)]
        except (asyncssh.KeyImportError, ValueError) as exc:
            raise Refused(f"the credential of {ctx.asset.name} is not a usable private key: {exc}") from None
    else:
        options["password"] = ctx.credential
    return options


def _trusted_keys(ctx: StepContext) -> list[asyncssh.SSHKey]:
    """The asset's known host key(s): public key lines, or ``ssh-keyscan``/known_hosts lines with a host first."""
    text = ctx.asset.known_host_key or ""
    keys: list[asyncssh.SSHKey] = []
    for line in (raw.strip() for raw in text.splitlines()):
        if not line or line.startswith("#"):
            continue
        try:
            keys.append(asyncssh.import_public_key(line))
        except asyncssh.KeyImportError:
            try:
                keys.append(asyncssh.import_public_key(line.split(None, 1)[-1]))
            except asyncssh.KeyImportError:
                raise Refused(
                    f"asset {ctx.asset.name} has an invalid known host key "
                    "(expected an OpenSSH public key line like `ssh-ed25519 AAAA…`)"
                ) from None
    if not keys:
        raise Refused(f"asset {ctx.asset.name} has no known host key; add one (labs only: skip_host_key on the asset)")
    return keys


def _in_private_loop(coro: Any) -> ActionResult:
    """Run ``coro`` in an event loop of its own (in a helper thread if this thread already runs one)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        result: ActionResult = asyncio.run(coro)
        return result
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="opsc-ssh") as pool:
        return pool.submit(asyncio.run, coro).result()  # type: ignore[no-any-return]


async def _session(ctx: StepContext, params: SshParams, target: Target, options: dict[str, Any]) -> ActionResult:
    connect_timeout_s = max(0.1, min(ctx.remaining_s(), CONNECT_TIMEOUT_S))
    connecting = asyncio.ensure_future(asyncssh.connect(target.host, connect_timeout=connect_timeout_s, **options))
    if not await _wait_or_stop(ctx, connecting):
        connecting.cancel()
        return _stopped(ctx)
    try:
        conn = connecting.result()
    except (OSError, asyncssh.Error, TimeoutError) as exc:
        reason = _reason(exc, target, options, connect_timeout_s)
        return ActionResult(ok=False, error=safe(ctx, f"ssh to {target} failed: {reason}"))
    try:
        return await _command(ctx, params, target, conn)
    finally:
        conn.close()
        await conn.wait_closed()


async def _command(
    ctx: StepContext, params: SshParams, target: Target, conn: asyncssh.SSHClientConnection
) -> ActionResult:
    try:
        process = await conn.create_process(sent_command(params), env=params.env or (), encoding=None)
    except (OSError, asyncssh.Error) as exc:
        return ActionResult(ok=False, error=safe(ctx, f"ssh to {target}: cannot start the command: {exc}"))
    if params.stdin is not None:
        process.stdin.write(params.stdin.encode())
        process.stdin.write_eof()
    # Without stdin the channel's stays open: the remote watchdog ends the command when it closes (ssh.py).
    finished = asyncio.ensure_future(_collect(process, ctx.output))
    if not await _wait_or_stop(ctx, finished):
        await _terminate(process, finished)
        return _stopped(ctx)
    return _outcome(process)


async def _wait_or_stop(ctx: StepContext, task: asyncio.Future[Any]) -> bool:
    """Wait for ``task``; False as soon as the step must stop (the caller cleans up)."""
    while not task.done():
        if ctx.should_stop():
            return False
        await asyncio.wait({task}, timeout=POLL_S)
    return True


async def _collect(process: asyncssh.SSHClientProcess[bytes], sink: OutputSink) -> None:
    """Stream stdout and stderr into the sink until both end, then wait for the channel to close."""
    await asyncio.gather(_pump(process.stdout, sink), _pump(process.stderr, sink))
    await process.wait_closed()


async def _pump(stream: asyncssh.SSHReader[bytes], sink: OutputSink) -> None:
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # a chunk may split a character
    pending = ""
    while chunk := await stream.read(CHUNK_BYTES):
        # NUL is valid UTF-8 but PostgreSQL text refuses it: binary output must not fail the step's commit.
        text = pending + decoder.decode(chunk).replace("\x00", "\ufffd")
        # Whole lines only, so a secret is never split across two writes and missed by the masker.
        cut = text.rfind("\n") + 1
        if not cut and len(text) >= LINE_LIMIT:
            cut = len(text)
        if cut:
            sink.write(text[:cut])
        pending = text[cut:]
    pending += decoder.decode(b"", final=True).replace("\x00", "\ufffd")
    if pending:
        sink.write(pending)


async def _terminate(process: asyncssh.SSHClientProcess[bytes], finished: asyncio.Future[None]) -> None:
    """SIGTERM the remote command, give it a moment to exit, then close the channel (DESIGN §7)."""
    try:
        process.send_signal("TERM")
    except OSError:
        pass  # the channel is already closed: nothing left to signal
    else:
        await asyncio.wait({finished}, timeout=TERM_GRACE_S)
    finished.cancel()
    process.close()


def _outcome(process: asyncssh.SSHClientProcess[bytes]) -> ActionResult:
    status = process.exit_status
    if status == 0:
        return ActionResult(ok=True, exit_code=0)
    if status is not None and status >= 0:
        return ActionResult(ok=False, exit_code=status, error=f"exit code {status}")
    if process.exit_signal:
        return ActionResult(ok=False, error=f"the remote command was killed by signal {process.exit_signal[0]}")
    return ActionResult(ok=False, error="the connection closed before the remote command reported an exit status")


def _stopped(ctx: StepContext) -> ActionResult:
    return ActionResult(ok=False, stopped=True, error="command cancelled" if ctx.stop.is_set() else "command timed out")


def _reason(exc: BaseException, target: Target, options: dict[str, Any], timeout_s: float) -> str:
    """A short, credential-free reason for a failed connection."""
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        return "host key mismatch: the server's key is not the asset's known host key"
    if isinstance(exc, asyncssh.PermissionDenied):
        how = "private key" if options["client_keys"] else "password"
        return f"authentication failed for user {target.username} ({how})"
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout_s:.1f}s"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, asyncssh.Error):
        return exc.reason or type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
