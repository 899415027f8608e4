"""Asset locks across real worker processes on PostgreSQL + Redis (DESIGN §3.9)."""

from __future__ import annotations

import itertools
import json
import os
import signal
from collections import Counter
from pathlib import Path

import pytest

from tests.e2e.conftest import Cluster
from tests.e2e.test_workers import _tee, _wait_all, _worker_running, _write
from tests.engine_support import unique_seconds

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


def test_50_executions_on_one_asset_never_overlap_and_keep_fifo_order(cluster: Cluster, tmp_path: Path) -> None:
    """50 plans on localhost through 2 worker processes: all complete, no two overlap, waiters run in the
    order they queued, and each plan's steps ran once."""
    log = tmp_path / "effects.log"
    plan = _write(tmp_path, "plan.yaml", "name: NAME\nsteps:\n" + _tee("a", log, "NAME:a") + _tee("b", log, "NAME:b"))
    cluster.start_worker(processes=2, threads=4)
    cluster.wait_for_workers(2)
    ids = cluster.client("submit", "50", plan)["ids"]
    assert Counter(_wait_all(cluster, tmp_path, ids, 180).values()) == {"completed": 50}
    rows = cluster.client("intervals", _write(tmp_path, "ids.json", json.dumps(ids)), "--parked")["parked"]
    spans = sorted((started, finished) for _id, _status, _parked, started, finished in rows)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))  # one at a time
    parked = sorted((queued, started) for _id, _status, queued, started, _finished in rows if queued)
    assert len(parked) >= 40  # most had to wait: the test exercised the queue
    assert [started for _queued, started in parked] == sorted(started for _queued, started in parked)  # FIFO
    lines = log.read_text().splitlines()
    assert len(lines) == 100 and len(set(lines)) == 100


def test_opposite_lock_orders_do_not_deadlock(cluster: Cluster, tmp_path: Path) -> None:
    """Plans on {node-0, node-1} written in both orders, run concurrently: locks are taken sorted, all finish."""
    plan = _write(
        tmp_path,
        "plan.yaml",
        "name: NAME\nsteps:\n"
        "  - {name: first, action: sleep, target: node-0, params: {seconds: 0.05}}\n"
        "  - {name: second, action: sleep, target: node-1, params: {seconds: 0.05}}\n",
    )
    reversed_plan = _write(
        tmp_path,
        "reversed.yaml",
        "name: NAME-r\nsteps:\n"
        "  - {name: first, action: sleep, target: node-1, params: {seconds: 0.05}}\n"
        "  - {name: second, action: sleep, target: node-0, params: {seconds: 0.05}}\n",
    )
    cluster.start_worker(processes=2, threads=4)
    cluster.wait_for_workers(2)
    ids = cluster.client("submit", "10", plan, "2")["ids"] + cluster.client("submit", "10", reversed_plan, "2")["ids"]
    assert Counter(_wait_all(cluster, tmp_path, ids, 120).values()) == {"completed": 20}


def test_killed_holder_releases_its_lock_to_the_next_waiter(cluster: Cluster, tmp_path: Path) -> None:
    """SIGKILL the worker holding localhost mid modify step: after its lease the holder goes to the DLQ,
    its lock is released, and the waiter behind it runs."""
    # The step outlasts submitting the waiter (a CLI process: 8 s and more on a machine loaded by other
    # suites), so the waiter is in line before the kill; the kill ends it long before its 40 s.
    cluster.client("policy", "long", "modify", "45", "120", "45", "600", "3")
    marker = unique_seconds(40)
    holder_plan = _write(
        tmp_path,
        "holder.yaml",
        "name: NAME\nsteps:\n  - {name: slow, action: shell, target: localhost, action_class: modify, timeout_s: 45, "
        f"params: {{command: [sleep, '{marker}']}}}}\n",
    )
    waiter_plan = _write(
        tmp_path, "waiter.yaml", "name: NAME-w\nsteps:\n  - {name: n, action: noop, target: localhost}\n"
    )
    cluster.start_worker(threads=2)
    cluster.start_worker(threads=2)
    cluster.wait_for_workers(2)
    [holder] = cluster.client("submit", "1", holder_plan)["ids"]
    cluster.client("approve", holder)
    pid = _worker_running(marker)
    [waiter] = cluster.client("submit", "1", waiter_plan)["ids"]
    os.kill(pid, signal.SIGKILL)
    assert _wait_all(cluster, tmp_path, [holder, waiter], 60) == {holder: "failed", waiter: "completed"}
