"""The engine binds the log context while it processes a step: what an action, the engine and its watcher
log carries the execution, step, tenant, requester, worker and trace, in JSON, masked (DESIGN §3.8)."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator

import pytest
from pydantic import BaseModel, ConfigDict
from sqlmodel import select

from core import approve, engine, principal, set_secret, submit
from core.actions.context import ActionResult, StepContext
from core.actions.registry import ActionType, _registry, register
from core.engine import watch as engine_watch
from core.engine.steps import Outcome
from core.logs import JsonFormatter, set_trace_id
from core.safety.masking import MASK, install_log_masking
from db.engine import session_scope
from db.enums import ActionClass
from db.settings import get_settings
from db.tables import Tenant, User
from tests.engine_support import drive, recording_dispatcher

SECRET = "ctx-S3cr3t-9b1e"
action_log = logging.getLogger("opsc.test.chatty")


class ChattyParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: str
    mode: str = "ok"


class Chatty(ActionType):
    """Logs what it is given, from the step's thread, then succeeds or raises."""

    name = "chatty"
    params_model = ChattyParams
    default_class = ActionClass.READ

    def run(self, ctx: StepContext) -> ActionResult:
        action_log.warning("working with %s", ctx.params["value"])
        if ctx.params["mode"] == "raise":
            raise RuntimeError(f"broke on {ctx.params['value']}")
        if ctx.params["mode"] == "slow":
            time.sleep(0.3)  # several watcher ticks
        return ActionResult(ok=True)


@pytest.fixture
def chatty() -> Iterator[None]:
    register(Chatty)
    yield
    _registry.pop("chatty", None)


@pytest.fixture
def json_lines(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """Every record of the process as the JSON format writes it, behind the masking filter."""
    monkeypatch.setenv("OPSC_CHAIN_STEPS", "0")
    monkeypatch.setenv("OPSC_RETRY_BACKOFF_S", "0.01")
    get_settings.cache_clear()
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    install_log_masking()
    yield buffer
    root.removeHandler(handler)
    get_settings.cache_clear()


def _records(buffer: io.StringIO, logger: str) -> list[dict[str, object]]:
    return [r for r in (json.loads(line) for line in buffer.getvalue().splitlines()) if r["logger"] == logger]


def _ids() -> tuple[str, str]:
    with session_scope() as session:
        tenant = session.exec(select(Tenant.id).where(Tenant.name == "demo")).one()
        alice = session.exec(select(User.id).where(User.username == "alice")).one()
    return tenant, alice


def test_records_logged_during_a_step_carry_its_context_and_are_masked(
    db: str, chatty: None, json_lines: io.StringIO
) -> None:
    """The action's and the engine's records name the execution, the step, the tenant, the requester, the
    worker and one trace id per process() call; the secret the step resolved appears only as ***."""
    set_secret(principal("admin", "demo"), "ctx_token", SECRET)
    plan = (
        "name: ctx\ncontinue_on_error: true\nsteps:\n"
        "  - {name: first, action: chatty, target: localhost, params: {value: '{{ secret:ctx_token }}'}}\n"
        "  - {name: second, action: chatty, target: localhost, action_class: modify,"
        " params: {value: '{{ secret:ctx_token }}', mode: raise}}\n"
    )
    execution_id = submit(principal("alice", "demo"), plan, background=True).execution.execution_id
    approve(principal("bob", "demo"), execution_id)
    with recording_dispatcher():
        drive(execution_id, worker_id="ctx-worker")
    assert SECRET not in json_lines.getvalue()
    tenant, alice = _ids()
    first, second = _records(json_lines, "opsc.test.chatty")
    for index, record in enumerate((first, second)):
        assert record["message"] == f"working with {MASK}"
        assert (record["execution_id"], record["step"], record["tenant"], record["actor"], record["worker"]) == (
            execution_id,
            index,
            tenant,
            alice,
            "ctx-worker",
        )
    assert first["trace_id"] and second["trace_id"] and first["trace_id"] != second["trace_id"]
    [raised] = _records(json_lines, "core.engine.watch")  # the engine's record of the runner's exception
    assert raised["step"] == 1 and raised["trace_id"] == second["trace_id"] and MASK in str(raised["message"])


def test_a_bound_message_id_is_the_trace_id_and_the_context_ends_with_the_call(
    db: str, chatty: None, json_lines: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the broker message's id bound (worker middleware), the step's records use it, the watcher
    thread's too; after the call nothing of the execution remains bound."""
    watch = engine_watch.watch

    def logging_watch(*args: object) -> None:
        logging.getLogger("opsc.test.watcher").warning("watching")
        watch(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(engine_watch, "watch", logging_watch)
    execution_id = submit(
        principal("alice", "demo"),
        "name: one\nsteps:\n  - {name: only, action: chatty, target: localhost, params: {value: plain, mode: slow}}\n",
        background=True,
    ).execution.execution_id
    set_trace_id("message-123")
    try:
        with recording_dispatcher():
            assert engine.process(execution_id, worker_id="w") is Outcome.FINISHED
        logging.getLogger("opsc.test.chatty").warning("between messages")
    finally:
        set_trace_id(None)
    during, after = _records(json_lines, "opsc.test.chatty")
    assert (during["trace_id"], during["execution_id"], during["step"]) == ("message-123", execution_id, 0)
    assert (after["trace_id"], after["execution_id"], after["step"]) == ("message-123", None, None)
    [watcher] = _records(json_lines, "opsc.test.watcher")
    assert (watcher["thread"], watcher["execution_id"], watcher["step"]) == ("opsc-watch", execution_id, 0)
