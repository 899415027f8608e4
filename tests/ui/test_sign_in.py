"""The sign-in page (passwords, the throttle, demo accounts), idle expiry, and the sidebar's Sign out."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from streamlit.testing.v1 import AppTest

import core
from core.ops.setup import DEMO_PASSWORD
from tests.factories import throttle_ends_in
from tests.ui.conftest import APP, APP_TIMEOUT_S, OpenConsole, button, shown
from ui import state
from ui.components import sso


def _sign_in(at: AppTest, username: str, password: str, tenant: str = "") -> AppTest:
    at.text_input(key=state.SIGN_IN_USERNAME).input(username)
    at.text_input(key=state.SIGN_IN_PASSWORD).input(password)
    at.text_input(key=state.SIGN_IN_TENANT).input(tenant)
    button(at, "Sign in").click().run()
    assert not at.exception
    return at


def test_signed_out_console_shows_only_sign_in_with_the_demo_accounts(console: OpenConsole) -> None:
    at = console()
    assert [t.value for t in at.title] == ["Sign in"]
    assert any(DEMO_PASSWORD in c.value for c in at.caption)
    assert at.button(key=f"{state.DEMO_BUTTON}.demo.alice")


def test_demo_button_signs_in_alice_and_opens_executions(console: OpenConsole) -> None:
    at = console()
    at.button(key=f"{state.DEMO_BUTTON}.demo.alice").click().run()
    assert not at.exception
    who = at.session_state[state.PRINCIPAL]
    assert (who.username, who.tenant, who.role.value) == ("alice", "demo", "operator")
    assert [t.value for t in at.title] == ["Executions"]


def test_the_right_password_signs_in(console: OpenConsole) -> None:
    at = _sign_in(console(), "alice", DEMO_PASSWORD)
    assert at.session_state[state.PRINCIPAL].username == "alice"


def test_a_wrong_password_is_refused_without_saying_which_part_was_wrong(console: OpenConsole) -> None:
    at = _sign_in(console(), "alice", "not-the-password")
    assert state.PRINCIPAL not in at.session_state
    assert [shown(e.value) for e in at.error] == ["invalid username or password"]
    at = _sign_in(console(), "nobody", "not-the-password")
    assert [shown(e.value) for e in at.error] == ["invalid username or password"]


def test_repeated_failures_throttle_without_saying_so_and_the_right_password_works_after(
    console: OpenConsole, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Throttled looks exactly like a wrong password; after the wait bob signs in (nobody can lock him out)."""
    monkeypatch.setenv("OPSC_LOGIN_MAX_FAILURES", "2")
    core.get_settings.cache_clear()
    at = console()
    for _ in range(2):
        _sign_in(at, "bob", "guess-guess")
    throttle_ends_in("bob", dt.timedelta(minutes=5))  # inside the wait, however long the runs above took
    _sign_in(at, "bob", DEMO_PASSWORD)
    assert state.PRINCIPAL not in at.session_state
    assert [shown(e.value) for e in at.error] == ["invalid username or password"]
    throttle_ends_in("bob", -dt.timedelta(seconds=1))  # the wait is over
    _sign_in(at, "bob", DEMO_PASSWORD)
    assert at.session_state[state.PRINCIPAL].username == "bob"


def test_user_of_two_tenants_must_name_one_then_gets_that_tenant(console: OpenConsole) -> None:
    at = _sign_in(console(), "admin", DEMO_PASSWORD)
    assert state.PRINCIPAL not in at.session_state
    assert any("several tenants" in shown(e.value) for e in at.error)
    _sign_in(at, "admin", DEMO_PASSWORD, "globex")
    assert at.session_state[state.PRINCIPAL].tenant == "globex"


def test_an_idle_session_expires(console: OpenConsole) -> None:
    at = console("alice")
    at.session_state[state.LAST_SEEN] = time.time() - core.get_settings().session_idle_s - 5
    at.run()
    assert not at.exception
    assert state.PRINCIPAL not in at.session_state
    assert [t.value for t in at.title] == ["Sign in"]
    assert any("session expired" in shown(s.value) for s in at.success)


def test_sign_out_forgets_the_principal_and_returns_to_sign_in(console: OpenConsole) -> None:
    at: AppTest = console("alice")
    at.sidebar.button(key=state.SIGN_OUT).click().run()
    assert not at.exception
    assert state.PRINCIPAL not in at.session_state
    assert [t.value for t in at.title] == ["Sign in"]


def test_single_sign_on_is_offered_only_when_an_identity_provider_is_configured(console: OpenConsole) -> None:
    assert not [b for b in console().button if b.key == state.SSO_BUTTON]
    at = AppTest.from_file(str(APP), default_timeout=APP_TIMEOUT_S)
    at.secrets["auth"] = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "x" * 32}
    at.run()
    assert not at.exception
    assert at.button(key=state.SSO_BUTTON).label == "Sign in with single sign-on"


class FakeUser(dict[str, object]):
    """Stands in for ``st.user`` after an OIDC login: no identity provider can run here (say so: a test double)."""


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        ({"is_logged_in": False}, None),
        ({"is_logged_in": True, "preferred_username": "Alice", "email": "x@example.com"}, "alice"),
        ({"is_logged_in": True, "email": "bob@example.com"}, "bob"),
        ({"is_logged_in": True}, None),
    ],
)
def test_the_identity_providers_claims_name_the_local_user(
    monkeypatch: pytest.MonkeyPatch, claims: dict[str, object], expected: str | None
) -> None:
    monkeypatch.setattr(sso.st, "user", FakeUser(claims))
    assert sso.sso_username() == expected


def test_a_password_change_signs_out_a_session_signed_in_before_it(console: OpenConsole) -> None:
    """bob signed in with his password; an admin resets it: bob's next rerun is the sign-in page."""
    at = console()
    at.button(key=f"{state.DEMO_BUTTON}.demo.bob").click().run()
    assert at.session_state[state.PRINCIPAL].auth == "password"
    core.set_password(core.principal("admin", "demo"), "bob", "a-brand-new-password")
    at.run()
    assert not at.exception
    assert state.PRINCIPAL not in at.session_state
    assert [t.value for t in at.title] == ["Sign in"]
    assert any("no longer valid" in shown(s.value) for s in at.success)
    _sign_in(at, "bob", "a-brand-new-password")
    assert at.session_state[state.PRINCIPAL].username == "bob"


def test_a_principal_built_by_hand_is_signed_out(console: OpenConsole) -> None:
    """Putting a forged Principal in the session gets nothing: the console signs it out on the rerun."""
    real = core.principal("admin", "demo")
    at = AppTest.from_file(str(APP), default_timeout=APP_TIMEOUT_S)
    at.session_state[state.PRINCIPAL] = core.Principal(**real.model_dump(exclude={"proof"}))
    at.run()
    assert not at.exception
    assert state.PRINCIPAL not in at.session_state and [t.value for t in at.title] == ["Sign in"]
