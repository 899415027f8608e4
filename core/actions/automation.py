"""``automation``: a command run on the step's asset by the external automation service, over HTTP.

The service's contract (JSON both ways; ``{base}`` is ``OPSC_AUTOMATION_URL``):

- ``GET {base}/status`` → 2xx when the service can take work (the body is not read).
- ``POST {base}/execute`` with ``{"command": str, "target_host": str, "connection_type": "local"|"ssh",
  "timeout": int}`` (seconds the service may let the command run) → 2xx with a job:
  ``{"execution_id": str, "status": "completed"|"failed"|"running", "exit_code": int|null,
  "output": str, "error": str|null}``. A service may answer ``running`` at once and finish later.
- ``GET {base}/status/{execution_id}`` → the same job object; polled while it is ``running``.

A job succeeds when it is ``completed`` with exit code 0 (or none); its output goes to the step output
(masked, capped). ``target_host`` is the asset's host (``localhost`` for a local asset) and
``connection_type`` its connection; the service holds its own credentials: no secret is sent.

Retries and failures: the GETs are safe and retried with backoff, so the health probe before each job
lets a restarting service recover without spending the POST, which is sent once (running a command is not
idempotent). The service being unreachable, timing out or answering 5xx counts against the circuit
breaker of its host (core/actions/circuit.py); a job that fails is the service working, and does not.
Cancel aborts the request in flight or stops polling; the contract has no cancel call, so a job the
service has already started runs on until its own ``timeout``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.actions import circuit
from core.actions.circuit import BREAKER, CircuitOpen
from core.actions.context import ActionResult, StepContext
from core.actions.http_call import RETRIES, Stopped, send, step_wait, with_retries
from core.actions.registry import ActionType, register
from db.enums import ActionClass, Connection
from db.settings import get_settings

if TYPE_CHECKING:
    import httpx

NOT_CONFIGURED = "automation service not configured (OPSC_AUTOMATION_URL)"
POLL_INTERVAL_S = 0.5
# The service is told to stop the command this much before our request gives up, so its answer (with
# the command's output) still reaches us.
ANSWER_MARGIN_S = 1


class AutomationParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    command: str = Field(min_length=1, max_length=16384, pattern=r"\S")


class Job(BaseModel):
    """A job as the service reports it (unknown fields are ignored: the service may say more)."""

    model_config = ConfigDict(extra="ignore")

    execution_id: str = Field(min_length=1)
    status: Literal["completed", "failed", "running"]
    exit_code: int | None = None
    output: str = ""
    error: str | None = None


class ServiceError(Exception):
    """The service did not give us a usable answer. ``fault``: it is down or broken (the breaker counts it)."""

    def __init__(self, message: str, *, fault: bool) -> None:
        super().__init__(message)
        self.fault = fault


@register
class Automation(ActionType):
    name = "automation"
    params_model = AutomationParams
    default_class = ActionClass.MODIFY
    idempotent = False
    default_estimate_s = 5.0
    connections = frozenset({Connection.LOCAL, Connection.SSH})
    # The service runs the text as a command line we cannot see split: no input goes into it (core/plan_inputs.py).
    command_param = "command"

    def run(self, ctx: StepContext) -> ActionResult:
        params = AutomationParams.model_validate(ctx.params)
        try:
            base = _base_url()
        except ServiceError as exc:
            return ActionResult(ok=False, error=str(exc))
        host = circuit.target(ctx.tenant_id, base)
        try:
            BREAKER.before(host)
        except CircuitOpen as exc:
            return ActionResult(ok=False, error=f"automation service unavailable: {exc}")
        try:
            job = _run_job(ctx, base, params)
        except ServiceError as exc:
            (BREAKER.failure if exc.fault else BREAKER.success)(host)
            return ActionResult(ok=False, error=f"automation service {base}: {exc}")
        except Stopped as exc:
            BREAKER.success(host)  # not the service's fault; also ends a half-open trial
            return ActionResult(ok=False, stopped=True, error=f"automation job {exc.why}")
        BREAKER.success(host)
        ctx.output.write(job.output)
        data = {"automation_execution_id": job.execution_id}
        if job.status == "completed" and job.exit_code in (0, None):
            return ActionResult(ok=True, exit_code=job.exit_code, data=data)
        reason = job.error or (f"exit code {job.exit_code}" if job.exit_code is not None else "no reason given")
        return ActionResult(
            ok=False, exit_code=job.exit_code, error=f"remote job {job.execution_id} failed: {reason}", data=data
        )

    def dry_run(self, ctx: StepContext) -> ActionResult:
        params = AutomationParams.model_validate(ctx.params)
        try:
            base = _base_url()
        except ServiceError as exc:
            return ActionResult(ok=False, error=str(exc))  # a dry run is where a missing setting should show
        body = _request_body(ctx, params)
        ctx.output.write(
            f"would POST {base}/execute: command={ctx.shown(body['command'])!r}, target_host={body['target_host']}, "
            f"connection_type={body['connection_type']}, timeout={body['timeout']}"
        )
        return ActionResult(ok=True)


def _base_url() -> str:
    """The service's base URL. Raises ServiceError (not a fault of the service) when it is unset or unusable."""
    base = (get_settings().automation_url or "").strip().rstrip("/")
    if not base:
        raise ServiceError(NOT_CONFIGURED, fault=False)
    if not base.startswith(("http://", "https://")):
        raise ServiceError(f"OPSC_AUTOMATION_URL must start with http:// or https://, not {base!r}", fault=False)
    return base


def _budget_s(ctx: StepContext) -> float:
    """How long one request may take: the step's remaining time, capped by the service timeout."""
    return min(ctx.remaining_s(), get_settings().automation_timeout_s)


def _request_body(ctx: StepContext, params: AutomationParams) -> dict[str, str | int]:
    local = ctx.asset.connection == Connection.LOCAL
    return {
        "command": params.command,
        "target_host": "localhost" if local or not ctx.asset.host else ctx.asset.host,
        "connection_type": ctx.asset.connection,
        "timeout": max(1, math.ceil(_budget_s(ctx)) - ANSWER_MARGIN_S),
    }


def _run_job(ctx: StepContext, base: str, params: AutomationParams) -> Job:
    """Probe, submit once, poll while running. Raises ServiceError or Stopped."""
    _get(ctx, f"{base}/status")
    job = _job(_call(ctx, "POST", f"{base}/execute", json=_request_body(ctx, params)))
    while job.status == "running":
        if ctx.stop.wait(min(POLL_INTERVAL_S, ctx.remaining_s())) or ctx.should_stop():
            raise Stopped("cancelled" if ctx.stop.is_set() else "timed out")
        job = _job(_get(ctx, f"{base}/status/{quote(job.execution_id, safe='')}"))
    return job


def _call(ctx: StepContext, method: str, url: str, **request: object) -> httpx.Response:
    """One request to the service. Raises ServiceError for a failure or a non-2xx answer, Stopped."""
    import httpx  # on first use: see http_call

    what = f"{method} {httpx.URL(url).path}"
    try:
        response = send(ctx, method, url, timeout_s=_budget_s(ctx), **request)
    except httpx.HTTPError as exc:
        raise ServiceError(f"{what} failed: {type(exc).__name__}: {exc}", fault=True) from exc
    if not response.is_success:
        detail = response.text.strip()[:200] or response.reason_phrase
        raise ServiceError(f"{what} answered {response.status_code}: {detail}", fault=response.is_server_error)
    return response


def _get(ctx: StepContext, url: str) -> httpx.Response:
    """A GET, retried with backoff while the service is down or answers 5xx (GETs are safe to repeat)."""

    def once() -> tuple[httpx.Response | ServiceError, bool]:
        try:
            return _call(ctx, "GET", url), False
        except ServiceError as exc:
            return exc, exc.fault

    outcome = with_retries(once, attempts=RETRIES + 1, wait=step_wait(ctx))
    if outcome is None:
        raise Stopped("cancelled")
    if isinstance(outcome, ServiceError):
        raise outcome
    return outcome


def _job(response: httpx.Response) -> Job:
    try:
        return Job.model_validate_json(response.content)
    except ValidationError as exc:
        what = f"{response.request.method} {response.request.url.path}"
        problem = exc.errors()[0]
        where = ".".join(str(p) for p in problem["loc"]) or "body"
        message = f"{what} answered something that is not a job ({where}: {problem['msg']})"
        raise ServiceError(message, fault=False) from exc
