"""No orphans (issue 14 item 2), from the fault's side: a real `opsconductor worker` runs a shell step that
leaves a grandchild behind its direct child; the worker is SIGKILLed (its step dies with it: the step unit's
death signal) or SIGSTOPped (it hangs: the sweeper of the other worker kills the step's process group before
the lock is released). Either way no process of that step is alive when the next plan on the asset starts,
which the next plan's own step checks on /proc."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import Cluster
from tests.e2e.test_workers import _wait_all, _write
from tests.engine_support import alive

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

GONE_WITHIN_S = 60  # generous: a loaded machine; the test waits on /proc, never for a fixed time


def _parent(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def _wait_for_pids(path: Path, count: int, timeout_s: float = GONE_WITHIN_S) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists():
            pids = [int(p) for p in path.read_text().split()]
            if len(pids) >= count:
                return pids
        time.sleep(0.05)
    raise AssertionError(f"the step did not write {count} pids to {path}")


def _plans(tmp_path: Path) -> tuple[str, str, Path, Path]:
    pids, seen = tmp_path / "pids", tmp_path / "seen"
    # The direct child (sh) and a grandchild in the background, each a `sleep 3600` the test can find.
    holder = (
        "name: NAME\nsteps:\n"
        "  - name: slow\n    action: shell\n    target: localhost\n    action_class: modify\n"
        f"    params: {{command: [sh, -c, 'sleep 3600 & echo $! >> {pids}; echo $$ >> {pids}; sleep 3600']}}\n"
    )
    # The next plan on localhost looks at /proc for every pid of the holder's step, first thing it does.
    check = (
        f'for p in $(cat {pids}); do [ -r /proc/$p/stat ] && [ "$(cut -d" " -f3 /proc/$p/stat)" != Z ] '
        f"&& echo alive $p; done > {seen}; echo checked >> {seen}"
    )
    waiter = (
        "name: NAME-w\nsteps:\n"
        "  - name: look\n    action: shell\n    target: localhost\n    action_class: modify\n"
        f"    params: {{command: [sh, -c, '{check}']}}\n"
    )
    return _write(tmp_path, "holder.yaml", holder), _write(tmp_path, "waiter.yaml", waiter), pids, seen


@pytest.mark.parametrize("fault", [signal.SIGKILL, signal.SIGSTOP], ids=["worker-killed", "worker-hung"])
def test_no_process_of_a_lost_workers_step_is_alive_when_the_next_plan_on_its_asset_starts(
    cluster: Cluster, tmp_path: Path, fault: signal.Signals
) -> None:
    # No timeout_s (a plan estimated under 10 s is `fast`): the step may take the policy's 30 s, more than
    # submitting the waiter takes (CLI processes: seconds on a loaded machine). A hung worker loses its
    # heartbeat lease (OPSC_LEASE_TTL_S) long before that.
    cluster.client("policy", "fast", "modify", "30", "90", "30", "600", "3")
    holder_plan, waiter_plan, pids_file, seen = _plans(tmp_path)
    cluster.start_worker(threads=2)
    cluster.start_worker(threads=2)
    cluster.wait_for_workers(2, timeout_s=180)  # a loaded machine boots a worker in up to a minute
    [holder] = cluster.client("submit", "1", holder_plan)["ids"]
    cluster.client("approve", holder)
    pids = _wait_for_pids(pids_file, 2)
    unit = _parent(pids[1])  # sh's parent: the step unit, whose parent is the worker process
    assert "step_unit.py" in Path(f"/proc/{unit}/cmdline").read_text()
    worker = _parent(unit)
    [waiter] = cluster.client("submit", "1", waiter_plan)["ids"]
    cluster.client("approve", waiter)
    assert all(alive(p) for p in pids), cluster.client("events", holder)  # the fault hits the step mid-way
    os.kill(worker, fault)
    try:
        if fault == signal.SIGKILL:  # the kernel's death signal: gone without waiting for any lease
            deadline = time.monotonic() + GONE_WITHIN_S
            while any(alive(p) for p in pids) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not any(alive(p) for p in pids)
        assert _wait_all(cluster, tmp_path, [holder, waiter], 120) == {holder: "failed", waiter: "completed"}
        assert seen.read_text() == "checked\n"  # the waiter's step found none of them alive
        assert not any(alive(p) for p in pids)
        kinds = [e[1] for e in cluster.client("events", holder)["events"]]
        assert "lease_expired" in kinds, kinds  # the worker was lost mid-step, the step did not just end
        if fault == signal.SIGSTOP:  # only the sweeper could end these: it says it did
            assert "orphan_killed" in kinds, kinds
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker, signal.SIGKILL)  # a stopped worker would not heed the fixture's SIGTERM
