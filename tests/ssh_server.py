"""A real SSH server for tests: asyncssh on 127.0.0.1 (random port), in a thread with its own event loop.

It accepts one user by password or by public key, runs each received command with a local ``/bin/sh``
(tests only: the command is the client's, and that is what the tests check), and records what the
peer side saw: connections, authentication attempts, commands, environments, signals, closed channels.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
from dataclasses import dataclass, field
from typing import Any

import asyncssh

PASSWORD = "correct-horse-battery-staple"


@dataclass
class Seen:
    """What the server observed (appended from the server thread; lists are safe to read between steps)."""

    connections: int = 0
    auth: list[tuple[str, str, bool]] = field(default_factory=list)  # (username, method, accepted)
    commands: list[str] = field(default_factory=list)
    envs: list[dict[str, str]] = field(default_factory=list)
    signals: list[str] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)
    exited: list[int] = field(default_factory=list)  # pids whose process has ended (any cause)

    def clear(self) -> None:
        for name in ("auth", "commands", "envs", "signals", "pids", "exited"):
            getattr(self, name).clear()
        self.connections = 0


class _Server(asyncssh.SSHServer):
    def __init__(self, sshd: SshServer) -> None:
        self._sshd = sshd

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._sshd.seen.connections += 1

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        ok = username == self._sshd.username and password == PASSWORD
        self._sshd.seen.auth.append((username, "password", ok))
        return ok

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        ok = username == self._sshd.username and key.public_data == self._sshd.client_key.public_data
        self._sshd.seen.auth.append((username, "publickey", ok))
        return ok


class SshServer:
    """Start with ``start()``, stop with ``stop()``; ``seen`` says what happened on the server side."""

    def __init__(self, username: str = "deploy") -> None:
        self.username = username
        self.host_key = asyncssh.generate_private_key("ssh-ed25519")
        self.client_key = asyncssh.generate_private_key("ssh-ed25519")  # the one authorised client key
        self.seen = Seen()
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="test-sshd")
        self._acceptor: asyncssh.SSHAcceptor | None = None

    @property
    def known_host_key(self) -> str:
        """The server's public host key as an OpenSSH line (what an asset's known_host_key holds)."""
        return self.host_key.export_public_key().decode().strip()

    def start(self) -> SshServer:
        self._thread.start()
        self._acceptor = self._call(
            asyncssh.listen(
                "127.0.0.1",
                0,
                server_factory=lambda: _Server(self),
                server_host_keys=[self.host_key],
                process_factory=self._handle,
                encoding=None,
                login_timeout=5,
            )
        )
        self.port = self._acceptor.get_port()
        return self

    def stop(self) -> None:
        if self._acceptor is not None:
            self._acceptor.close()
            self._call(self._acceptor.wait_closed())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def _call(self, awaitable: Any) -> Any:
        async def wrapped() -> Any:
            return await awaitable  # asyncssh.listen returns an awaitable, not a coroutine

        return asyncio.run_coroutine_threadsafe(wrapped(), self._loop).result(timeout=10)

    async def _handle(self, process: asyncssh.SSHServerProcess[bytes]) -> None:
        command = process.command or ""
        self.seen.commands.append(command)
        self.seen.envs.append({str(k): str(v) for k, v in process.env.items()})
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C"} | self.seen.envs[-1]
        child = await asyncio.create_subprocess_shell(
            command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
        self.seen.pids.append(child.pid)
        side = [
            asyncio.ensure_future(self._stdin(process, child)),
            asyncio.ensure_future(_kill_when_closed(process, child)),
        ]
        with contextlib.suppress(BrokenPipeError, ConnectionError, asyncssh.Error):
            await asyncio.gather(_copy(child.stdout, process.stdout), _copy(child.stderr, process.stderr))
        status = await child.wait()
        self.seen.exited.append(child.pid)
        for task in side:
            task.cancel()
        with contextlib.suppress(OSError, asyncssh.Error):  # the client may have closed the channel already
            process.exit(status if status >= 0 else 128 - status)

    async def _stdin(self, process: asyncssh.SSHServerProcess[bytes], child: asyncio.subprocess.Process) -> None:
        """Feed the client's stdin to the command; a signal from the client goes to its process group."""
        assert child.stdin is not None
        try:
            while True:
                data = await process.stdin.read(65536)
                if data:
                    child.stdin.write(data)
                    with contextlib.suppress(ConnectionError):
                        await child.stdin.drain()
                    continue
                if not child.stdin.is_closing():
                    child.stdin.close()
                # After EOF read() returns at once; a signal sent later still surfaces here as an exception.
                await asyncio.sleep(0.02)
        except asyncssh.SignalReceived as exc:
            self.seen.signals.append(exc.signal)
            _killpg(child.pid, getattr(signal, f"SIG{exc.signal}", signal.SIGTERM))


async def _copy(source: asyncio.StreamReader | None, sink: asyncssh.SSHWriter[bytes]) -> None:
    assert source is not None
    while chunk := await source.read(65536):
        sink.write(chunk)
        await sink.drain()  # the client's window: flow control instead of buffering everything here


async def _kill_when_closed(process: asyncssh.SSHServerProcess[bytes], child: asyncio.subprocess.Process) -> None:
    """Like sshd: a command whose channel the client closed does not get to run on."""
    await process.channel.wait_closed()
    if child.returncode is None:
        _killpg(child.pid, signal.SIGKILL)


def _killpg(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
