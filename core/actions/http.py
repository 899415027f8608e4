"""``http``: one HTTP request to an ``http`` asset (its base URL plus ``path``), with httpx.

- GET/HEAD are ``read``; other methods ``modify``. Idempotent methods (GET, HEAD, PUT, DELETE, OPTIONS)
  are retried inside the step with backoff on connection errors and 5xx; others are sent once.
- Auth from secrets: ``bearer`` or ``basic`` params (as ``{{ secret:NAME }}``), or the asset's
  ``credential_ref`` as a bearer token.
- A circuit breaker per (tenant, endpoint) makes calls fail fast after repeated connection errors or 5xx
  (a 4xx is an answer, not an outage, and is never retried): core/actions/circuit.py.
- The response (status line and body) goes to the step output, masked and capped; at most
  ``MAX_BODY_BYTES`` of the body is ever held in memory.
- Cancel and timeouts: the request runs with the step's remaining time as its timeout, in a thread the
  runner watches; on stop its sockets are shut down, so the request ends on both sides at once:
  core/actions/http_call.py.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from core.actions import circuit
from core.actions.circuit import BREAKER, CircuitOpen
from core.actions.context import ActionResult, StepContext
from core.actions.http_call import MAX_BODY_BYTES, RETRIES, Stopped, dropped_bytes, send, step_wait, with_retries
from core.actions.registry import ActionType, register
from db.enums import ActionClass, Connection

if TYPE_CHECKING:
    import httpx

READ_METHODS = frozenset({"GET", "HEAD"})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


class BasicAuth(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str
    password: str


class HttpParams(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] = "GET"
    path: str = Field(default="/", pattern=r"^/")
    headers: dict[str, str] = Field(default_factory=dict)
    json_body: Any = Field(default=None, alias="json")
    expect_status: list[int] = Field(default_factory=lambda: list(range(200, 300)))
    bearer: str | None = None
    basic: BasicAuth | None = None


@register
class Http(ActionType):
    name = "http"
    params_model = HttpParams
    default_class = ActionClass.READ
    idempotent = False
    default_estimate_s = 2.0
    connections = frozenset({Connection.HTTP})

    @classmethod
    def action_class(cls, params: BaseModel) -> ActionClass:
        assert isinstance(params, HttpParams)
        return ActionClass.READ if params.method in READ_METHODS else ActionClass.MODIFY

    def run(self, ctx: StepContext) -> ActionResult:
        params = HttpParams.model_validate(ctx.params)
        url = _url(ctx, params)
        target = circuit.target(ctx.tenant_id, url)
        try:
            BREAKER.before(target)
        except CircuitOpen as exc:
            return ActionResult(ok=False, error=str(exc))
        attempts = RETRIES + 1 if params.method in IDEMPOTENT_METHODS else 1
        outcome = with_retries(lambda: self._once(ctx, params, url), attempts=attempts, wait=step_wait(ctx))
        if outcome is None:
            outcome = ActionResult(ok=False, stopped=True, error="cancelled")
        (BREAKER.failure if _endpoint_down(outcome) else BREAKER.success)(target)
        return outcome

    def _once(self, ctx: StepContext, params: HttpParams, url: str) -> tuple[ActionResult, bool]:
        """One request; returns the result and whether a failure may be retried."""
        import httpx  # on first use: see http_call

        try:
            response = send(
                ctx,
                params.method,
                url,
                timeout_s=ctx.remaining_s(),
                headers=_headers(ctx, params),
                auth=_basic(params),
                json=params.json_body,
            )
        except Stopped as exc:
            return ActionResult(ok=False, stopped=True, error=f"request {exc.why}"), False
        except httpx.HTTPError as exc:
            return ActionResult(ok=False, error=f"{type(exc).__name__}: {exc}"), True
        dropped = dropped_bytes(response)
        # Said on the status line: the output cap keeps the head of the output, so a note after the body is lost.
        note = f" ({dropped} more body bytes not read, limit {MAX_BODY_BYTES})" if dropped else ""
        ctx.output.write(f"HTTP {response.status_code} {response.reason_phrase}{note}\n{response.text}")
        if response.status_code not in params.expect_status:
            expected = _ranges(params.expect_status)
            error = f"{params.method} {httpx.URL(url).path} answered {response.status_code}, expected {expected}"
            return ActionResult(
                ok=False, error=error, data={"status": response.status_code}
            ), response.status_code >= 500
        return ActionResult(ok=True, data={"status": response.status_code}), False

    def dry_run(self, ctx: StepContext) -> ActionResult:
        params = HttpParams.model_validate(ctx.params)
        names = sorted(_headers(ctx, params))
        body = f" with a JSON body of {len(json.dumps(params.json_body))} bytes" if params.json_body is not None else ""
        ctx.output.write(f"would send {params.method} {_url(ctx, params)} with headers {names}{body}")
        return ActionResult(ok=True)


def _endpoint_down(outcome: ActionResult) -> bool:
    """Whether ``outcome`` says the endpoint is down (no answer, or a 5xx): what the breaker counts.

    A 4xx or an unexpected 2xx/3xx is the endpoint answering; a stop is nobody's failure.
    """
    if outcome.ok or outcome.stopped:
        return False
    status = outcome.data.get("status")
    return status is None or int(status) >= 500


def _url(ctx: StepContext, params: HttpParams) -> str:
    base = (ctx.asset.base_url or "").rstrip("/")
    if not base:
        raise ValueError(f"asset {ctx.asset.name} has no base URL")
    return base + params.path


def _headers(ctx: StepContext, params: HttpParams) -> dict[str, str]:
    headers = dict(params.headers)
    token = params.bearer or (ctx.credential if params.basic is None else None)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def _basic(params: HttpParams) -> httpx.BasicAuth | None:
    import httpx

    return httpx.BasicAuth(params.basic.username, params.basic.password) if params.basic else None


def _ranges(codes: list[int]) -> str:
    return "2xx" if codes == list(range(200, 300)) else ", ".join(str(c) for c in codes)
