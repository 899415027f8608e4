"""Fan-out (DESIGN §14) on real worker processes: a worker SIGKILLed mid-group, two workers and duplicate
messages against ``max_concurrency``, a cancel mid-group. PostgreSQL and Redis, `opsconductor worker` processes.

Each target's process appends ``start TARGET TIME`` and ``end TARGET TIME`` to a log: what ran, how often and how
many at once is read from there, not from the database the workers write.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from core import add_asset, get_execution, principal
from core.usecases.dlq import list_dlq
from core.usecases.read_only import add_read_only_command
from db.enums import Connection
from tests.e2e.conftest import ROOT, Cluster

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

NAMES = [f"fan-{n}" for n in range(1, 7)]

# $2: the targets that sleep long (comma-separated) on their first attempt only; the others end at once.
SCRIPT = """#!/bin/sh
log=$1 slow=$2
echo "start $OPSC_TARGET $(date +%s.%N)" >> "$log"
case ",$slow," in *",$OPSC_TARGET,"*) [ -e "$log.$OPSC_TARGET" ] || { touch "$log.$OPSC_TARGET"; sleep 20; } ;; esac
sleep 0.3
echo "end $OPSC_TARGET $(date +%s.%N)" >> "$log"
"""


def _fleet(tmp_path: Path) -> Path:
    admin = principal("admin", "demo")
    for name in NAMES:
        add_asset(admin, name, Connection.LOCAL, tags=["fan"])
    script = tmp_path / "fan.sh"
    script.write_text(SCRIPT)
    script.chmod(0o755)
    tmp_path.chmod(0o777)
    add_read_only_command(admin, [str(script)])
    return script


def _plan_file(tmp_path: Path, script: Path, *, slow: str, limits: str) -> str:
    plan = (
        "name: NAME\nsteps:\n  - name: each\n    action: shell\n    targets: {tags: [fan]}\n"
        f"{limits}    params: {{command: ['{script}', '{tmp_path / 'log'}', '{slow}']}}\n"
    )
    path = tmp_path / "plan.yaml"
    path.write_text(plan)
    return str(path)


def _lines(tmp_path: Path, kind: str) -> list[str]:
    log = tmp_path / "log"
    text = log.read_text() if log.exists() else ""
    return [line.split()[1] for line in text.splitlines() if line.startswith(kind)]


def _wait_until(check: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _wait(cluster: Cluster, tmp_path: Path, execution_id: str, timeout_s: float) -> str:
    ids = tmp_path / "ids.json"
    ids.write_text(json.dumps([execution_id]))
    return str(cluster.client("wait", str(ids), str(timeout_s))["statuses"][execution_id])


def test_a_worker_killed_mid_group_of_modify_targets_reruns_none(cluster: Cluster, tmp_path: Path) -> None:
    """Three modify targets running (of six, ``max_concurrency: 3``) when the worker's process group is
    SIGKILLed: the execution ends in the DLQ as ``unknown_outcome``, no target runs twice, none of the three not
    started runs at all."""
    script = _fleet(tmp_path)
    plan = _plan_file(
        tmp_path, script, slow=",".join(NAMES), limits="    max_concurrency: 3\n    action_class: modify\n"
    )
    cluster.start_worker(threads=4)
    cluster.wait_for_workers(1)
    [execution_id] = cluster.client("submit", "1", plan)["ids"]
    cluster.client("approve", execution_id)
    _wait_until(lambda: len(_lines(tmp_path, "start")) == 3, 60, "three targets to start")
    victim = cluster.groups[0]
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    cluster.start_worker(threads=4)
    status = _wait(cluster, tmp_path, execution_id, 90)
    assert status == "failed"
    assert sorted(_lines(tmp_path, "start")) == NAMES[:3]  # each once, and nothing after the kill
    [entry] = list_dlq(principal("alice", "demo"))
    assert entry.reason == "unknown_outcome"
    view = get_execution(principal("alice", "demo"), execution_id)
    assert [s.status for s in view.steps[:3]] == ["unknown"] * 3
    assert all(s.status in {"pending", "skipped", "cancelled"} for s in view.steps[3:])


def test_a_worker_killed_mid_group_of_read_targets_retries_only_the_lost_ones(cluster: Cluster, tmp_path: Path) -> None:
    """Read targets, two at a time; fan-1..3 end at once, fan-4 and fan-5 sleep on their first attempt when the
    worker is SIGKILLed: another worker retries those two and runs fan-6; the completed three never run again."""
    script = _fleet(tmp_path)
    plan = _plan_file(tmp_path, script, slow="fan-4,fan-5", limits="    max_concurrency: 2\n")
    cluster.start_worker(threads=4)
    cluster.wait_for_workers(1)
    [execution_id] = cluster.client("submit", "1", plan)["ids"]
    _wait_until(
        lambda: {"fan-4", "fan-5"} <= set(_lines(tmp_path, "start")) and len(_lines(tmp_path, "end")) == 3,
        60,
        "fan-4 and fan-5 to be running after three ended",
    )
    victim = cluster.groups[0]
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    cluster.start_worker(threads=4)
    assert _wait(cluster, tmp_path, execution_id, 90) == "completed"
    starts = Counter(_lines(tmp_path, "start"))
    assert starts == {"fan-1": 1, "fan-2": 1, "fan-3": 1, "fan-4": 2, "fan-5": 2, "fan-6": 1}
    assert Counter(_lines(tmp_path, "end")) == {n: 1 for n in NAMES}


def test_two_workers_and_duplicate_messages_keep_max_concurrency(cluster: Cluster, tmp_path: Path) -> None:
    """Two worker processes, the execution's message sent five times more: never more than two targets at once
    (from the processes' own timestamps), each target once."""
    script = _fleet(tmp_path)
    plan = _plan_file(tmp_path, script, slow="-", limits="    max_concurrency: 2\n")
    cluster.start_worker(processes=2, threads=4)
    cluster.wait_for_workers(2)
    [execution_id] = cluster.client("submit", "1", plan)["ids"]
    duplicates = (
        "from ui import runtime; runtime.connect(); from core.ports import get_dispatcher; "
        f"[get_dispatcher().dispatch({execution_id!r}) for _ in range(5)]"
    )
    subprocess.run([sys.executable, "-c", duplicates], cwd=ROOT, env=cluster.env, check=True, timeout=60)
    assert _wait(cluster, tmp_path, execution_id, 90) == "completed"
    assert Counter(_lines(tmp_path, "start")) == {n: 1 for n in NAMES}
    marks: list[tuple[float, int]] = []
    for line in (tmp_path / "log").read_text().splitlines():
        kind, _target, at = line.split()
        marks.append((float(at), 1 if kind == "start" else -1))
    running = peak = 0
    for _at, delta in sorted(marks):
        running += delta
        peak = max(peak, running)
    assert peak == 2


def test_a_cancel_mid_group_stops_the_running_and_starts_no_more(cluster: Cluster, tmp_path: Path) -> None:
    """Two read targets sleeping when alice cancels: both processes are stopped (no ``end`` line), nothing else
    starts, the execution is ``cancelled``, and no target is left ``running``."""
    from core import cancel

    script = _fleet(tmp_path)
    plan = _plan_file(tmp_path, script, slow=",".join(NAMES), limits="    max_concurrency: 2\n")
    cluster.start_worker(threads=4)
    cluster.wait_for_workers(1)
    [execution_id] = cluster.client("submit", "1", plan)["ids"]
    _wait_until(lambda: len(_lines(tmp_path, "start")) == 2, 60, "two targets to start")
    cancel(principal("alice", "demo"), execution_id, reason="attack")
    assert _wait(cluster, tmp_path, execution_id, 60) == "cancelled"
    assert sorted(_lines(tmp_path, "start")) == NAMES[:2]
    assert _lines(tmp_path, "end") == []
    view = get_execution(principal("alice", "demo"), execution_id)
    assert "running" not in [s.status for s in view.steps]
    assert [s.status for s in view.steps[:2]] == ["cancelled"] * 2
