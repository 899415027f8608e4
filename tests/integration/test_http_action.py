"""The ``http`` action against a real local HTTP server: requests, auth from secrets (masked), expected
statuses, retries of idempotent methods only, the circuit breaker, cancel, and dry run."""

from __future__ import annotations

import threading
import time
import tracemalloc
from collections.abc import Iterator

import pytest

from core import Connection, TenantMode, add_asset, get_execution, principal, set_tenant_mode, submit
from core.actions import circuit, http_call
from core.actions.circuit import BREAKER, CircuitBreaker, CircuitOpen
from core.actions.http_call import MAX_BODY_BYTES
from db.settings import get_settings
from tests.engine_support import cancel_in_flight, drive
from tests.http_service import JsonHandler, serving

HITS: dict[str, int] = {}
RELEASE = threading.Event()  # /slow holds its answer until the test sets this
CLIENT_CLOSED = threading.Event()  # /slow saw the client close the connection while it held the answer
BIG_BODY = 20 * 1024 * 1024


class Service(JsonHandler):  # answer() tolerates the client aborting (cancel test)
    def _handle(self) -> None:
        HITS[self.path] = HITS.get(self.path, 0) + 1
        if self.path == "/slow":
            self.hold(RELEASE, CLIENT_CLOSED)
        if self.path == "/big":
            self.answer_big(BIG_BODY)
            return
        status = 500 if self.path.startswith("/fail") else 200
        self.answer(status, {"path": self.path, "method": self.command, "auth": self.headers.get("Authorization")})

    do_GET = do_POST = do_PUT = _handle


@pytest.fixture
def service(db: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A local service registered as the http asset `api` (credential: the demo token)."""
    monkeypatch.setenv("OPSC_RETRY_BACKOFF_S", "0.01")
    monkeypatch.setenv("OPSC_WATCH_INTERVAL_S", "0.05")
    get_settings.cache_clear()
    HITS.clear()
    RELEASE.clear()
    CLIENT_CLOSED.clear()
    BREAKER.reset()
    with serving(Service) as url:
        add_asset(principal("admin", "demo"), "api", Connection.HTTP, base_url=url, credential_ref="demo_token")
        yield url
    RELEASE.set()
    BREAKER.reset()


def _run(plan: str, *, approve_as: str | None = None) -> str:
    from core import approve

    execution_id = submit(principal("alice", "demo"), plan, background=True).execution.execution_id
    if approve_as:
        approve(principal(approve_as, "demo"), execution_id)
    drive(execution_id)
    return execution_id


def test_get_with_the_asset_credential_is_a_masked_read(service: str) -> None:
    """GET is a read (level 0); the asset's credential goes out as a bearer token and comes back masked."""
    execution_id = _run("name: g\nsteps:\n  - {name: g, action: http, target: api, params: {path: /health}}\n")
    view = get_execution(principal("alice", "demo"), execution_id)
    assert (view.status, view.approval_level) == ("completed", 0)
    output = view.steps[0].output or ""
    assert output.startswith("HTTP 200 OK") and '"auth": "Bearer ***"' in output and "s3cr3t" not in output


def test_post_is_a_modify_and_a_5xx_fails_without_retry(service: str) -> None:
    """POST needs approval (modify) and is sent once; the error names the status."""
    execution_id = _run(
        "name: p\nsteps:\n  - {name: p, action: http, target: api, params: {method: POST, path: /fail-post, json: {a: 1}}}\n",
        approve_as="bob",
    )
    view = get_execution(principal("alice", "demo"), execution_id)
    assert view.status == "failed" and "answered 500, expected 2xx" in (view.steps[0].error or "")
    assert HITS["/fail-post"] == 1


def test_idempotent_get_is_retried_inside_the_step(service: str) -> None:
    """A GET answering 5xx is retried with backoff inside the step (3 requests per attempt)."""
    _run("name: r\nsteps:\n  - {name: r, action: http, target: api, params: {path: /fail-get}}\n")
    assert HITS["/fail-get"] == 3 * 3  # 3 requests a step attempt, 3 step attempts for a read


def test_circuit_opens_after_repeated_failures_and_fails_fast() -> None:
    """After `threshold` failures calls fail fast; after the cool-down one trial call goes through."""
    breaker = CircuitBreaker(threshold=2, cooldown_s=0.2)
    breaker.failure("h")
    breaker.before("h")
    breaker.failure("h")
    with pytest.raises(CircuitOpen, match="circuit open for h"):
        breaker.before("h")
    time.sleep(0.25)
    breaker.before("h")  # the half-open trial
    with pytest.raises(CircuitOpen):
        breaker.before("h")  # only one trial at a time
    breaker.success("h")
    breaker.before("h")


def test_cancel_aborts_a_request_in_flight(service: str) -> None:
    """A cancel aborts the request in flight: the worker ends while the service still holds its answer, and
    the service sees the connection closed (issue 14 item 6: closing the client alone left it open)."""
    execution_id = submit(
        principal("alice", "demo"),
        "name: s\nsteps:\n  - {name: s, action: http, target: api, params: {path: /slow}}\n",
        background=True,
    ).execution.execution_id
    cancel_in_flight(execution_id, running=lambda: HITS.get("/slow", 0) > 0)
    assert not RELEASE.is_set() and HITS["/slow"] == 1
    assert CLIENT_CLOSED.wait(timeout=10), "the service never saw the client close the connection"
    # Closing the client alone left the request's thread blocked in recv until the service answered.
    assert not [t for t in threading.enumerate() if t.name == "opsc-http"], "the request is still in flight"
    assert get_execution(principal("alice", "demo"), execution_id).status == "cancelled"


def test_dry_run_describes_the_request_and_sends_nothing(service: str) -> None:
    """In a dry-run tenant the step says what it would send; the service sees no request."""
    set_tenant_mode(principal("admin", "demo"), TenantMode.DRY_RUN)
    execution_id = _run(
        "name: d\nsteps:\n  - {name: d, action: http, target: api, params: {path: /x, headers: {X-A: b}}}\n"
    )
    view = get_execution(principal("alice", "demo"), execution_id)
    assert (
        view.run_mode == "dry_run"
        and view.steps[0].output == f"would send GET {service}/x with headers ['Authorization', 'X-A']"
    )
    assert HITS == {}


def test_a_huge_body_is_capped_in_memory_and_in_the_output(service: str) -> None:
    """A 20 MB answer: the step keeps at most MAX_BODY_BYTES in memory and says how much it did not read."""
    tracemalloc.start()
    try:
        execution_id = _run("name: b\nsteps:\n  - {name: b, action: http, target: api, params: {path: /big}}\n")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    step = get_execution(principal("alice", "demo"), execution_id).steps[0]
    assert step.status == "completed"
    assert f"more body bytes not read, limit {MAX_BODY_BYTES})" in (step.output or "").splitlines()[0]
    assert peak < 8 * MAX_BODY_BYTES, f"peak {peak / 1e6:.1f} MB while reading a {BIG_BODY / 1e6:.0f} MB body"


def test_the_breaker_counts_outages_per_tenant_and_endpoint_not_4xx(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """4xx answers never open the circuit; 5xx open it for this tenant and endpoint only."""
    monkeypatch.setattr(http_call, "RETRY_BACKOFF_S", 0.01)  # the in-step retries still happen, only faster
    with serving(NotFound) as other:
        add_asset(principal("admin", "demo"), "api2", Connection.HTTP, base_url=other)
        for _ in range(BREAKER.threshold + 1):
            assert "answered 404" in _error(_get("/x", target="api2"))  # an answer each time: never "circuit open"
        errors = [_error(_get("/fail")) for _ in range(BREAKER.threshold + 1)]  # the engine retries reads too
        assert "answered 500" in errors[0] and "circuit open for 127.0.0.1:" in errors[-1]
        assert "answered 404" in _error(_get("/x", target="api2"))  # another port: closed
    assert circuit.target("globex", service) != circuit.target("demo", service)
    BREAKER.before(circuit.target("globex", service))  # another tenant's circuit for the same endpoint: closed


class NotFound(JsonHandler):
    def do_GET(self) -> None:
        self.answer(404, {"detail": "no"})


def _error(plan: str) -> str:
    return get_execution(principal("alice", "demo"), _run(plan)).steps[0].error or ""


def _get(path: str, *, target: str = "api") -> str:
    return f"name: g\nsteps:\n  - {{name: g, action: http, target: {target}, params: {{path: {path}}}}}\n"
