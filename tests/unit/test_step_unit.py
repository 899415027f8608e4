"""The unit a local step runs in (core/safety/step_unit.py) and the sweeper's group kill (core/engine/orphans.py),
with real processes: a step dies with the process that started it, grandchildren and setsid escapees too;
nothing of a step outlives its command; a recorded group is killed only while it is still the step's."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.engine import orphans
from core.safety import runner
from db.settings import get_settings
from tests.engine_support import alive

GONE_WITHIN_S = 30  # generous bound for a loaded machine; the tests poll /proc, they do not sleep


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    (tmp_path / "data").mkdir()
    monkeypatch.setenv("OPSC_DATABASE_URL", f"sqlite:///{tmp_path / 'data' / 'opsc.db'}")
    monkeypatch.setenv("OPSC_ALLOW_UNCONFINED_STEPS", "1")  # lab mode where the test is not root
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


MODES = [
    pytest.param("runner", marks=pytest.mark.skipif(os.geteuid() != 0, reason="the runner user needs a root worker")),
    pytest.param("unconfined"),
]


def _gone(pids: list[int]) -> bool:
    deadline = time.monotonic() + GONE_WITHIN_S
    while any(alive(p) for p in pids):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def _kill_all(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _wait_for_lines(path: Path, count: int) -> list[int]:
    deadline = time.monotonic() + GONE_WITHIN_S * 2
    while time.monotonic() < deadline:
        if path.exists() and len(path.read_text().split()) >= count:
            return [int(p) for p in path.read_text().split()]
        time.sleep(0.02)
    raise AssertionError(f"no {count} pids in {path}")


def _worker_script(mode: str, command: list[str]) -> str:
    """A stand-in worker: starts the step from a thread (as a Dramatiq worker thread does) and idles."""
    return textwrap.dedent(
        f"""
        import threading, time
        from core.safety import runner
        if {mode!r} == "unconfined":
            runner.confinement = lambda settings=None: runner.Confinement.UNCONFINED
        def step():
            with runner.confined_popen({command!r}, env={{}}) as proc:
                proc.wait()
        threading.Thread(target=step).start()
        time.sleep(3600)
        """
    )


@pytest.mark.parametrize("mode", MODES)
def test_a_step_dies_with_its_worker_grandchildren_and_setsid_escapees_included(
    settings: None, tmp_path: Path, mode: str
) -> None:
    """SIGKILL the process whose thread started the step: the direct child, a background grandchild and one
    that left the process group with setsid are all gone, without anyone else doing anything."""
    pids_file = tmp_path / "pids"
    script = (
        f"sleep 3600 & echo $! >> {pids_file}; setsid sleep 3600 & echo $! >> {pids_file}; "
        f"echo $$ >> {pids_file}; sleep 3600"
    )
    worker = subprocess.Popen([sys.executable, "-c", _worker_script(mode, ["sh", "-c", script])], env=os.environ)
    try:
        pids = _wait_for_lines(pids_file, 3)
        assert all(alive(p) for p in pids)
        unit = int(Path(f"/proc/{pids[2]}/stat").read_text().split(")")[-1].split()[1])
        assert "step_unit.py" in Path(f"/proc/{unit}/cmdline").read_text()
        deadline = time.monotonic() + GONE_WITHIN_S
        while os.getpgid(pids[1]) == os.getpgid(pids[0]):  # until setsid has run: it really left the group
            assert time.monotonic() < deadline, "setsid did not run"
            time.sleep(0.01)
        worker.kill()
        worker.wait()
        assert _gone(pids), [p for p in pids if alive(p)]
    finally:
        worker.kill()
        worker.wait()
        if pids_file.exists():
            _kill_all([int(p) for p in pids_file.read_text().split()])


@pytest.mark.parametrize("mode", MODES)
def test_nothing_of_a_step_outlives_its_command(settings: None, monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    """A background process (in the group, or out of it with setsid) ends when the step's command does."""
    if mode == "unconfined":
        monkeypatch.setattr(runner, "confinement", lambda _settings=None: runner.Confinement.UNCONFINED)
    with runner.confined_popen(["sh", "-c", "sleep 3600 & echo $!; setsid sleep 3600 & echo $!"], env={}) as proc:
        assert proc.stdout is not None
        out = proc.stdout.read()  # EOF only once every holder of the pipe is gone
        proc.wait()
    pids = [int(p) for p in out.split()]
    assert len(pids) == 2 and proc.returncode == 0
    assert _gone(pids)


def test_the_unit_exits_as_its_command_did_and_reports_what_could_not_start(settings: None) -> None:
    with runner.confined_popen(["sh", "-c", "exit 7"], env={}) as proc:
        assert proc.wait() == 7
    with runner.confined_popen(["sh", "-c", "kill -TERM $$"], env={}) as proc:
        assert proc.wait() == -signal.SIGTERM
    with pytest.raises(FileNotFoundError) as missing, runner.confined_popen(["no-such-command-x"], env={}):
        pass
    assert missing.value.filename == "no-such-command-x"


def test_a_group_stop_reaches_the_command_and_the_unit_waits_for_it(settings: None) -> None:
    """SIGTERM to the group (a cancel) is the command's to handle: its trap runs, the unit exits after it."""
    script = "trap 'echo got-term; exit 3' TERM; echo ready; while :; do sleep 0.05; done"
    with runner.confined_popen(["sh", "-c", script], env={}) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n"
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait() == 3
        assert proc.stdout.read().endswith(b"got-term\n")  # sh may first say its `sleep` was "Terminated"


def _group() -> subprocess.Popen[bytes]:
    """A process group of the test's own: sh and two sleeps."""
    proc = subprocess.Popen(["/bin/sh", "-c", "sleep 3600 & sleep 3600 & wait"], start_new_session=True)
    deadline = time.monotonic() + GONE_WITHIN_S
    while len(orphans.group_members(proc.pid, orphans.start_ticks(proc.pid) or 0)) < 3:
        assert time.monotonic() < deadline, "the group did not start"
        time.sleep(0.01)
    return proc


def test_kill_group_kills_a_recorded_group_and_waits_until_it_is_gone() -> None:
    proc = _group()
    start = orphans.start_ticks(proc.pid)
    assert start is not None
    members = orphans.group_members(proc.pid, start)
    assert orphans.kill_group(proc.pid, start) == 3
    proc.wait()
    assert not any(alive(p) for p in members)
    assert orphans.kill_group(proc.pid, start) == 0  # nothing left: nothing to do


def test_kill_group_leaves_alone_a_group_whose_leader_is_another_process_now() -> None:
    """The recorded start time differs (the pid was reused): not the step's group, not killed."""
    proc = _group()
    start = orphans.start_ticks(proc.pid)
    assert start is not None
    members = orphans.group_members(proc.pid, start)
    try:
        assert orphans.kill_group(proc.pid, start - 1) == 0
        assert all(alive(p) for p in members)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_kill_group_finds_the_members_of_a_group_whose_leader_is_gone() -> None:
    proc = _group()
    start = orphans.start_ticks(proc.pid)
    assert start is not None
    members = orphans.group_members(proc.pid, start)
    proc.kill()
    proc.wait()  # the leader is reaped; its two sleeps live on in its group
    rest = [p for p in members if p != proc.pid]
    assert all(alive(p) for p in rest)
    assert orphans.kill_group(proc.pid, start) == 2
    assert not any(alive(p) for p in rest)
