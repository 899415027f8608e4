"""The execution detail's live output and failure banner (issue 16 items 1 and 5), with real shell steps.

A running step opens by itself and shows the lines written so far, more at each refresh, and stays as the
operator left it; each attempt's output is shown apart; a failure says why and shows the last lines.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import core
from db.settings import get_settings
from tests.engine_support import Drivers, approved, drive, python_plan, wait_until
from tests.ui.conftest import OpenConsole, shown
from ui import state

PAGE = "ui/pages/executions.py"


def _codes(at: AppTest) -> list[str]:
    return [c.value for c in at.code]


def _banner(at: AppTest) -> str:
    return shown(at.error[0].value).replace("**", "")


def _chunk_text(execution_id: str) -> str:
    return "".join(c.text for c in core.list_output_chunks(core.principal("alice", "demo"), execution_id))


SLOW = "import time\nfor i in range(30):\n    print('line', i)\n    time.sleep(0.3)\n"


def test_a_running_step_opens_and_its_output_grows_at_each_refresh(console: OpenConsole, driving: Drivers) -> None:
    execution_id = approved(python_plan(SLOW))
    driving(execution_id)
    wait_until(lambda: "line 1\n" in _chunk_text(execution_id))
    at = console("alice", page=PAGE)
    at.selectbox(key=state.EXECUTION_PICK).select(execution_id).run()
    assert not at.exception
    step_key = f"{state.STEP_OPEN}.{execution_id}.0"
    assert at.session_state[step_key] is True  # opened by itself: it runs
    first = next(c for c in _codes(at) if c.startswith("line 0\n"))
    wait_until(lambda: len(_chunk_text(execution_id)) > len(first) + 20)
    at.run()
    assert not at.exception
    later = next(c for c in _codes(at) if c.startswith("line 0\n"))
    assert later.startswith(first) and len(later) > len(first)  # appended, nothing lost
    at.session_state[step_key] = False  # the operator closes it: a refresh leaves it closed
    at.run()
    assert at.session_state[step_key] is False
    core.cancel(core.principal("alice", "demo"), execution_id)


def test_each_attempt_shows_its_own_output(
    console: OpenConsole, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSC_RETRY_BACKOFF_S", "0.05")
    get_settings.cache_clear()
    script = tmp_path / "flaky.sh"
    script.write_text(
        f'if [ -e "{tmp_path}/ran" ]; then echo second; exit 0; fi\ntouch "{tmp_path}/ran"; echo first; exit 1\n'
    )
    core.add_read_only_command(core.principal("admin", "demo"), ["sh", str(script)])
    plan = f"name: flaky\nsteps:\n  - {{name: a, action: shell, target: localhost, params: {{command: [sh, '{script}']}}}}\n"
    execution_id = core.submit(core.principal("alice", "demo"), plan, background=True).execution.execution_id
    try:
        drive(execution_id)
    finally:
        get_settings.cache_clear()
    at = console("alice", page=PAGE)
    at.selectbox(key=state.EXECUTION_PICK).select(execution_id).run()
    assert not at.exception
    assert [shown(c.value) for c in at.caption if c.value.startswith("Attempt")] == ["Attempt 1", "Attempt 2"]
    assert "first" in _codes(at) and "second" in _codes(at)  # (st.code drops the last newline)
    assert any("completed · attempt 2" in e.label for e in at.expander)
    assert not any("**Attempt:**" in m.value for m in at.markdown)  # one count: the execution's is its run
    assert any("**Run:** 1" in m.value for m in at.markdown)


def test_the_failure_banner_gives_the_exit_code_and_the_last_lines(console: OpenConsole) -> None:
    code = "import sys\nfor i in range(30):\n    print('out', i)\nprint('bad thing happened', file=sys.stderr)\nsys.exit(2)\n"
    execution_id = approved(python_plan(code))
    drive(execution_id)
    at = console("alice", page=PAGE)
    at.selectbox(key=state.EXECUTION_PICK).select(execution_id).run()
    assert not at.exception
    assert _banner(at) == "Failed: step 0 (talk): exit code 2"
    tail = next(c for c in _codes(at) if c.endswith("bad thing happened"))
    assert tail.splitlines()[0] == "out 19" and len(tail.splitlines()) == 12  # the last 12 lines, not all 31
    assert sum(shown(e.value).count("exit code 2") for e in at.error) == 2  # the banner, and the step's own


def test_the_failure_banner_names_a_timeout_and_its_limit(console: OpenConsole) -> None:
    execution_id = approved(python_plan(SLOW, timeout_s=1))
    drive(execution_id)
    at = console("alice", page=PAGE)
    at.selectbox(key=state.EXECUTION_PICK).select(execution_id).run()
    assert not at.exception
    assert _banner(at) == "Failed: step 0 (talk): timeout: the step's limit of 1 s was reached"
    assert any(c.startswith("line 0") for c in _codes(at))


def test_the_failure_banner_says_who_cancelled(console: OpenConsole) -> None:
    execution_id = core.submit(core.principal("alice", "demo"), python_plan("print(1)"), background=True).execution
    core.cancel(core.principal("alice", "demo"), execution_id.execution_id, reason="not today")
    at = console("alice", page=PAGE)
    at.selectbox(key=state.EXECUTION_PICK).select(execution_id.execution_id).run()
    assert not at.exception
    assert _banner(at) == "Cancelled: cancelled by alice: not today"


def test_rollback_steps_are_shown_under_their_own_heading(
    console: OpenConsole, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The execution detail lists the on_failure steps under "Rollback", with how the rollback went; the
    failure banner still names the main step that failed."""
    monkeypatch.setenv("OPSC_RETRY_BACKOFF_S", "0.01")
    get_settings.cache_clear()
    plan = (
        "name: undo\nsteps:\n  - {name: break, action: shell, target: localhost, params: {command: 'false'}}\n"
        "on_failure:\n  - {name: restore, action: shell, target: localhost, params: {command: [echo, restored]}}\n"
    )
    execution_id = core.submit(core.principal("alice", "demo"), plan, background=True).execution.execution_id
    try:
        drive(execution_id)
    finally:
        get_settings.cache_clear()
    at = console("alice", page=PAGE)
    at.selectbox(key=state.EXECUTION_PICK).select(execution_id).run()
    assert not at.exception
    headings = [shown(m.value) for m in at.markdown]
    assert headings.index("**Rollback**") > headings.index("**Steps**")
    assert any(shown(c.value).startswith("Rollback completed") for c in at.caption)
    labels = [e.label for e in at.expander]
    assert any("1. restore · on_failure" in label and "completed" in label for label in labels)
    assert _banner(at) == "Failed: step 0 (break): exit code 1"
    assert "restored" in _codes(at)


def test_the_failure_banner_shows_stderr_when_the_step_printed_nothing_else(console: OpenConsole) -> None:
    code = "import sys\nfor i in range(3):\n    print('err', i, file=sys.stderr)\nsys.exit(3)\n"
    execution_id = approved(python_plan(code))
    drive(execution_id)
    at = console("alice", page=PAGE)
    at.selectbox(key=state.EXECUTION_PICK).select(execution_id).run()
    assert not at.exception
    assert _banner(at) == "Failed: step 0 (talk): exit code 3"
    assert "err 0\nerr 1\nerr 2" in _codes(at)


ERR_THEN_WAIT = "import sys, time\nprint('stuck on the lock', file=sys.stderr)\ntime.sleep(30)\n"


def test_the_failure_banner_shows_stderr_of_a_step_that_timed_out(console: OpenConsole) -> None:
    execution_id = approved(python_plan(ERR_THEN_WAIT, timeout_s=1))
    drive(execution_id)
    at = console("alice", page=PAGE)
    at.selectbox(key=state.EXECUTION_PICK).select(execution_id).run()
    assert not at.exception
    assert _banner(at) == "Failed: step 0 (talk): timeout: the step's limit of 1 s was reached"
    assert "stuck on the lock" in _codes(at)


def test_the_failure_banner_says_who_cancelled_a_running_step_and_shows_its_stderr(
    console: OpenConsole, driving: Drivers
) -> None:
    execution_id = approved(python_plan(ERR_THEN_WAIT))
    thread = driving(execution_id)
    wait_until(lambda: "stuck on the lock" in _chunk_text(execution_id))
    core.cancel(core.principal("alice", "demo"), execution_id, reason="wrong host")
    thread.join(timeout=30)
    at = console("alice", page=PAGE)
    at.selectbox(key=state.EXECUTION_PICK).select(execution_id).run()
    assert not at.exception
    assert _banner(at) == "Cancelled: cancelled by alice: wrong host"
    assert "stuck on the lock" in _codes(at)


def test_a_fan_out_shows_a_tile_per_target_and_how_far_it_got(console: OpenConsole) -> None:
    """The execution detail shows a fan-out step as a grid: one tile per asset with its status, and a line with the
    pace, the error limit and the counts (DESIGN §14)."""
    admin = core.principal("admin", "demo")
    for name in ("grid-a", "grid-b", "grid-c"):
        core.add_asset(admin, name, core.Connection.LOCAL, tags=["grid"])
    plan = (
        "name: grid\nsteps:\n  - name: hello\n    action: noop\n    targets: {tags: [grid]}\n"
        "    max_concurrency: 2\n    params: {say: hi}\n"
    )
    execution_id = core.submit(core.principal("alice", "demo"), plan, background=True).execution.execution_id
    drive(execution_id)
    at = console("alice", page=PAGE)
    at.selectbox(key=state.EXECUTION_PICK).select(execution_id).run()
    assert not at.exception
    texts = [shown(m.value) for m in at.markdown]
    assert "**Fan-out hello**" in texts
    assert [t for t in texts if t.startswith(":material/check_circle: **grid-")] == [
        f":material/check_circle: **grid-{n}**\ncompleted" for n in "abc"
    ]
    assert "3 targets, 2 at a time, stops at the first failure: 3 completed." in [shown(c.value) for c in at.caption]
