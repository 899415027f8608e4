"""The demo story in a real browser (Debian's Chromium driven by Playwright) against `opsconductor up
--demo`: alice submits the log-rotation runbook, bob approves it, and the execution is watched to its end
live. Screenshots go to $OPSC_SCREENSHOTS_DIR (docs/screenshots for the README) or the test's tmp dir.

The approval is measured as an approver lives it (issue 13), in a 1440×900 window: after opening Approvals,
the commands that will run, who asks, the risk and the time left are on the screen without scrolling, and
approving takes at most two clicks (one when the item is the most urgent, which the page opens at once)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]  # fmt: skip
TIMEOUT_MS = 30_000
VIEWPORT = {"width": 1440, "height": 900}
MAX_APPROVAL_CLICKS = 2
CONSOLE_ENV: dict[str, str] = {}  # the console's environment (its database): the CLI acts on it beside the browser

playwright = pytest.importorskip("playwright.sync_api")
if not CHROMIUM.exists():
    pytest.skip("no /usr/bin/chromium (apt-get install -y chromium; .ci/run does it)", allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def console_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`opsconductor up --demo` on a fresh SQLite file (embedded worker), until its health check answers."""
    tmp_path = tmp_path_factory.mktemp("console")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"OPSC_REDIS_URL", "OPSC_SECRET_KEY"}}
    env |= {"OPSC_DATABASE_URL": f"sqlite:///{tmp_path / 'opsc.db'}", "OPSC_CONSOLE_WORKER": "1"}
    CONSOLE_ENV.clear()
    CONSOLE_ENV.update(env)
    log = open(tmp_path / "console.log", "wb")  # noqa: SIM115  closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "ui.cli", "up", "--demo", "--port", str(port)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/_stcore/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.3)
    else:
        proc.kill()
        raise AssertionError((tmp_path / "console.log").read_text())
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture
def page(console_url: str, tmp_path: Path) -> Iterator[Any]:
    """A fresh browser page on the console's sign-in page."""
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        page = browser.new_context(viewport=VIEWPORT).new_page()  # a context: room for a second tab
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(console_url)
        yield page
        browser.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where screenshots go: $OPSC_SCREENSHOTS_DIR (docs/screenshots for the README) or the test's tmp dir."""
    folder = Path(os.environ.get("OPSC_SCREENSHOTS_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def submit_runbook(page: Any, runbook: str, plan_name: str, screenshot: Path | None = None) -> str:
    """As alice: pick ``runbook`` from the library, submit it, sign out; returns the execution id."""
    sign_in_as(page, "alice · operator")
    page.get_by_role("link", name="Submit").click()
    page.get_by_role("combobox", name=re.compile("Runbook library")).click()
    page.get_by_role("option", name=re.compile(f"^{runbook}")).click()
    page.get_by_text("Approval level").first.wait_for()  # validated and previewed as loaded
    if screenshot is not None:
        page.screenshot(path=str(screenshot), full_page=True)
    page.get_by_role("button", name="Submit", exact=True).click()
    submitted = page.get_by_text(re.compile(rf"Submitted {plan_name} as execution [0-9a-f]{{32}}")).first
    submitted.wait_for()
    execution_id: str = re.search(r"[0-9a-f]{32}", submitted.inner_text()).group(0)  # type: ignore[union-attr]
    page.get_by_role("button", name="Sign out").click()
    return execution_id


class Clicks:
    """Counts the clicks made through it (what an approver's hand does; typing is not a click)."""

    def __init__(self) -> None:
        self.count = 0

    def on(self, locator: Any) -> None:
        self.count += 1
        locator.click()


def approve_as_bob(
    page: Any, execution_id: str, plan_name: str, screenshot: Path | None = None, *, command: str | None = None
) -> int:
    """As bob: open the inbox (its badge counts the waiting decision), review the execution, approve it.

    Returns the clicks it took after Approvals opened. ``command``: text of the plan that must be on the
    approval screen, in view, beside the Approve button, before it is clicked.
    """
    sign_in_as(page, "bob · approver")
    page.get_by_role("link", name=re.compile(r"^Approvals \(\d+\)")).click()
    clicks = Clicks()
    review = page.get_by_role("combobox", name=re.compile("Review"))
    page.get_by_role("button", name="Approve", exact=True).wait_for()  # the most urgent item's review is open
    if not page.get_by_text(execution_id).count():
        clicks.on(review)  # not the most urgent: pick it
        clicks.on(page.get_by_role("option", name=re.compile(execution_id[:8])))
    page.get_by_text(execution_id).first.wait_for()  # the review of this execution is open
    approve = page.get_by_role("button", name="Approve", exact=True)
    approve.wait_for()
    if command is not None:
        shown = page.get_by_text(command).first
        playwright.expect(shown).to_be_in_viewport()
        for fact in ("requested by alice", "Risk", "Time left"):
            playwright.expect(page.get_by_text(fact).first).to_be_in_viewport()
        playwright.expect(approve).to_be_in_viewport(ratio=1)  # wholly on screen: no scrolling needed to decide
    if screenshot is not None:
        page.screenshot(path=str(screenshot))  # the one screen the approver sees
    clicks.on(approve)
    page.get_by_text(re.compile(f"Approved {plan_name}")).wait_for()
    return clicks.count


def test_submit_approve_and_watch_it_complete_live(page: Any, shots: Path) -> None:
    execution_id = submit_runbook(page, "Log rotation", "log-rotation", shots / "1-submit.png")
    command = "would run cp /tmp/opsconductor-demo/logs/app.log /tmp/opsconductor-demo/logs/app.log.1 on localhost"
    clicks = approve_as_bob(page, execution_id, "log-rotation", shots / "2-approve.png", command=command)
    print(f"approving took {clicks} click(s) after opening Approvals")  # shown with -s: the measured story
    assert clicks <= MAX_APPROVAL_CLICKS, f"approving took {clicks} clicks after opening Approvals"
    # The execution runs on the console's embedded worker; its detail refreshes itself until the end.
    page.get_by_role("link", name="Executions").click()
    page.get_by_role("combobox", name=re.compile("Open execution")).click()
    page.get_by_role("option", name=re.compile(execution_id[:8])).click()
    page.get_by_text(re.compile(r"log-rotation · completed")).wait_for(timeout=60_000)
    page.screenshot(path=str(shots / "3-completed.png"), full_page=True)
    assert Path("/tmp/opsconductor-demo/logs/app.log.1").exists()


def test_a_failing_runbook_lands_in_the_dlq_and_is_requeued(page: Any, shots: Path) -> None:
    execution_id = submit_runbook(page, "Failing check", "failing-check")
    approve_as_bob(page, execution_id, "failing-check")
    page.get_by_role("button", name="Sign out").click()
    # alice finds it in the dead-letter queue once the embedded worker has failed it, and requeues it.
    sign_in_as(page, "alice · operator")
    page.get_by_role("link", name="Dead-letter queue").click()
    deadline = time.monotonic() + 30
    while not page.get_by_role("combobox", name=re.compile("Entries")).count():
        assert time.monotonic() < deadline, "the failed execution never reached the DLQ"
        page.wait_for_timeout(500)
        page.get_by_role("link", name="Dead-letter queue").click()
    page.get_by_role("combobox", name=re.compile("Entries")).click()
    page.get_by_role("option", name=re.compile(execution_id[:8])).click()
    page.keyboard.press("Escape")
    page.get_by_text("Yes, run the selected executions again").click()
    requeue = page.get_by_role("button", name="Requeue")
    playwright.expect(requeue).to_be_enabled()
    page.screenshot(path=str(shots / "4-dlq.png"), full_page=True)
    requeue.click()
    page.get_by_text("Requeued 1 of 1.").wait_for()


def test_a_runbook_with_inputs_is_filled_in_the_form_and_runs_with_the_values(page: Any) -> None:
    """alice picks "Restart a service", chooses a service and types a reason in the form; bob's approval
    screen shows the commands with those values; the run leaves the chosen service's marker and prints the
    reason."""
    marker = Path("/tmp/opsconductor-demo/logs/cron.restarted")
    marker.unlink(missing_ok=True)
    sign_in_as(page, "alice · operator")
    page.get_by_role("link", name="Submit").click()
    page.get_by_role("combobox", name=re.compile("Runbook library")).click()
    page.get_by_role("option", name=re.compile("^Restart a service")).click()
    page.get_by_text("Preview: restart nginx").wait_for()  # the defaults, previewed as loaded
    reason = page.get_by_role("textbox", name="reason")
    reason.fill("from the browser")
    reason.press("Enter")
    page.get_by_role("combobox", name=re.compile("^service")).click()
    page.get_by_role("option", name="cron", exact=True).click()
    page.get_by_text("Preview: restart cron").wait_for()
    playwright.expect(reason).to_have_value("from the browser")
    page.get_by_role("button", name="Submit", exact=True).click()
    submitted = page.get_by_text(re.compile(r"Submitted restart cron as execution [0-9a-f]{32}")).first
    submitted.wait_for()
    execution_id: str = re.search(r"[0-9a-f]{32}", submitted.inner_text()).group(0)  # type: ignore[union-attr]
    page.get_by_role("button", name="Sign out").click()
    clicks = approve_as_bob(
        page, execution_id, "restart cron", command="would run printf 'reason: %s' 'from the browser'"
    )
    assert clicks <= MAX_APPROVAL_CLICKS
    page.get_by_role("link", name="Executions").click()
    page.get_by_role("combobox", name=re.compile("Open execution")).click()
    page.get_by_role("option", name=re.compile(execution_id[:8])).click()
    page.get_by_text(re.compile(r"restart cron · completed")).wait_for(timeout=60_000)
    open_step(page, re.compile(r"2\. reason · shell on localhost · completed"), "reason: from the browser")
    assert marker.exists()


def open_step(page: Any, header: re.Pattern[str], output: str, bound_s: float = 60) -> None:
    """Expand the step whose header matches and wait until ``output`` shows in it. A rerun of the page that
    lands just after the click (the detail's refresh, or the one when the execution ends) draws the step
    closed again, so the click is repeated until the output is visible, within ``bound_s``."""
    deadline = time.monotonic() + bound_s
    shown = page.get_by_text(output).first
    step = page.locator("details", has=page.get_by_text(header)).first  # Streamlit's expander
    while True:
        if step.get_attribute("open") is None:  # closed (a click on an open one would close it)
            page.get_by_text(header).click()
        try:
            shown.wait_for(timeout=3_000)
            return
        except playwright.Error:
            if time.monotonic() > deadline:
                raise


def click_until_shown(page: Any, button: Any, shown: Any, *, still: str, bound_s: float = 60) -> None:
    """Click ``button`` until ``shown`` appears. A click that lands while the page re-runs (the detail's refresh)
    is dropped by Streamlit; it is repeated only while the address still holds ``still`` (nothing happened):
    once the address moved on, ``shown`` must appear (a confirmation lost after the action would be a bug)."""
    deadline = time.monotonic() + bound_s
    while True:
        button.click()
        try:
            shown.wait_for(timeout=5_000)
            return
        except playwright.Error:
            if still not in page.url or time.monotonic() > deadline:
                shown.wait_for(timeout=10_000)  # the action was taken: its confirmation must show
                return


def sign_in_as(page: Any, demo_button: str) -> None:
    """Click a demo account's button and wait until the browser holds the session's cookie (fetched in the
    background, no reload)."""
    with page.expect_response(lambda r: "/opsc-session/start" in r.url and r.status == 204):
        page.get_by_role("button", name=demo_button).click()


def session_cookie(page: Any) -> dict[str, Any] | None:
    return next((c for c in page.context.cookies() if c["name"] == "opsc_session"), None)


def test_addresses_survive_reload_and_a_deep_link_opens_an_execution(page: Any, console_url: str, shots: Path) -> None:
    """Issue 16 item 2: F5 keeps the session and the page; a second tab is signed in; a link to an execution
    opened signed out shows the sign-in form in place, then that execution; signing out ends every tab."""
    execution_id = submit_runbook(page, "Disk usage", "disk-usage")
    sign_in_as(page, "alice · operator")
    cookie = session_cookie(page)
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    assert not page.evaluate("document.cookie.includes('opsc_session')")  # no script of the page can read it
    page.get_by_role("link", name="Dashboard").click()
    page.wait_for_url(re.compile(r"/dashboard$"))
    page.get_by_role("heading", name="Dashboard").wait_for()
    page.reload()  # F5 on a page path: still signed in, still the Dashboard
    page.get_by_role("heading", name="Dashboard").wait_for()
    page.get_by_text("operator in demo").wait_for()
    assert not page.get_by_text("Page not found").count()
    assert page.url.endswith("/dashboard")
    second = page.context.new_page()  # a second tab of the same browser
    second.goto(f"{console_url}/locks")
    second.get_by_role("heading", name="Locks and workers").wait_for()
    second.get_by_text("operator in demo").wait_for()
    # Signing out in the second tab ends the session for the first one too.
    second.get_by_role("button", name="Sign out").click()
    second.get_by_role("heading", name="Sign in").wait_for()
    page.reload()
    page.get_by_role("heading", name="Sign in").wait_for()

    # A link to the execution (as shared in a chat message), opened signed out: sign in, and it is open.
    link = f"{console_url}/executions?execution={execution_id[:8]}"
    page.goto(link)
    page.get_by_role("heading", name="Sign in").wait_for()
    sign_in_as(page, "bob · approver")
    page.get_by_text(execution_id).filter(visible=True).first.wait_for()  # its detail: the full id in the summary
    page.get_by_text(re.compile(r"disk-usage · completed")).wait_for(timeout=60_000)
    # The address still names it (Executions is the default page, which Streamlit shows at the root).
    assert page.url in {link, link.replace("/executions?", "/?")}, page.url
    page.screenshot(path=str(shots / "5-deep-link.png"), full_page=True)
    page.reload()
    page.get_by_text(re.compile(r"disk-usage · completed")).wait_for()  # reload: the same execution, signed in

    # Rerun makes a new execution, linked to this one, and opens it.
    rerun = page.get_by_text(re.compile(rf"Rerun of {execution_id[:8]} submitted as a new execution, ([0-9a-f]{{8}})"))
    click_until_shown(page, page.get_by_role("button", name="Rerun", exact=True), rerun, still=f"={execution_id[:8]}")
    new_short = re.search(r"new execution, ([0-9a-f]{8})", rerun.inner_text()).group(1)  # type: ignore[union-attr]
    assert not execution_id.startswith(new_short)
    page.wait_for_url(re.compile(rf"execution={new_short}[0-9a-f]{{24}}"))
    # "Rerun of" names the old one (the list's grid holds the ids too, in hidden cells first in the page).
    page.get_by_text(execution_id).filter(visible=True).first.wait_for()


def test_the_code_the_page_fetches_is_refused_to_a_request_without_its_header(page: Any, console_url: str) -> None:
    """Login CSRF on a browser that sends no Sec-Fetch-Site: the one-time code of a real sign-in, sent as another
    site's link or image would send it (no X-OPSC-Session header), gets 403 and no cookie; the page's own
    request, with the header, then still gets the session (the refusal did not spend the code)."""
    held: list[Any] = []
    page.route("**/opsc-session/start*", lambda route: held.append(route))  # the page's fetch, held back
    page.get_by_role("button", name="alice · operator").click()
    deadline = time.monotonic() + 30
    while not held and time.monotonic() < deadline:
        page.wait_for_timeout(100)  # Playwright delivers the route on its own loop: let it run
    [route] = held
    assert route.request.headers.get("x-opsc-session") == "1"  # what the browser really sends
    url = route.request.url
    with httpx.Client(timeout=10) as client:
        forced = client.get(url, headers={"Referer": "https://evil.test/"})
        assert forced.status_code == 403 and "set-cookie" not in forced.headers
        ended = client.get(url.replace("/opsc-session/start", "/opsc-session/end").split("?")[0])
        assert ended.status_code == 403
    with page.expect_response(lambda r: "/opsc-session/start" in r.url) as answer:
        route.continue_()
    assert answer.value.status == 204
    assert session_cookie(page) is not None


LIVE_LINES = 15
LIVE_PLAN = f"""
name: live-lines
steps:
  - name: talk
    action: shell
    target: localhost
    timeout_s: 40
    params:
      command: [python3, -u, -c, "import time\\nfor i in range({LIVE_LINES}):\\n    print('live line', i)\\n    time.sleep(1)"]
"""


def _cli(*args: str) -> str:
    """``opsconductor`` on the console's database (as a script beside the operator would); its stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "ui.cli", *args], cwd=ROOT, env=CONSOLE_ENV, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_step_printing_a_line_every_second_shows_its_lines_live(
    page: Any, console_url: str, tmp_path: Path, shots: Path
) -> None:
    """Issue 16 item 1: the running step opens by itself and its lines appear one by one while it runs; the
    detail's refreshes neither close it nor lose lines; closed by the operator, it stays closed."""
    plan = tmp_path / "live.yaml"
    plan.write_text(LIVE_PLAN)
    execution_id = re.search(r"[0-9a-f]{32}", _cli("submit", str(plan), "--as", "alice", "--background")).group(0)  # type: ignore[union-attr]
    _cli("approve", execution_id, "--as", "bob")  # python3 -c is modify; the console's worker runs it
    page.goto(f"{console_url}/executions?execution={execution_id}")
    sign_in_as(page, "alice · operator")
    running = page.get_by_text(re.compile(r"0\. talk · shell on localhost · running"))
    running.wait_for(timeout=60_000)
    block = page.locator("code").filter(has_text="live line 0").first  # the running attempt's output
    block.wait_for()

    def last_line() -> int:
        return max(int(n) for n in re.findall(r"live line (\d+)", block.inner_text()))

    start = last_line()
    assert start <= LIVE_LINES - 5, f"the page showed the output only when line {start} was printed"
    seen_at = {start: time.monotonic()}
    shown: list[int] = []  # the last line on the page each time the next one appeared
    for i in range(start + 1, start + 4):  # each next line while the step still runs, about a second apart
        page.get_by_text(re.compile(rf"live line {i}\b")).first.wait_for()
        seen_at[i] = time.monotonic()
        assert running.count() == 1, f"line {i} was not shown while the step ran"
        shown.append(last_line())
    # One by one, not in a batch at the end: on a loaded machine this test's own look can come late enough
    # to find the line after too (a poll every 0.25 s, a print every 1 s), but not every time.
    assert len(set(shown)) >= 2, f"lines came in a batch, not one by one: {shown}"
    assert seen_at[start + 3] - seen_at[start] >= 1.5  # three prints 1 s apart, give or take a poll each end
    block.scroll_into_view_if_needed()  # the page scrolls inside Streamlit's own container: show the output
    page.screenshot(path=str(shots / "6-live-output.png"))
    first = page.get_by_text(re.compile(r"live line 0")).first
    playwright.expect(first).to_be_visible()  # after the detail's refreshes (every 2 s): still open, line 0 kept
    page.get_by_text(re.compile(r"0\. talk · shell on localhost · running")).click()  # the operator closes it
    playwright.expect(page.get_by_text(re.compile(r"live line 0")).first).to_be_hidden()
    page.get_by_text(re.compile(r"live-lines · completed")).wait_for(timeout=60_000)
    playwright.expect(page.get_by_text(re.compile(r"live line 0")).first).to_be_hidden()  # left as they left it
    page.get_by_text(re.compile(r"0\. talk · shell on localhost · completed")).click()
    page.get_by_text(re.compile(rf"live line {LIVE_LINES - 1}\b")).first.wait_for()


# What must never be cut: tiles (their label and value), headings, labels, buttons, step headers, text. Tables
# (st.dataframe) and charts draw on a canvas that sizes its columns to their headers and scrolls inside itself;
# code blocks scroll inside themselves too.
CLIPPED = """() => {
  const main = document.querySelector('[data-testid="stMain"]');
  const cut = [];
  const watched = '[data-testid="stMetricValue"], [data-testid="stMetricValue"] *, [data-testid="stMetricLabel"] *,'
    + ' h1, h2, h3, [data-testid="stWidgetLabel"] p, [data-testid="stButton"] p, [data-testid="stExpander"] summary *,'
    + ' [data-testid="stMarkdownContainer"] p, [data-testid="stCaptionContainer"]';
  for (const el of main.querySelectorAll(watched)) {
    if (!el.offsetParent || !el.innerText.trim()) continue;
    if (el.scrollWidth > el.clientWidth + 1) cut.push(`${el.innerText.slice(0, 40)} (${el.scrollWidth} > ${el.clientWidth})`);
  }
  return {cut, page: [main.scrollWidth, main.clientWidth, document.documentElement.scrollWidth, window.innerWidth]};
}"""
SIX_STEPS = "name: six-steps\nsteps:\n" + "".join(
    f"  - {{name: step{i}, action: shell, target: localhost, action_class: modify, params: {{command: [echo, '{i}']}}}}\n"
    for i in range(6)
)


def test_pages_fit_a_laptop_and_a_phone_and_approve_is_on_the_first_screen(
    console_url: str, tmp_path: Path, shots: Path
) -> None:
    """Issue 16 item 7: at 1440×900 and at 390×844 no tile, heading, label or button of the main pages is cut
    (the status "pending approval" was "pending_ap…") and no page scrolls sideways; "Page not found" never shows on
    a page's own address; with a six-step plan, Approve is on the first screen of Approvals; after Sign out, no
    toast of the last user stays on the sign-in page."""
    plan = tmp_path / "six.yaml"
    plan.write_text(SIX_STEPS)
    execution_id = re.search(r"[0-9a-f]{32}", _cli("submit", str(plan), "--as", "alice", "--background")).group(0)  # type: ignore[union-attr]
    pages = {
        "alice · operator": [f"executions?execution={execution_id}", "dashboard", "submit", "dlq", "locks"],
        "bob · approver": ["approvals"],
        "admin · admin": ["admin"],
    }
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        for width, height in ((1440, 900), (390, 844)):
            for user, paths in pages.items():
                page = browser.new_context(viewport={"width": width, "height": height}).new_page()
                page.set_default_timeout(TIMEOUT_MS)
                page.goto(console_url)
                with page.expect_response(lambda r: "/opsc-session/start" in r.url and r.status == 204):
                    page.get_by_role("button", name=user, exact=True).first.click()
                for path in paths:
                    page.goto(f"{console_url}/{path}")
                    page.get_by_test_id("stMain").get_by_role("heading").first.wait_for()
                    if path == "approvals":
                        approve = page.get_by_role("button", name="Approve", exact=True)
                        approve.wait_for()
                        page.get_by_text("six-steps").first.wait_for()
                        playwright.expect(approve).to_be_in_viewport(ratio=1)  # above the six steps, not after
                    if path.startswith("executions"):
                        page.get_by_text("pending approval", exact=True).wait_for()  # the status tile
                    page.wait_for_timeout(500)  # the page's last elements (tables, tiles) drawn
                    found = page.evaluate(CLIPPED)
                    assert not found["cut"], f"{width} px, /{path}: cut: {found['cut']}"
                    main_scroll, main_width, doc_scroll, window = found["page"]
                    assert main_scroll <= main_width and doc_scroll <= window, f"{width} px, /{path} scrolls sideways"
                    assert not page.get_by_text("Page not found").count(), f"/{path}"
                    if width == 390 and path == "approvals":
                        page.screenshot(path=str(shots / "7-phone-approval.png"))
                page.context.close()
        # Submit (a toast says so), then Sign out at once: the sign-in page shows no toast of alice's.
        page = browser.new_context(viewport=VIEWPORT).new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(console_url)
        sign_in_as(page, "alice · operator")
        page.get_by_role("link", name="Submit").click()
        editor = page.get_by_role("textbox", name="Plan (YAML or JSON)")
        editor.fill(SIX_STEPS.replace("six-steps", "toasted"))
        editor.press("Control+Enter")  # Streamlit takes a text area's value on Ctrl+Enter (or blur)
        page.get_by_text("Approval level").first.wait_for()  # validated and previewed
        page.get_by_role("button", name="Submit", exact=True).click()
        playwright.expect(page.get_by_test_id("stToast").first).to_be_visible()
        page.get_by_role("button", name="Sign out").click()
        page.get_by_role("button", name="bob · approver", exact=True).wait_for()  # the sign-in page, drawn
        # A toast lives 4 s in the browser whatever the page does; still there (if it is), it must not be seen.
        assert not page.get_by_test_id("stToast").filter(visible=True).count(), "a toast of alice's on the sign-in page"
        playwright.expect(page.get_by_text(re.compile("Submitted toasted")).filter(visible=True)).to_have_count(0)
        browser.close()
