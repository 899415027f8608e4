"""The ``automation`` action against a real local automation service (the contract in
core/actions/automation.py): jobs end to end, remote failures, a sick or missing service, the circuit
breaker, cancel, dry run and the missing setting."""

from __future__ import annotations

import json
import shlex
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from core import Connection, TenantMode, add_asset, approve, get_execution, principal, set_tenant_mode, submit
from core.actions import http_call
from core.actions.automation import NOT_CONFIGURED
from core.actions.circuit import BREAKER
from core.schemas import ExecutionView
from db.settings import get_settings
from tests.engine_support import cancel_in_flight, drive
from tests.http_service import JsonHandler, serving


class Automation:
    """The service's state: the requests it saw, its jobs, and whether it is sick (answers 500)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.requests: list[tuple[str, str, dict[str, Any] | None]] = []
        self.jobs: dict[str, dict[str, Any]] = {}
        self.sick = False
        self.release = threading.Event()  # a `slow` job holds its answer until the test sets this

    def execute(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        command = shlex.split(body["command"])
        job_id = uuid.uuid4().hex[:8]
        if command[0] == "crash":
            return 500, {"detail": "the automation service fell over"}
        if command[0] == "slow":
            self.release.wait(timeout=30)
        if body["connection_type"] != "local":  # no real ssh here: say where it would have run
            return 200, _job(job_id, "completed", 0, f"ran on {body['target_host']} via {body['connection_type']}\n")
        if command[0] == "async":  # answer at once, finish in the background (the client polls)
            self.jobs[job_id] = _job(job_id, "running", None, "")
            threading.Thread(target=self._finish, args=(job_id, command[1:], body["timeout"]), daemon=True).start()
            return 202, self.jobs[job_id]
        self._finish(job_id, command, body["timeout"])
        return 200, self.jobs[job_id]

    def _finish(self, job_id: str, argv: list[str], timeout: int) -> None:
        time.sleep(0.3 if job_id in self.jobs else 0)
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        status = "completed" if done.returncode == 0 else "failed"
        self.jobs[job_id] = _job(job_id, status, done.returncode, done.stdout, done.stderr.strip() or None)


def _job(job_id: str, status: str, exit_code: int | None, output: str, error: str | None = None) -> dict[str, Any]:
    return {"execution_id": job_id, "status": status, "exit_code": exit_code, "output": output, "error": error}


SERVICE = Automation()


class Handler(JsonHandler):  # answer() tolerates the client aborting (cancel test)
    def do_GET(self) -> None:
        SERVICE.requests.append(("GET", self.path, None))
        if SERVICE.sick:
            self.answer(500, {"detail": "sick"})
        elif self.path == "/status":
            self.answer(200, {"status": "ok"})
        elif self.path.removeprefix("/status/") in SERVICE.jobs:
            self.answer(200, SERVICE.jobs[self.path.removeprefix("/status/")])
        else:
            self.answer(404, {"detail": "no such job"})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        SERVICE.requests.append(("POST", self.path, body))
        self.answer(*((500, {"detail": "sick"}) if SERVICE.sick else SERVICE.execute(body)))


@pytest.fixture
def service(db: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A local automation service at OPSC_AUTOMATION_URL, and an ssh asset `web` next to `localhost`."""
    SERVICE.reset()
    with serving(Handler) as url:
        monkeypatch.setenv("OPSC_AUTOMATION_URL", url)
        monkeypatch.setenv("OPSC_WATCH_INTERVAL_S", "0.05")
        monkeypatch.setattr(http_call, "RETRY_BACKOFF_S", 0.01)  # the retries still happen, only faster
        get_settings.cache_clear()
        BREAKER.reset()
        add_asset(principal("admin", "demo"), "web", Connection.SSH, host="10.1.2.3")
        yield url
        SERVICE.release.set()
    BREAKER.reset()
    get_settings.cache_clear()


def _submit(command: str, *, target: str = "localhost") -> str:
    """Submit and approve a one-step automation plan (a modify: one approval), with a 10 s step timeout."""
    step = {"name": "a", "action": "automation", "target": target, "params": {"command": command}, "timeout_s": 10}
    plan = {"name": "auto", "steps": [step]}
    execution_id = submit(principal("alice", "demo"), plan, background=True).execution.execution_id
    approve(principal("bob", "demo"), execution_id)
    return execution_id


def _run(command: str, *, target: str = "localhost") -> ExecutionView:
    execution_id = _submit(command, target=target)
    drive(execution_id)
    return get_execution(principal("alice", "demo"), execution_id)


def test_a_command_runs_on_the_service_and_its_output_lands_in_the_step(service: str) -> None:
    """Probe, one POST with the contract's body; the job's output (masked) is the step's output."""
    view = _run("echo hello {{ secret:demo_token }}")
    assert (view.status, view.action_class, view.approval_level) == ("completed", "modify", 1)
    assert view.steps[0].output == "hello ***\n"
    assert [(m, p) for m, p, _ in SERVICE.requests] == [("GET", "/status"), ("POST", "/execute")]
    body = SERVICE.requests[1][2]
    assert body is not None and body["target_host"] == "localhost" and body["connection_type"] == "local"
    assert body["timeout"] == 9  # the step's 10 s, less the margin for the answer


def test_an_ssh_asset_is_named_by_its_host(service: str) -> None:
    """target_host is the asset's host and connection_type its connection."""
    view = _run("uptime", target="web")
    assert view.status == "completed" and view.steps[0].output == "ran on 10.1.2.3 via ssh\n"


def test_a_running_job_is_polled_until_it_ends(service: str) -> None:
    """A service may answer `running`; the action polls GET /status/{id} until the job ends."""
    view = _run("async echo later")
    assert view.status == "completed" and view.steps[0].output == "later\n"
    assert any(m == "GET" and p.startswith("/status/") for m, p, _ in SERVICE.requests)


def test_a_failing_job_fails_the_step_with_the_remote_error(service: str) -> None:
    """A job that fails is a failed step carrying the service's error and exit code (and is not retried)."""
    view = _run("sh -c 'echo partial; echo disk full >&2; exit 3'")
    step = view.steps[0]
    assert view.status == "failed" and step.status == "failed" and step.output == "partial\n"
    assert step.error is not None and step.error.endswith("failed: disk full")
    assert [m for m, _, _ in SERVICE.requests].count("POST") == 1


def test_a_5xx_on_execute_is_a_clear_error_and_the_post_is_not_repeated(service: str) -> None:
    """POST /execute is not idempotent: a 500 fails the step at once, with what the service said."""
    view = _run("crash")
    error = view.steps[0].error or ""
    assert view.status == "failed" and f"automation service {service}: POST /execute answered 500" in error
    assert "fell over" in error and [m for m, _, _ in SERVICE.requests].count("POST") == 1


def test_an_unreachable_service_is_a_clear_error(service: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing listening: the health probe is retried, then the step fails naming the connection error."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("OPSC_AUTOMATION_URL", f"http://127.0.0.1:{port}")
    get_settings.cache_clear()
    view = _run("echo hi")
    assert view.status == "failed"
    assert f"automation service http://127.0.0.1:{port}: GET /status failed: ConnectError" in (
        view.steps[0].error or ""
    )


def test_the_circuit_opens_fails_fast_then_half_opens(service: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two sick runs open the circuit; the next fails fast without a request; after the cool-down a trial
    call goes through and closes it."""
    monkeypatch.setattr(BREAKER, "threshold", 2)
    # A cool-down no loaded machine outruns while the circuit must stay open; it is over when set to 0.
    monkeypatch.setattr(BREAKER, "cooldown_s", 60.0)
    SERVICE.sick = True
    for _ in range(2):
        assert "GET /status answered 500" in (_run("echo hi").steps[0].error or "")
    assert len(SERVICE.requests) == 2 * 3  # the safe probe: three tries a run, the POST never sent
    fast = _run("echo hi")
    assert "automation service unavailable: circuit open for 127.0.0.1" in (fast.steps[0].error or "")
    assert len(SERVICE.requests) == 6
    monkeypatch.setattr(BREAKER, "cooldown_s", 0.0)  # the cool-down has passed
    SERVICE.sick = False
    assert _run("echo back").steps[0].output == "back\n"  # the half-open trial
    assert _run("echo closed").status == "completed"


def test_cancel_aborts_a_slow_call(service: str) -> None:
    """A cancel aborts the POST in flight: the worker ends while the service still holds its answer."""
    execution_id = _submit("slow")
    cancel_in_flight(execution_id, running=lambda: bool(SERVICE.requests))
    assert not SERVICE.release.is_set()
    view = get_execution(principal("alice", "demo"), execution_id)
    assert view.status == "cancelled" and view.steps[0].error == "cancelled by alice"


def test_dry_run_says_what_it_would_post_and_sends_nothing(service: str) -> None:
    """In a dry-run tenant the step states the request precisely; the service sees no request."""
    set_tenant_mode(principal("admin", "demo"), TenantMode.DRY_RUN)
    execution_id = _submit("systemctl restart nginx", target="web")
    drive(execution_id)
    view = get_execution(principal("alice", "demo"), execution_id)
    assert view.run_mode == "dry_run" and view.status == "completed"
    assert view.steps[0].output == (
        f"would POST {service}/execute: command='systemctl restart nginx', target_host=10.1.2.3, "
        "connection_type=ssh, timeout=9"
    )
    assert SERVICE.requests == []


def test_without_a_service_url_the_step_says_so(service: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """OPSC_AUTOMATION_URL unset: the step fails with a clear error naming the setting."""
    monkeypatch.delenv("OPSC_AUTOMATION_URL")
    get_settings.cache_clear()
    view = _run("echo hi")
    assert view.status == "failed" and view.steps[0].error == NOT_CONFIGURED
    assert SERVICE.requests == []
