"""One plan mixing shell, ssh (the test SSH server) and http (a local HTTP server) runs end to end; in a
dry-run tenant the same plan reaches neither peer. And the demo runbooks of DESIGN §11 run for real."""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from core import (
    Connection,
    TenantMode,
    add_asset,
    approve,
    get_execution,
    principal,
    set_secret,
    set_tenant_mode,
    submit,
)
from core.actions.circuit import BREAKER
from core.ops.setup import DEMO_LOG_DIR, DEMO_RUNBOOKS
from tests.engine_support import drive
from tests.http_service import JsonHandler, serving
from tests.ssh_server import PASSWORD, SshServer

REQUESTS: list[str] = []


class Api(JsonHandler):
    def do_GET(self) -> None:
        REQUESTS.append(self.path)
        self.answer(200, {"healthy": True})


@pytest.fixture
def peers(db: str) -> Iterator[SshServer]:
    """The ssh asset `box` and the http asset `api` of tenant demo, each a real server on loopback."""
    sshd = SshServer(username="deploy").start()
    with serving(Api) as api_url:
        REQUESTS.clear()
        BREAKER.reset()
        admin = principal("admin", "demo")
        set_secret(admin, "box_password", PASSWORD)
        add_asset(admin, "box", Connection.SSH, host="127.0.0.1", port=sshd.port, credential_ref="box_password",
                  known_host_key=sshd.known_host_key)  # fmt: skip
        add_asset(admin, "api", Connection.HTTP, base_url=api_url)
        yield sshd
    sshd.stop()


def _plan(marker: Path) -> str:
    return (
        "name: mixed\nsteps:\n"
        f"  - {{name: local, action: shell, target: localhost, action_class: modify, params: {{command: [touch, '{marker}']}}}}\n"
        "  - {name: remote, action: ssh, target: box, params: {command: [echo, from-ssh], username: deploy}}\n"
        "  - {name: probe, action: http, target: api, params: {path: /health}}\n"
    )


def _run(plan: str) -> str:
    execution_id = submit(principal("alice", "demo"), plan).execution.execution_id
    approve(principal("bob", "demo"), execution_id)
    drive(execution_id)
    return execution_id


def test_shell_ssh_and_http_steps_run_in_order_on_their_peers(peers: SshServer, tmp_path: Path) -> None:
    marker = tmp_path / "touched"
    view = get_execution(principal("alice", "demo"), _run(_plan(marker)))
    assert (view.status, view.run_mode) == ("completed", "live"), view.error
    assert [(s.name, s.status) for s in view.steps] == [("local", "completed"), ("remote", "completed"),
                                                        ("probe", "completed")]  # fmt: skip
    assert marker.exists()
    assert [shlex.split(c)[-1] for c in peers.seen.commands] == ["echo from-ssh"] and (
        view.steps[1].output or ""
    ).strip() == "from-ssh"
    assert REQUESTS == ["/health"] and '"healthy": true' in (view.steps[2].output or "")


def test_in_a_dry_run_tenant_the_same_plan_touches_no_peer(peers: SshServer, tmp_path: Path) -> None:
    set_tenant_mode(principal("admin", "demo"), TenantMode.DRY_RUN)
    marker = tmp_path / "touched"
    view = get_execution(principal("alice", "demo"), _run(_plan(marker)))
    assert (view.status, view.run_mode) == ("completed", "dry_run"), view.error
    assert not marker.exists() and peers.seen.connections == 0 and REQUESTS == []
    assert "would run over ssh" in (view.steps[1].output or "") and "would send GET" in (view.steps[2].output or "")


@pytest.mark.parametrize(("name", "plan"), [(n, p) for n, _d, p in DEMO_RUNBOOKS])
def test_the_demo_runbooks_run_for_real_on_localhost(db: str, name: str, plan: str) -> None:
    result = submit(principal("alice", "demo"), plan)
    execution_id = result.execution.execution_id
    if result.execution.status == "pending_approval":
        approve(principal("bob", "demo"), execution_id)
    drive(execution_id)
    view = get_execution(principal("alice", "demo"), execution_id)
    expected = "failed" if name == "Failing check" else "completed"
    assert view.status == expected, view.error
    if name == "Log rotation":
        assert Path(DEMO_LOG_DIR, "app.log.1").exists() and Path(DEMO_LOG_DIR, "app.log").stat().st_size == 0
    if name == "Restart a service":  # every input has a default: submitted as is, it restarts nginx
        assert Path(DEMO_LOG_DIR, "nginx.restarted").exists()
        assert view.steps[2].output == "reason: routine"
