"""The ``ssh`` action without a server or a database: params, the remote command line, its class, the checks
made before any connection, dry-run text, and connection errors."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from core.actions.context import OutputSink, StepContext
from core.actions.registry import get_action
from core.actions.ssh import Ssh, SshParams, remote_command, sent_command
from core.errors import InvalidInput
from core.plans import parse_plan
from core.schemas import AssetView
from db.enums import ActionClass, Connection
from tests.engine_support import alive
from tests.maskers import tracked_masker

PASSWORD = "hunter2-but-longer"


def context(
    params: dict[str, Any],
    *,
    known_key: bool = True,
    credential: str | None = PASSWORD,
    port: int = 2222,
    skip_host_key: bool = False,
) -> StepContext:
    masker = tracked_masker(*([credential] if credential else []))
    asset = AssetView(
        id="a1",
        name="web-01",
        connection="ssh",
        host="127.0.0.1",
        port=port,
        base_url=None,
        tags=[],
        credential_ref="web_pw",
        has_known_host_key=known_key,
        skip_host_key=skip_host_key,
    )
    return StepContext(
        execution_id="e1",
        step_index=0,
        params={"username": "deploy", **params},
        asset=asset,
        deadline=time.monotonic() + 5,
        stop=threading.Event(),
        output=OutputSink(masker),
        masker=masker,
        credential=credential,
    )


def test_ssh_is_registered_for_ssh_assets_as_a_non_idempotent_modify() -> None:
    assert get_action("ssh") is Ssh
    assert Ssh.connections == frozenset({Connection.SSH})
    assert (Ssh.default_class, Ssh.idempotent) == (ActionClass.MODIFY, False)


@pytest.mark.parametrize("command", ["uptime", ["uptime"]])
def test_both_command_forms_are_modify_and_a_plan_cannot_lower_them(command: str | list[str]) -> None:
    """The remote shell sees either form, so neither is a read; a plan may raise the class to deploy."""
    step = {"name": "s", "action": "ssh", "target": "t", "params": {"command": command, "username": "u"}}
    assert parse_plan({"name": "p", "steps": [step]}).steps[0].action_class is ActionClass.MODIFY
    lowered = parse_plan({"name": "p", "steps": [{**step, "action_class": "read"}]})
    assert lowered.steps[0].action_class is ActionClass.MODIFY
    raised = parse_plan({"name": "p", "steps": [{**step, "action_class": "deploy"}]})
    assert raised.steps[0].action_class is ActionClass.DEPLOY


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"command": ""}, "command"),
        ({"command": []}, "command"),
        ({"command": ["ls", ""]}, "command"),
        ({"command": "echo 'open"}, "command"),
        ({"command": ["echo", "a\x00b"]}, "command"),
        ({"command": "ls", "env": {"BAD-NAME": "x"}}, "env"),
        ({"command": "ls", "port": 2200}, "port"),
        ({"command": "ls", "username": ""}, "username"),
    ],
)
def test_params_are_validated(params: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        SshParams.model_validate({"username": "deploy", **params})
    assert {str(error["loc"][0]) for error in info.value.errors()} == {field}


def test_username_is_required_in_a_plan() -> None:
    step = {"name": "s", "action": "ssh", "target": "t", "params": {"command": "ls"}}
    with pytest.raises(InvalidInput) as info:
        parse_plan({"name": "p", "steps": [step]})
    assert info.value.path == "steps[0].params.username"


def test_remote_command_quotes_list_items_and_the_cwd_and_sends_strings_as_is() -> None:
    listed = SshParams(command=["echo", "$HOME; rm -rf /", "it's"], username="u", cwd="/srv/my app; id")
    assert remote_command(listed) == "cd '/srv/my app; id' && echo '$HOME; rm -rf /' 'it'\"'\"'s'"
    assert remote_command(SshParams(command="df -h | tail -1", username="u")) == "df -h | tail -1"


def test_dry_run_says_what_would_run_and_touches_nothing() -> None:
    ctx = context({"command": ["systemctl", "restart", PASSWORD], "env": {"B": "1", "A": "2"}, "stdin": "héllo"})
    assert Ssh().dry_run(ctx).ok
    assert ctx.output.text() == (  # masked, then quoted: the secret's element reads '***'
        "would run over ssh as deploy@127.0.0.1:2222: systemctl restart '***' with env ['A', 'B'] with 6 bytes on stdin"
    )


def test_dry_run_flags_the_opt_out_and_predicts_a_refusal() -> None:
    insecure = context({"command": "ls"}, known_key=False, skip_host_key=True)
    assert Ssh().dry_run(insecure).ok and insecure.output.text().endswith(
        "(host key NOT checked: web-01 has skip_host_key)"
    )
    unknown = context({"command": "ls"}, known_key=False)
    result = Ssh().dry_run(unknown)
    assert not result.ok and "asset web-01 has no known host key" in (result.error or "")


def test_run_without_a_known_host_key_or_a_credential_fails_before_connecting() -> None:
    """Both checks come before any connection (port 2222 is never dialled)."""
    no_key = Ssh().run(context({"command": "ls"}, known_key=False))
    assert not no_key.ok and "--known-host-key" in (no_key.error or "")
    no_credential = Ssh().run(context({"command": "ls"}, credential=None))
    assert not no_credential.ok and "asset web-01 has no credential" in (no_credential.error or "")


def test_an_unusable_private_key_is_a_clear_error_without_the_key() -> None:
    junk = "-----BEGIN OPENSSH PRIVATE KEY-----\nbm90IGEga2V5IGF0IGFsbA==\n-----END OPENSSH PRIVATE KEY-----\n"
    result = Ssh().run(context({"command": "ls"}, credential=junk, known_key=False, skip_host_key=True))
    assert not result.ok and "the credential of web-01 is not a usable private key" in (result.error or "")
    assert "bm90IGEga2V5" not in (result.error or "")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_refused_connection_names_the_target() -> None:
    port = _closed_port()
    result = Ssh().run(context({"command": "ls"}, port=port, known_key=False, skip_host_key=True))
    assert (result.ok, result.error) == (False, f"ssh to 127.0.0.1:{port} failed: connection refused")


def test_run_works_when_called_from_inside_an_event_loop() -> None:
    """An async caller running a step inline: the private loop moves to a helper thread instead of failing."""
    port = _closed_port()

    async def caller() -> str | None:
        return Ssh().run(context({"command": "ls"}, port=port, known_key=False, skip_host_key=True)).error

    assert asyncio.run(caller()) == f"ssh to 127.0.0.1:{port} failed: connection refused"


def test_a_plan_cannot_skip_the_host_key_check() -> None:
    """DESIGN §13: host-key skipping is the asset's (admin's) setting; the old plan parameter is refused."""
    step = {"name": "s", "action": "ssh", "target": "t"}
    params = {"command": "ls", "username": "u", "insecure_skip_host_key": True}
    with pytest.raises(InvalidInput) as info:
        parse_plan({"name": "p", "steps": [{**step, "params": params}]})
    assert info.value.issues == [("steps[0].params.insecure_skip_host_key", "unknown field")]


def test_a_known_host_key_is_checked_even_on_an_asset_that_may_skip() -> None:
    """skip_host_key only stands in for a missing key: it never overrides a key the asset knows."""
    from core.actions.ssh import skips_host_key

    assert skips_host_key(context({"command": "ls"}, known_key=False, skip_host_key=True))
    assert not skips_host_key(context({"command": "ls"}, known_key=True, skip_host_key=True))
    assert not skips_host_key(context({"command": "ls"}, known_key=False))


def test_closing_the_channel_ends_the_remote_command_and_its_children() -> None:
    """The line sent to sshd, run as sshd runs it (a new session, the channel on stdin and stdout): when
    stdin closes (the client closed the channel, or its connection died) every process of the command ends.
    The in-process test server kills a closed channel's group itself, so it cannot show this; a local sh can."""
    line = sent_command(SshParams(command="sleep 3600 & echo $!; sleep 3600 & echo $!; wait", username="u"))
    remote = subprocess.Popen(  # the user's login shell, as sshd starts it
        ["/bin/sh", "-c", line], stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True
    )
    assert remote.stdin is not None and remote.stdout is not None
    pids = [int(remote.stdout.readline()) for _ in range(2)]
    try:
        assert all(alive(p) for p in pids)
        remote.stdin.close()  # what sshd does when the channel goes
        deadline = time.monotonic() + 30  # generous: SIGTERM at once, SIGKILL 2 s later
        while any(alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not any(alive(p) for p in pids)
        remote.wait(timeout=30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(remote.pid, signal.SIGKILL)
        remote.wait()


def test_under_the_watchdog_output_and_exit_code_are_the_commands() -> None:
    line = sent_command(SshParams(command=["sh", "-c", "echo out; echo err >&2; exit 3"], username="u"))
    # As sshd runs it: a session of its own, stdin the channel's, which the client keeps open until the end.
    remote = subprocess.Popen(
        ["/bin/sh", "-c", line],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    assert remote.stdout is not None and remote.stderr is not None and remote.stdin is not None
    out, err = remote.stdout.read(), remote.stderr.read()
    assert (remote.wait(timeout=60), out, err) == (3, b"out\n", b"err\n")
    remote.stdin.close()
    fed = SshParams(command="cat", username="u", stdin="x")
    assert sent_command(fed) == "cat"  # stdin is the command's: no watchdog (it would need the channel's stdin)


def test_under_a_server_that_gives_no_session_of_its_own_the_watchdog_kills_nothing_else() -> None:
    """The watchdog kills the wrapper's own group only: run inside someone else's group (a `sleep` leads it),
    when its stdin closes it finds no such group, ends, and the group's leader lives on."""
    leader = subprocess.Popen(["/bin/sleep", "3600"], process_group=0)  # a group in our session: joinable
    line = sent_command(SshParams(command="echo inner", username="u"))
    inner = subprocess.Popen(
        ["/bin/sh", "-c", line], stdin=subprocess.PIPE, stdout=subprocess.PIPE, process_group=leader.pid
    )
    try:
        assert inner.stdout is not None and inner.stdin is not None
        assert inner.stdout.read() == b"inner\n" and inner.wait(timeout=60) == 0
        inner.stdin.close()  # the watchdog wakes up and tries its group kill
        deadline = time.monotonic() + 30
        while [p for p in _group_members(leader.pid) if p != leader.pid] and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _group_members(leader.pid) == [leader.pid]  # the watchdog is done; the leader was not hit
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(leader.pid, signal.SIGKILL)
        leader.wait()


def _group_members(pgid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and alive(int(entry.name)):
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                if int(stat[stat.rindex(")") + 2 :].split()[2]) == pgid:
                    found.append(int(entry.name))
    return sorted(found)
