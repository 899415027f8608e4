"""Masking at every sink (DESIGN §3.8): a canary secret used every way a step can leak it appears zero
times in the database, the logs, the events or the console."""

from __future__ import annotations

import base64
import io
import json
import logging
import secrets
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict
from sqlalchemy import text
from sqlmodel import SQLModel
from streamlit.testing.v1 import AppTest

from core import approve, get_execution, list_events, principal, set_secret, submit
from core.actions.context import ActionResult, StepContext
from core.actions.registry import ActionType, _registry, register
from core.safety.masking import LIVE, MASK, Masker, install_log_masking, mask_data, mask_text
from db.engine import session_scope
from db.enums import ActionClass
from db.settings import get_settings
from tests.engine_support import drive
from tests.ui.conftest import texts
from ui import state

CANARY = "cAnArY-7f3a9-s3cr3t"
log = logging.getLogger("opsc.test.leaky")


class LeakyParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: str
    mode: str


class Leaky(ActionType):
    """A test action that tries every way to leak what it is given."""

    name = "leaky"
    params_model = LeakyParams
    default_class = ActionClass.READ

    def run(self, ctx: StepContext) -> ActionResult:
        value = ctx.params["value"]
        log.warning("token=%s", value)  # %-style arguments
        log.warning(f"f-string token {value}")
        if ctx.params["mode"] == "raise":
            raise RuntimeError(f"could not use {value}")
        ctx.output.write(f"echo {value}\nbase64 {base64.b64encode(value.encode()).decode()}\n")
        return ActionResult(ok=True, data={"token": value})


@pytest.fixture
def leaky_action() -> Iterator[None]:
    register(Leaky)
    yield
    _registry.pop("leaky", None)


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    """Everything logged during the test, through a handler that got the masking filter like any other."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    install_log_masking()
    yield buffer
    root.removeHandler(handler)


def _dump_every_table() -> str:
    with session_scope() as session:
        return "\n".join(
            repr(row)
            for table in SQLModel.metadata.sorted_tables
            for row in session.execute(text(f"SELECT * FROM {table.name}"))
        )


def test_canary_secret_never_reaches_a_sink(
    db: str, leaky_action: None, captured_logs: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Echoed, logged (%s and f-string), raised and returned: zero copies in tables, logs, events, console."""
    monkeypatch.setenv("OPSC_RETRY_BACKOFF_S", "0.01")
    get_settings.cache_clear()
    set_secret(principal("admin", "demo"), "canary", CANARY)
    plan = (
        "name: canary\ncontinue_on_error: true\nsteps:\n"
        "  - {name: echo, action: leaky, target: localhost, params: {value: '{{ secret:canary }}', mode: echo}}\n"
        "  - {name: raise, action: leaky, target: localhost, params: {value: '{{ secret:canary }}', mode: raise}}\n"
        "  - {name: env, action: shell, target: localhost, params: {command: [printenv, T], env: {T: '{{ secret:canary }}'}}}\n"
    )
    execution_id = submit(principal("alice", "demo"), plan, background=True).execution.execution_id
    approve(principal("bob", "demo"), execution_id)  # steps with a secret are at least modify (DESIGN §13)
    drive(execution_id)
    alice = principal("alice", "demo")
    view = get_execution(alice, execution_id)
    assert view.status == "partial" and [s.status for s in view.steps][:2] == ["completed", "failed"]
    assert (
        MASK in (view.steps[0].output or "")
        and MASK in (view.steps[1].error or "")
        and view.steps[2].output == f"{MASK}\n"
    )
    logs = captured_logs.getvalue()
    assert "f-string token ***" in logs and "could not use ***" in logs  # the lines were written, masked
    events = "\n".join(e.model_dump_json() for e in list_events(alice, execution_id))
    assert "secrets_read" in events and "canary" in events  # audited by name
    monkeypatch.setenv("OPSC_CONSOLE_WORKER", "0")  # the app runs in this process: no worker threads here
    get_settings.cache_clear()
    at = AppTest.from_file(str(Path(__file__).resolve().parents[2] / "streamlit_app.py"), default_timeout=30)
    at.session_state[state.PRINCIPAL] = principal("admin", "demo")
    at.run()
    at.switch_page("ui/pages/executions.py").run()
    at.selectbox(key=state.EXECUTION_PICK).select(execution_id).run()
    page = texts(at)
    assert execution_id in page and not at.exception
    for sink, content in {"tables": _dump_every_table(), "logs": logs, "events": events, "console": page}.items():
        for form in (CANARY, base64.b64encode(CANARY.encode()).decode()):
            assert content.count(form) == 0, f"{sink} holds the canary"
    assert LIVE.snapshot() == []  # the values left memory with their steps


def test_masker_covers_encodings_patterns_and_structured_keys() -> None:
    """Registered values in plain, base64, URL and JSON forms; credential patterns; sensitive keys."""
    masker = Masker()
    masker.register('p@ss w"rd')
    try:
        for form in (
            'p@ss w"rd',
            base64.b64encode(b'p@ss w"rd').decode(),
            "p%40ss%20w%22rd",
            "p%40ss+w%22rd",
            'p@ss w\\"rd',
        ):
            assert masker.mask(f"x {form} y") == f"x {MASK} y"
            assert mask_text(f"x {form} y") == f"x {MASK} y"  # live while registered
    finally:
        masker.close()
    assert mask_text('p@ss w"rd') == 'p@ss w"rd'  # no longer live
    assert mask_text("curl https://bob:hunter2@example.org") == f"curl {MASK}example.org"
    assert mask_data({"db_password": "x1", "nested": [{"api_key": "k"}], "name": "ok"}) == {
        "db_password": MASK, "nested": [{"api_key": MASK}], "name": "ok"
    }  # fmt: skip


def test_log_filter_masks_args_fstrings_and_tracebacks(captured_logs: io.StringIO) -> None:
    """The filter masks the formatted message and the exception text, on every handler."""
    masker = Masker()
    masker.register("zz-topsecret-zz")
    try:
        log.error("value=%s", "zz-topsecret-zz")
        try:
            raise ValueError("zz-topsecret-zz")
        except ValueError:
            log.exception("failed")
    finally:
        masker.close()
    out = captured_logs.getvalue()
    assert "zz-topsecret-zz" not in out and "value=***" in out and "ValueError: ***" in out


class CredentialEcho(ActionType):
    """A test action that writes the asset credential it was given (to prove it arrives, and is masked)."""

    name = "credential_echo"
    default_class = ActionClass.READ

    def run(self, ctx: StepContext) -> ActionResult:
        ctx.output.write(f"credential={ctx.credential!s}-end")
        return ActionResult(ok=True)


def test_asset_credential_ref_is_resolved_just_in_time_and_masked(db: str) -> None:
    """An asset's credential_ref reaches the runner at step start; stored output shows it masked."""
    from core import Connection, add_asset

    register(CredentialEcho)
    try:
        add_asset(principal("admin", "demo"), "box", Connection.LOCAL, credential_ref="demo_token")
        plan = "name: c\nsteps:\n  - {name: c, action: credential_echo, target: box}\n"
        execution_id = submit(principal("alice", "demo"), plan, background=True).execution.execution_id
        drive(execution_id)
    finally:
        _registry.pop("credential_echo", None)
    view = get_execution(principal("alice", "demo"), execution_id)
    assert view.status == "completed" and view.steps[0].output == f"credential={MASK}-end"
    assert any(
        e.kind == "secrets_read" and "demo_token" in e.message
        for e in list_events(principal("alice", "demo"), execution_id)
    )


PRINT_EVERY_FORM = """\
printenv KEY; echo ==raw
printf '%s\\n' "$KEY" | head -n 3; echo ==head
printenv KEY | rev; echo ==rev
printf %s "$KEY" | rev; echo; echo ==reversed
printenv KEY | xxd -p; echo ==xxd
printenv KEY | base32; echo ==base32
printenv KEY | base64; echo ==base64
python3 -c 'import base64, os; v = os.environ["KEY"].encode(); print(v.hex()); print(base64.b32encode(v).decode())'
echo ==python
exit 3
"""


def _pem_canary() -> str:
    body = textwrap.wrap(base64.b64encode(secrets.token_bytes(400)).decode(), 64)
    return "-----BEGIN OPENSSH PRIVATE KEY-----\n" + "\n".join(body) + "\n-----END OPENSSH PRIVATE KEY-----"


def _printed_forms(value: str) -> set[str]:
    """What PRINT_EVERY_FORM prints of ``value``: whole forms, each key line and every wrapped line."""
    data = (value + "\n").encode()  # printenv adds the newline the tools then encode
    lines = [line for line in value.splitlines() if not line.startswith("-----")]
    forms = {value, value[::-1], value.encode().hex(), base64.b32encode(value.encode()).decode()}
    forms |= set(lines) | {line[::-1] for line in lines}
    for encoded, width in (
        (data.hex(), 60),
        (base64.b32encode(data).decode(), 76),
        (base64.b64encode(data).decode(), 76),
    ):
        forms |= {chunk for chunk in textwrap.wrap(encoded, width) if len(chunk) >= 16}
    return forms


def test_a_shell_step_printing_a_multi_line_secret_in_many_forms_stores_none_of_them(db: str) -> None:
    """A real `shell` step prints a PEM-shaped secret from `{{ secret:NAME }}` via env whole, in part, reversed,
    in hex and base32 (wrapped by xxd/base32/base64 and not) and fails: no form is in its output, error,
    events or any table."""
    pem = _pem_canary()
    set_secret(principal("admin", "demo"), "deploy_key", pem)
    step = {
        "name": "print",
        "action": "shell",
        "target": "localhost",
        "params": {"command": PRINT_EVERY_FORM, "shell": True, "env": {"KEY": "{{ secret:deploy_key }}"}},
    }
    plan = json.dumps({"name": "forms", "steps": [step]})
    alice = principal("alice", "demo")
    execution_id = submit(alice, plan).execution.execution_id
    approve(principal("bob", "demo"), execution_id)  # a shell step with a secret is at least `modify`
    drive(execution_id)
    view = get_execution(alice, execution_id)
    assert view.status == "failed" and view.steps[0].status == "failed", view.error
    output, error = view.steps[0].output or "", view.steps[0].error or ""
    markers = ("==raw", "==head", "==rev", "==reversed", "==xxd", "==base32", "==base64", "==python")
    assert all(marker in output for marker in markers) and output.count(MASK) > 20, output  # it all ran, masked
    events = "\n".join(e.model_dump_json() for e in list_events(alice, execution_id))
    tables = _dump_every_table()
    for form in _printed_forms(pem):
        for sink, content in {"output": output, "error": error, "events": events, "tables": tables}.items():
            assert form not in content, f"{sink} holds a form of the secret: {form[:12]}…"
