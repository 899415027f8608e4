"""Console addresses and sessions that survive reload (issue 16 item 2), in AppTest.

The browser's part is played for real where AppTest allows: the redirect the page renders after sign-in is
followed into the cookie route (ui/session_routes.py, through Starlette's TestClient), and the cookie it sets is
what the next "reload" (a fresh AppTest: a new Streamlit session) presents. AppTest cannot seed cookies itself
(Streamlit reads them from the WebSocket's request), so the test stands in for the browser at that one seam,
``session_cookie.presented_token``, which is where an attacker's cookie arrives too.
"""

from __future__ import annotations

import json
import re
import warnings
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import update
from sqlmodel import col
from starlette.applications import Starlette

with warnings.catch_warnings():  # Starlette suggests httpx2 for its TestClient; httpx is what this project has
    warnings.simplefilter("ignore")  # StarletteDeprecationWarning: its own class
    from starlette.testclient import TestClient
from streamlit.testing.v1 import AppTest

import core
from core.ops.setup import DEMO_RUNBOOKS
from core.transactions import session_scope
from db.clock import utcnow
from db.tables import ConsoleSession
from tests.engine_support import drive
from tests.ui.conftest import APP, APP_TIMEOUT_S, MODIFY_PLAN, shown, submit, texts
from ui import session_cookie, state
from ui.session_routes import ROUTES

EXECUTIONS = "ui/pages/executions.py"
DASHBOARD = "ui/pages/dashboard.py"
APPROVALS = "ui/pages/approvals.py"
DLQ = "ui/pages/dlq.py"
FETCH = re.compile(r"fetch\((\"[^\"]+\"), (\{.*\})\);")
OURS = {session_cookie.REQUEST_HEADER: session_cookie.REQUEST_HEADER_VALUE}  # what the page's own fetch adds


class Browser:
    """The cookie jar of one browser: what the cookie route set, presented by every tab it opens."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.cookie: str | None = None
        self.routes = TestClient(Starlette(routes=ROUTES), base_url="http://console.test")
        monkeypatch.setattr(session_cookie, "presented_token", lambda: self.cookie)

    def fetch(self, at: AppTest) -> int:
        """Make the background request the page rendered (to a cookie route), keep what it set; its status."""
        [(url, options)] = [
            (json.loads(m[1]), json.loads(m[2])) for h in at.get("html") if (m := FETCH.search(h.proto.body))
        ]
        response = self.routes.get(url, headers=options.get("headers", {}), follow_redirects=False)
        set_cookie = response.headers.get("set-cookie", "").lower()
        if set_cookie.startswith(f"{session_cookie.COOKIE}="):
            assert "httponly" in set_cookie and "samesite=lax" in set_cookie and "path=/" in set_cookie
            self.cookie = None if "max-age=0" in set_cookie else response.cookies[session_cookie.COOKIE]
        return response.status_code

    def open(self, page: str | None = None, **query: str) -> AppTest:
        """A new tab (or a reload): a fresh Streamlit session on ``page`` with ``query`` in its address."""
        at = AppTest.from_file(str(APP), default_timeout=APP_TIMEOUT_S)
        for key, value in query.items():
            at.query_params[key] = value
        if page is None:
            at.run()
        else:
            at.switch_page(page).run()
        assert not at.exception
        return at


@pytest.fixture
def browser(sqlite_db: str, monkeypatch: pytest.MonkeyPatch) -> Browser:
    return Browser(monkeypatch)


def titles(at: AppTest) -> list[str]:
    return [t.value for t in at.title]


def signed_in_as(browser: Browser, username: str, tenant: str = "demo") -> AppTest:
    """Sign in through the sign-in page's demo button, and let the browser store the cookie."""
    at = browser.open()
    at.button(key=f"{state.DEMO_BUTTON}.{tenant}.{username}").click().run()
    assert not at.exception
    assert browser.fetch(at) == 204
    assert browser.cookie is not None
    return at


def test_a_reload_keeps_the_session_and_the_page(browser: Browser) -> None:
    """F5 on /dashboard: a new Streamlit session, signed in from the cookie, on the Dashboard (no Page not found)."""
    signed_in_as(browser, "alice")
    reloaded = browser.open(DASHBOARD)
    assert titles(reloaded) == ["Dashboard"]
    assert reloaded.session_state[state.PRINCIPAL].username == "alice"
    second_tab = browser.open(EXECUTIONS)
    assert titles(second_tab) == ["Executions"]


def test_a_deep_link_opened_signed_out_lands_on_it_after_sign_in(browser: Browser) -> None:
    pending = submit("alice", "deep", MODIFY_PLAN)
    at = browser.open(EXECUTIONS, execution=pending.execution_id[:8])  # the 8 characters the console shows
    assert titles(at) == ["Sign in"]  # in place: the address stays
    assert pending.plan_hash not in texts(at)
    at.button(key=f"{state.DEMO_BUTTON}.demo.bob").click().run()
    assert titles(at) == ["Executions"]
    assert at.selectbox(key=state.EXECUTION_PICK).value == pending.execution_id
    assert pending.plan_hash in texts(at)
    assert browser.fetch(at) == 204  # the cookie, in the background: the browser stays on this address


def test_an_address_opens_an_execution_beyond_the_lists_first_page(browser: Browser) -> None:
    oldest = submit("alice", "oldest")
    for i in range(50):
        submit("alice", f"newer-{i:02d}")
    signed_in_as(browser, "alice")
    at = browser.open(EXECUTIONS, execution=oldest.execution_id)
    assert at.selectbox(key=state.EXECUTION_PICK).value == oldest.execution_id
    assert oldest.plan_hash in texts(at)
    assert f"/executions?execution={oldest.execution_id}" in texts(at)  # the link to copy


def test_picking_an_execution_puts_it_in_the_address(browser: Browser) -> None:
    first, second = submit("alice", "first"), submit("alice", "second")
    signed_in_as(browser, "alice")
    at = browser.open(EXECUTIONS)
    at.selectbox(key=state.EXECUTION_PICK).select(second.execution_id).run()
    assert at.query_params["execution"] == second.execution_id
    reloaded = browser.open(EXECUTIONS, execution=at.query_params["execution"])
    assert reloaded.selectbox(key=state.EXECUTION_PICK).value == second.execution_id
    assert first.execution_id != second.execution_id


def test_an_address_of_another_tenants_execution_opens_nothing(browser: Browser) -> None:
    theirs = submit("mallory", "globex-private", tenant="globex")
    signed_in_as(browser, "alice")
    at = browser.open(EXECUTIONS, execution=theirs.execution_id)
    assert at.selectbox(key=state.EXECUTION_PICK).value is None
    assert "globex-private" not in texts(at) and theirs.plan_hash not in texts(at)
    assert any("not found" in shown(e.value) for e in at.error)


def test_approvals_and_dlq_addresses_open_their_entry(browser: Browser) -> None:
    urgent = submit("alice", "urgent", MODIFY_PLAN)
    named = submit("alice", "named", MODIFY_PLAN)
    signed_in_as(browser, "bob")
    at = browser.open(APPROVALS, execution=named.execution_id[:8])
    assert at.selectbox(key=state.APPROVAL_PICK).value == named.execution_id
    assert urgent.execution_id != named.execution_id
    decided = browser.open(APPROVALS, execution="0123456789abcdef0123456789abcdef")
    assert any("not waiting for your decision" in shown(i.value) for i in decided.info)

    failing = next(plan for name, _d, plan in DEMO_RUNBOOKS if name == "Failing check")
    failed = core.submit(core.principal("alice", "demo"), failing).execution
    core.approve(core.principal("bob", "demo"), failed.execution_id)
    drive(failed.execution_id)
    browser.cookie = None  # another browser: alice's
    signed_in_as(browser, "alice")
    dlq = browser.open(DLQ, execution=failed.execution_id)
    assert dlq.multiselect(key=state.DLQ_PICK).value == [failed.execution_id]


# The session token from the attacker's side ------------------------------------------------------------------


def refused(at: AppTest, reason: str) -> None:
    assert titles(at) == ["Sign in"]
    assert state.PRINCIPAL not in at.session_state
    assert any(reason in shown(s.value) for s in at.success), [s.value for s in at.success]


def test_a_forged_or_altered_cookie_signs_nobody_in(browser: Browser) -> None:
    signed_in_as(browser, "alice")
    real = browser.cookie
    assert real is not None
    session_id = real.split(".")[1]
    for forged in (real[:-3] + "AAA", f"opsc1.{'0' * 32}.{real.rsplit('.', 1)[1]}", f"opsc1.{session_id}.", "admin"):
        browser.cookie = forged
        refused(browser.open(DASHBOARD), "not valid")


def test_a_cookie_of_another_tenant_is_that_tenant_only(browser: Browser) -> None:
    """mallory's own cookie signs her in to globex: demo's executions stay out of reach, by list or by address."""
    ours = submit("alice", "demo-only")
    signed_in_as(browser, "mallory", "globex")
    at = browser.open(EXECUTIONS, execution=ours.execution_id)
    who = at.session_state[state.PRINCIPAL]
    assert (who.username, who.tenant) == ("mallory", "globex")
    assert "demo-only" not in texts(at) and ours.plan_hash not in texts(at)
    # Pointing her session row at demo (database write access) breaks its MAC instead of opening demo.
    with session_scope() as session:
        demo_id = core.principal("alice", "demo").tenant_id
        session.execute(
            update(ConsoleSession)
            .where(col(ConsoleSession.id) == (browser.cookie or "").split(".")[1])
            .values(tenant_id=demo_id)
        )
    refused(browser.open(EXECUTIONS), "not valid")


def test_signing_out_in_one_tab_signs_out_the_others(browser: Browser) -> None:
    first = signed_in_as(browser, "alice")
    second = browser.open(EXECUTIONS)
    assert second.session_state[state.PRINCIPAL].username == "alice"
    first.sidebar.button(key=state.SIGN_OUT).click().run()
    assert titles(first) == ["Sign in"]
    token = browser.cookie
    assert browser.fetch(first) == 204  # the cookie route dropped the cookie
    assert browser.cookie is None
    second.run()  # the other tab's next run: its token was revoked
    refused(second, "signed out")
    browser.cookie = token  # a copy of the cookie kept from before the sign-out
    refused(browser.open(DASHBOARD), "signed out")


def test_an_idle_cookie_expires_and_says_so(browser: Browser) -> None:
    signed_in_as(browser, "alice")
    with session_scope() as session:
        idle = timedelta(seconds=core.get_settings().session_idle_s + 5)
        session.execute(update(ConsoleSession).values(last_seen_at=utcnow() - idle))
    refused(browser.open(DASHBOARD), "inactivity")


def test_a_password_change_ends_the_cookies_session(browser: Browser) -> None:
    signed_in_as(browser, "bob")
    core.set_password(core.principal("admin", "demo"), "bob", "a-brand-new-password")
    refused(browser.open(DASHBOARD), "password changed")


def _fresh_code(browser: Browser) -> str:
    at = browser.open()
    at.button(key=f"{state.DEMO_BUTTON}.demo.alice").click().run()
    [url] = [json.loads(m[1]) for h in at.get("html") if (m := FETCH.search(h.proto.body))]
    return parse_qs(urlsplit(url).query)["code"][0]


def test_the_cookie_route_refuses_a_used_or_made_up_code(browser: Browser) -> None:
    code = _fresh_code(browser)
    first = browser.routes.get("/opsc-session/start", params={"code": code}, headers=OURS)
    assert first.status_code == 204 and first.cookies.get(session_cookie.COOKIE)
    replay = browser.routes.get("/opsc-session/start", params={"code": code}, headers=OURS)
    assert replay.status_code == 403 and "set-cookie" not in replay.headers
    made_up = browser.routes.get("/opsc-session/start", params={"code": "guess"}, headers=OURS)
    assert made_up.status_code == 403 and "set-cookie" not in made_up.headers


def test_the_cookie_routes_redirect_nowhere(browser: Browser) -> None:
    """No ``next`` to abuse: whatever the query, the routes answer in place and never send the browser on."""
    code = _fresh_code(browser)
    response = browser.routes.get(
        "/opsc-session/start", params={"code": code, "next": "https://evil.test/"}, headers=OURS
    )
    assert response.status_code == 204 and "location" not in response.headers
    ended = browser.routes.get("/opsc-session/end", params={"next": "//evil.test"}, headers=OURS)
    assert "location" not in ended.headers


@pytest.mark.parametrize("site", ["cross-site", "same-site"])
def test_another_site_cannot_make_the_browser_sign_in_or_out(browser: Browser, site: str) -> None:
    """Login CSRF: a page elsewhere making the visitor's browser trade the attacker's own code gets nothing."""
    code = _fresh_code(browser)
    forced = browser.routes.get("/opsc-session/start", params={"code": code}, headers={"Sec-Fetch-Site": site})
    assert forced.status_code == 403 and "set-cookie" not in forced.headers
    ours = browser.routes.get(
        "/opsc-session/start", params={"code": code}, headers={"Sec-Fetch-Site": "same-origin", **OURS}
    )
    assert ours.status_code == 204 and ours.cookies.get(session_cookie.COOKIE)  # the code was not spent
    token = ours.cookies[session_cookie.COOKIE]
    out = browser.routes.get("/opsc-session/end", headers={"Sec-Fetch-Site": site, **OURS})
    assert out.status_code == 403
    assert core.console_session_principal(token).username == "alice"  # still signed in


def test_a_browser_without_sec_fetch_site_cannot_be_made_to_sign_in_or_out(browser: Browser) -> None:
    """Older browsers send no Sec-Fetch-Site: a link, image or form of another site still cannot add the page's
    header, so the attacker's code is refused (and not spent), and a forced sign-out changes nothing."""
    code = _fresh_code(browser)
    forced = browser.routes.get("/opsc-session/start", params={"code": code}, headers={"Referer": "https://evil.test/"})
    assert forced.status_code == 403 and "set-cookie" not in forced.headers
    ours = browser.routes.get("/opsc-session/start", params={"code": code}, headers=OURS)
    assert ours.status_code == 204
    token = ours.cookies[session_cookie.COOKIE]
    browser.routes.cookies.set(session_cookie.COOKIE, token)
    out = browser.routes.get("/opsc-session/end")
    assert out.status_code == 403 and "set-cookie" not in out.headers
    assert core.console_session_principal(token).username == "alice"  # still signed in


def test_a_tab_watching_an_execution_is_signed_out_when_its_session_ends_elsewhere(browser: Browser) -> None:
    """Its next run refuses the revoked session (the detail's own 2 s refreshes check it as well, without
    counting as activity; AppTest cannot run a fragment on its timer, so that part is read, not run, here)."""
    pending = submit("alice", "watched", MODIFY_PLAN)  # pending_approval: live, so the detail polls
    signed_in_as(browser, "alice")
    watching = browser.open(EXECUTIONS, execution=pending.execution_id)
    assert pending.plan_hash in texts(watching)
    core.end_console_session(browser.cookie or "")  # signed out elsewhere
    watching.run()
    refused(watching, "signed out")


def test_a_refused_cookie_is_dropped_and_not_presented_again_so_a_sign_in_starts_afresh(browser: Browser) -> None:
    """A cookie naming an ended session (its drop cut short by a navigation, say): the first run says why and
    sends the browser to drop it; the tab does not refuse it again on every run; a sign-in then works."""
    signed_in_as(browser, "alice")
    stale = browser.cookie
    core.end_console_session(stale or "")
    tab = browser.open(DASHBOARD)  # a reload: the browser still presents the ended session's cookie
    refused(tab, "signed out")
    assert browser.fetch(tab) == 204 and browser.cookie is None  # the page had the browser drop it
    browser.cookie = stale  # as if the drop never arrived: this tab still sees it
    tab.run()
    assert titles(tab) == ["Sign in"] and not any("no longer valid" in shown(s.value) for s in tab.success)
    tab.button(key=f"{state.DEMO_BUTTON}.demo.bob").click().run()
    assert not tab.exception
    assert browser.fetch(tab) == 204 and browser.cookie not in (None, stale)  # a new session's cookie
    assert core.console_session_principal(browser.cookie or "").username == "bob"
