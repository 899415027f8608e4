"""jobs/signals.py in a real process: a burst of TERMs is one stop request; a later TERM still gets through."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.e2e.conftest import ROOT

SCRIPT = textwrap.dedent(
    """
    import os, signal, time
    from jobs.signals import coalesce_termination

    seen = []
    signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    assert coalesce_termination(window_s=0.2)
    os.kill(os.getpid(), signal.SIGTERM)  # the group's TERM
    os.kill(os.getpid(), signal.SIGTERM)  # the supervisor's forwarded TERM
    print(len(seen))
    time.sleep(0.3)  # past the window: a new TERM is a new request ("kill now" in dramatiq)
    os.kill(os.getpid(), signal.SIGTERM)
    print(len(seen))
    """
)


def test_a_repeated_term_within_the_window_is_the_same_request() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "2"]


def test_nothing_is_wrapped_off_the_main_thread() -> None:
    script = "import threading; from jobs.signals import coalesce_termination as c; r = []; "
    script += "t = threading.Thread(target=lambda: r.append(c())); t.start(); t.join(); print(r)"
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.stdout.strip() == "[False]", done.stderr
