"""The sign-in page and the sidebar's Sign out."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from tests.ui.conftest import OpenConsole, button
from ui import state


def test_signed_out_console_shows_only_the_demo_sign_in(console: OpenConsole) -> None:
    at = console()
    assert [t.value for t in at.title] == ["Sign in"]
    assert any("Demo sign-in: pick a user; password sign-in comes later" in w.value for w in at.warning)
    assert not at.exception


def test_demo_button_signs_in_alice_and_opens_executions(console: OpenConsole) -> None:
    at = console()
    at.button(key=f"{state.DEMO_BUTTON}.demo.alice").click().run()
    assert not at.exception
    who = at.session_state[state.PRINCIPAL]
    assert (who.username, who.tenant, who.role.value) == ("alice", "demo", "operator")
    assert [t.value for t in at.title] == ["Executions"]


def test_typed_username_signs_in(console: OpenConsole) -> None:
    at = console()
    at.text_input(key=state.SIGN_IN_USERNAME).input("alice")
    button(at, "Sign in").click().run()
    assert not at.exception
    assert at.session_state[state.PRINCIPAL].username == "alice"


def test_user_of_two_tenants_must_name_one_then_gets_that_tenant(console: OpenConsole) -> None:
    at = console()
    at.text_input(key=state.SIGN_IN_USERNAME).input("admin")
    button(at, "Sign in").click().run()
    assert not at.exception
    assert state.PRINCIPAL not in at.session_state
    assert any("several tenants" in e.value for e in at.error)

    at.text_input(key=state.SIGN_IN_TENANT).input("globex")
    button(at, "Sign in").click().run()
    assert not at.exception
    assert at.session_state[state.PRINCIPAL].tenant == "globex"


def test_unknown_user_is_refused_with_a_message(console: OpenConsole) -> None:
    at = console()
    at.text_input(key=state.SIGN_IN_USERNAME).input("nobody")
    button(at, "Sign in").click().run()
    assert not at.exception
    assert state.PRINCIPAL not in at.session_state
    assert any("nobody" in e.value for e in at.error)


def test_sign_out_forgets_the_principal_and_returns_to_sign_in(console: OpenConsole) -> None:
    at: AppTest = console("alice")
    at.sidebar.button(key=state.SIGN_OUT).click().run()
    assert not at.exception
    assert state.PRINCIPAL not in at.session_state
    assert [t.value for t in at.title] == ["Sign in"]
