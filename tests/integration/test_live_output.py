"""Live step output (issue 16 items 1 and 5), on SQLite and PostgreSQL, with real shell steps.

A step printing a line every 0.3 s has its output rows readable while it still runs; a secret printed across
two batches is stored masked in every chunk and in the whole; a retried step keeps each attempt's output; a
timeout says ``timeout`` with its limit, a cancel who cancelled.
"""

from __future__ import annotations

import base64
import json
import secrets
import textwrap
import threading
from pathlib import Path

import pytest

from core import (
    ActionClass,
    NotFound,
    PolicyValues,
    SlaClass,
    add_read_only_command,
    approve,
    cancel,
    get_execution,
    list_attempt_outputs,
    list_output_chunks,
    principal,
    set_secret,
    submit,
    update_policy,
)
from core.actions.context import OutputSink
from core.engine.live_output import LiveOutput
from core.engine.steps import Outcome, request_shutdown, reset_shutdown
from core.safety.masking import Masker
from core.transactions import session_scope
from db.settings import get_settings
from tests.engine_support import Drivers, approved, drive, python_plan, wait_until

ALICE = ("alice", "demo")


LINES = "import time\nfor i in range(10):\n    print('line', i)\n    time.sleep(0.3)\n"


def test_output_rows_appear_while_the_step_runs(db: str, driving: Drivers) -> None:
    """A step printing a line every 0.3 s: its chunks are readable before it ends, in order, and joined they
    are exactly the output stored when it ends."""
    execution_id = approved(python_plan(LINES))
    worker = driving(execution_id)
    alice = principal(*ALICE)
    wait_until(lambda: bool(list_output_chunks(alice, execution_id)))
    early = list_output_chunks(alice, execution_id)
    step = get_execution(alice, execution_id).steps[0]
    assert step.status == "running" and step.finished_at is None  # read while it still runs
    assert early[0].text.startswith("line 0\n") and "line 9" not in "".join(c.text for c in early)
    worker.join(timeout=30)
    view = get_execution(alice, execution_id)
    assert view.status == "completed", view.error
    chunks = list_output_chunks(alice, execution_id)
    assert len(chunks) >= 3  # batches, never one row per line nor the whole at the end only
    assert len(chunks) < 10
    assert [c.id for c in chunks] == sorted(c.id for c in chunks)
    assert "".join(c.text for c in chunks) == view.steps[0].output == "".join(f"line {i}\n" for i in range(10))
    assert {(c.run, c.attempt) for c in chunks} == {(1, 1)}
    later = list_output_chunks(alice, execution_id, after_id=chunks[0].id)
    assert [c.id for c in later] == [c.id for c in chunks[1:]]  # incremental reads
    assert [(a.attempt, a.output, a.latest) for a in list_attempt_outputs(alice, execution_id)] == [
        (1, view.steps[0].output, True)
    ]


def test_another_tenant_reads_no_output(db: str, driving: Drivers) -> None:
    execution_id = approved(python_plan("print('hello')"))
    driving(execution_id).join(timeout=30)
    with pytest.raises(NotFound):
        list_output_chunks(principal("mallory", "globex"), execution_id)
    with pytest.raises(NotFound):
        list_attempt_outputs(principal("mallory", "globex"), execution_id)


SPLIT = textwrap.dedent(
    """
    import base64, os, sys, textwrap, time
    t = os.environ["T"]
    sys.stdout.write("start\\n" + t[:10]); time.sleep(0.9)
    sys.stdout.write(t[10:] + " end\\n"); time.sleep(0.9)
    for line in textwrap.wrap(base64.b64encode(t.encode()).decode(), 76):
        print(line); time.sleep(0.4)
    print("password:"); time.sleep(0.9)
    print("hunter2-not-a-registered-value"); time.sleep(0.9)
    print("done")
    """
)


def test_a_secret_split_across_batches_is_masked_in_every_chunk(db: str, driving: Drivers) -> None:
    """Halves of a secret printed 0.9 s apart (a batch written between them), its base64 wrapped over lines
    printed one by one, and ``password:`` with its value on the next line: no chunk, nor the whole, shows any
    of it, and no chunk holds a fragment of the secret. (The shell runner reads whole lines; a runner that
    writes arbitrary pieces, such as ssh, is attacked in tests/unit/test_live_view.py.)"""
    value = "Zq" + secrets.token_hex(40)  # 82 characters: base64 wraps at 76 over two lines
    set_secret(principal("admin", "demo"), "split_me", value)
    execution_id = approved(python_plan(SPLIT, env={"T": "{{ secret:split_me }}"}))
    driving(execution_id).join(timeout=40)
    alice = principal(*ALICE)
    view = get_execution(alice, execution_id)
    assert view.status == "completed", view.error
    chunks = list_output_chunks(alice, execution_id)
    assert len(chunks) >= 4, chunks  # the prints were spread over several batches
    stored = "".join(c.text for c in chunks)
    assert stored == view.steps[0].output
    encoded = base64.b64encode(value.encode()).decode()
    fragments = {value[:10], value[10:], *textwrap.wrap(encoded, 76), "hunter2"}
    for chunk in chunks:
        assert not any(f in chunk.text for f in fragments), chunk.text
    assert not any(f in stored for f in fragments)
    assert stored.startswith("start\n***") and stored.rstrip().endswith("done")


def test_each_attempt_keeps_its_own_output(db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A read step that prints slowly and fails, then prints and succeeds: two attempts, each its own output
    (the retry no longer replaces the first); the step row holds the last."""
    monkeypatch.setenv("OPSC_RETRY_BACKOFF_S", "0.05")
    get_settings.cache_clear()
    script = tmp_path / "flaky.sh"
    script.write_text(
        f'if [ -e "{tmp_path}/ran" ]; then echo second try; exit 0; fi\n'
        f'touch "{tmp_path}/ran"; for i in 1 2 3 4; do echo first $i; sleep 0.3; done; echo oops >&2; exit 3\n'
    )
    add_read_only_command(principal("admin", "demo"), ["sh", str(script)])
    plan = f"name: flaky\nsteps:\n  - {{name: a, action: shell, target: localhost, params: {{command: [sh, '{script}']}}}}\n"
    execution_id = submit(principal(*ALICE), plan, background=True).execution.execution_id
    try:
        outcomes = drive(execution_id, timeout_s=30)
    finally:
        get_settings.cache_clear()
    assert Outcome.RETRY in outcomes
    alice = principal(*ALICE)
    view = get_execution(alice, execution_id)
    assert (view.status, view.steps[0].attempts, view.steps[0].output) == ("completed", 2, "second try\n")
    attempts = list_attempt_outputs(alice, execution_id)
    assert [(a.run, a.attempt, a.latest) for a in attempts] == [(1, 1, False), (1, 2, True)]
    assert attempts[0].output == "first 1\nfirst 2\nfirst 3\nfirst 4\noops\n"
    assert attempts[1].output == "second try\n"


def test_a_quick_failed_attempt_is_kept_when_retried(db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An attempt that ends before its first batch (nothing streamed) still keeps its output when retried."""
    monkeypatch.setenv("OPSC_RETRY_BACKOFF_S", "0.05")
    get_settings.cache_clear()
    script = tmp_path / "quick.sh"
    script.write_text(
        f'if [ -e "{tmp_path}/ran" ]; then echo ok; exit 0; fi\ntouch "{tmp_path}/ran"; echo no; exit 1\n'
    )
    add_read_only_command(principal("admin", "demo"), ["sh", str(script)])
    plan = f"name: quick\nsteps:\n  - {{name: a, action: shell, target: localhost, params: {{command: [sh, '{script}']}}}}\n"
    execution_id = submit(principal(*ALICE), plan, background=True).execution.execution_id
    try:
        drive(execution_id, timeout_s=30)
    finally:
        get_settings.cache_clear()
    attempts = list_attempt_outputs(principal(*ALICE), execution_id)
    assert [(a.attempt, a.output) for a in attempts] == [(1, "no\n"), (2, "ok\n")]


def test_a_step_timeout_says_timeout_with_its_limit(db: str, driving: Drivers) -> None:
    """Killed at its limit: the step ends ``timeout`` and its error names the limit (not "command cancelled");
    the output printed until then is kept."""
    execution_id = approved(python_plan(LINES.replace("range(10)", "range(100)"), timeout_s=2))
    driving(execution_id).join(timeout=40)
    view = get_execution(principal(*ALICE), execution_id)
    step = view.steps[0]
    assert (view.status, step.status) == ("failed", "timeout"), view.error
    assert step.error == "timeout: the step's limit of 2 s was reached"
    assert view.error is not None and "timeout: the step's limit of 2 s" in view.error
    assert "cancelled" not in (view.error or "")
    assert (step.output or "").startswith("line 0\n")


def test_a_cancel_says_who_cancelled(db: str, driving: Drivers) -> None:
    """Cancelled while it runs: the execution's and the step's error say by whom and why."""
    execution_id = approved(python_plan(LINES.replace("range(10)", "range(100)")))
    worker = driving(execution_id)
    alice = principal(*ALICE)
    wait_until(lambda: bool(list_output_chunks(alice, execution_id)))
    cancel(alice, execution_id, reason="wrong host")
    worker.join(timeout=30)
    view = get_execution(alice, execution_id)
    assert (view.status, view.steps[0].status) == ("cancelled", "cancelled")
    assert view.error == view.steps[0].error == "cancelled by alice: wrong host"
    assert view.steps[0].output and view.steps[0].output.startswith("line 0\n")


def test_a_cancel_before_start_says_who_cancelled(db: str) -> None:
    execution_id = submit(principal(*ALICE), python_plan("print(1)"), background=True).execution.execution_id
    view = cancel(principal(*ALICE), execution_id)
    assert (view.status, view.error) == ("cancelled", "cancelled by alice")


def test_an_execution_timeout_says_timeout_with_the_execution_limit(db: str) -> None:
    """Three 2.8 s steps (3 s limit each) under an 8 s execution limit: the third is stopped by the execution's
    deadline; the execution ends ``timeout`` and its error (the banner's, ``show``'s) names that limit."""
    step = {"action": "shell", "target": "localhost", "timeout_s": 3}
    command = ["python3", "-u", "-c", "import time\nprint('working')\ntime.sleep(2.8)"]
    plan = json.dumps(
        {"name": "long", "steps": [{"name": f"s{i}", **step, "params": {"command": command}} for i in range(3)]}
    )
    submitted = submit(principal(*ALICE), plan, background=True).execution
    # The limits it starts with are its classes' policy row when it starts: 3 s per step, 8 s in all.
    update_policy(
        principal("admin", "demo"), SlaClass(submitted.sla_class), ActionClass.MODIFY, PolicyValues(3, 8, 15, 900, 1)
    )
    approve(principal("bob", "demo"), submitted.execution_id)
    execution_id = submitted.execution_id
    drive(execution_id, timeout_s=40)
    view = get_execution(principal(*ALICE), execution_id)
    assert (view.status, [s.status for s in view.steps]) == ("timeout", ["completed", "completed", "timeout"])
    assert view.error == "timeout: the execution's limit of 8 s ran out during step 2 (s2)"
    assert view.steps[2].error == "timeout: the execution's time limit ran out"
    assert view.steps[2].output == "working\n"


def test_a_handed_back_attempt_leaves_no_output_and_its_number_is_used_again(db: str, tmp_path: Path) -> None:
    """A worker shutting down hands a running read step back untouched (its attempt does not count): the
    chunks it streamed go with it, and the attempt that runs it later, under the same number, has its own."""
    script = tmp_path / "slow.sh"
    script.write_text("for i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo tick $i; sleep 0.3; done\n")
    add_read_only_command(principal("admin", "demo"), ["sh", str(script)])
    plan = f"name: slow\nsteps:\n  - {{name: a, action: shell, target: localhost, params: {{command: [sh, '{script}']}}}}\n"
    execution_id = submit(principal(*ALICE), plan, background=True).execution.execution_id
    alice = principal(*ALICE)
    outcomes: list[Outcome] = []
    worker = threading.Thread(target=lambda: outcomes.extend(drive(execution_id, limit=1)))
    worker.start()
    try:
        wait_until(lambda: bool(list_output_chunks(alice, execution_id)), what="a first chunk")
        request_shutdown()
        worker.join(timeout=30)
    finally:
        reset_shutdown()
    assert outcomes == [Outcome.RELEASED]
    assert list_output_chunks(alice, execution_id) == []
    assert get_execution(alice, execution_id).steps[0].attempts == 0
    drive(execution_id, timeout_s=30)
    view = get_execution(alice, execution_id)
    assert (view.status, view.steps[0].attempts) == ("completed", 1)
    attempts = list_attempt_outputs(alice, execution_id)
    assert [(a.attempt, a.output) for a in attempts] == [(1, "".join(f"tick {i}\n" for i in range(1, 13)))]


def test_a_live_view_that_stops_extending_what_was_written_is_replaced_by_the_whole(db: str) -> None:
    """A multi-line secret whose first line is too short to mask alone ("ab"), printed across two batches: the
    whole output masks it entirely, which no longer extends the first batch; the attempt's rows are then
    replaced by the output masked whole, and nothing more is streamed meanwhile."""
    execution = submit(principal(*ALICE), python_plan("print(1)"), background=True).execution
    masker = Masker()
    masker.register("ab\ncdefgh")
    sink = OutputSink(masker)
    live = LiveOutput(
        sink,
        execution_id=execution.execution_id,
        tenant_id=execution.tenant_id,
        step_index=0,
        run=1,
        attempt=1,
        started=0.0,
    )
    try:
        alice = principal(*ALICE)
        sink.write("x ab\n")
        assert live.flush()
        assert [c.text for c in list_output_chunks(alice, execution.execution_id)] == ["x ab\n"]
        sink.write("cdefgh\ny\n")
        assert not live.flush()  # diverged: not written
        with session_scope() as session:
            live.finish(session, sink.text())
        assert [c.text for c in list_output_chunks(alice, execution.execution_id)] == ["x ***\ny\n"]
        assert not live.flush()  # finished: nothing more
    finally:
        masker.close()  # its values leave the process-wide live set (the log filter's)
