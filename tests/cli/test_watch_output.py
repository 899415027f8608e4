"""``opsconductor watch`` follows a step's output like ``tail -f`` (issue 16 item 1); ``show`` says ``timeout``
for a timeout (item 5)."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import core
from tests.cli.support import Cli
from tests.engine_support import approved, drive, python_plan

ROOT = Path(__file__).resolve().parents[2]


SLOW = "import time\nfor i in range(12):\n    print('line', i, '\\x1b[31mred')\n    time.sleep(0.3)\n"
# The first line, then a wait for the test's go (a file, at most 20 s), then the rest: the step is still running
# when the watcher shows line 0, however long a loaded machine takes to start the watcher.
GATED = (
    "import os, time\nprint('line', 0, '\\x1b[31mred')\nend = time.time() + 20\n"
    "while not os.path.exists(os.environ['GO']) and time.time() < end:\n    time.sleep(0.05)\n"
    "for i in range(1, 12):\n    print('line', i, '\\x1b[31mred')\n    time.sleep(0.05)\n"
)


def test_watch_prints_output_lines_while_the_step_runs_then_the_summary(db: str) -> None:
    # World-readable, so the step sees the go whichever user it runs as (a sandbox without it waits 20 s).
    go_dir = Path(tempfile.mkdtemp(prefix="opsc-watch-"))
    go_dir.chmod(0o755)
    go = go_dir / "go"
    execution_id = approved(python_plan(GATED, env={"GO": str(go)}))
    worker = threading.Thread(target=drive, args=(execution_id,), kwargs={"timeout_s": 60}, daemon=True)
    worker.start()
    watch = subprocess.Popen(  # a real process, read as it prints: what an operator's terminal sees
        [sys.executable, "-m", "ui.cli", "watch", execution_id, "--as", "alice", "--interval", "0.2"],
        cwd=ROOT,
        env=os.environ.copy(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert watch.stdout is not None
    threading.Thread(target=lambda: [lines.put(line) for line in watch.stdout or []], daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + 30
    while not any("step 0 | line 0" in line for line in seen):
        assert time.monotonic() < deadline, f"no output line from watch: {seen}"
        with contextlib.suppress(queue.Empty):
            seen.append(lines.get(timeout=0.5))
    step = core.get_execution(core.principal("alice", "demo"), execution_id).steps[0]
    assert step.status == "running"  # the first line was shown before the step ended
    go.touch()
    assert watch.wait(timeout=60) == 0, watch.stderr.read() if watch.stderr else ""
    worker.join(timeout=30)
    while not lines.empty():
        seen.append(lines.get())
    out = "".join(seen)
    shown = [line for line in out.splitlines() if " | line " in line]
    assert shown == [f"  step 0 | line {i} \\x1b[31mred" for i in range(12)]  # in order, once, escaped
    assert "\x1b" not in out
    assert out.index("step_started") < out.index("step 0 | line 0") < out.index("step_finished")
    assert "status     completed" in out.split("step_finished", 1)[1]  # then the summary
    shutil.rmtree(go_dir, ignore_errors=True)


def test_show_says_timeout_for_a_step_timeout(db: str, cli: Cli) -> None:
    execution_id = approved(python_plan(SLOW, timeout_s=1))
    drive(execution_id)
    result = cli("show", execution_id, "--as", "alice")
    assert result.exit_code == 0, result.stderr
    assert "step 0 error: timeout: the step's limit of 1 s was reached" in result.stdout
    assert "cancelled" not in result.stdout
    data = json.loads(cli("show", execution_id, "--as", "alice", "--json").stdout)
    assert (data["steps"][0]["status"], data["steps"][0]["attempts"]) == ("timeout", 1)
