"""Worker processes on the real Redis and PostgreSQL (DESIGN §3.2-3.5): throughput, exactly-once steps,
crashes mid-step, and a broker that loses every message."""

from __future__ import annotations

import itertools
import json
import os
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
import redis

from tests.e2e.conftest import Cluster
from tests.engine_support import delete_namespace, processes_matching, unique_seconds

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


def _tee(
    name: str, log: Path, marker: str, *, action_class: str = "read", timeout_s: int = 1, target: str = "localhost"
) -> str:
    return (
        f"  - {{name: {name}, action: shell, target: {target}, action_class: {action_class}, timeout_s: {timeout_s}, "
        f"params: {{command: [tee, -a, '{log}'], stdin: \"{marker}\\n\"}}}}\n"
    )


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _wait_all(cluster: Cluster, tmp_path: Path, ids: list[str], timeout_s: float) -> dict[str, str]:
    ids_file = _write(tmp_path, "ids.json", json.dumps(ids))
    return cluster.client("wait", ids_file, str(timeout_s))["statuses"]


def test_200_executions_of_3_steps_on_2_worker_processes_run_each_step_once(cluster: Cluster, tmp_path: Path) -> None:
    """200 three-step plans on 16 assets through 2 worker processes: all complete, 600 unique side effects."""
    log = tmp_path / "effects.log"
    steps = "".join(_tee(f"s{i}", log, f"NAME:s{i}", target="TARGET") for i in range(3))
    plan = _write(tmp_path, "plan.yaml", "name: NAME\nsteps:\n" + steps)
    cluster.start_worker(processes=2, threads=4)
    cluster.wait_for_workers(2)
    ids = cluster.client("submit", "200", plan, "16")["ids"]  # spread over 16 assets: one plan at a time on each
    statuses = _wait_all(cluster, tmp_path, ids, 180)
    assert Counter(statuses.values()) == {"completed": 200}
    lines = log.read_text().splitlines()
    assert len(lines) == 600 and len(set(lines)) == 600
    by_plan: dict[str, list[str]] = {}
    for line in lines:
        name, step = line.split(":")
        by_plan.setdefault(name, []).append(step)
    assert all(steps == ["s0", "s1", "s2"] for steps in by_plan.values())  # in order, each once
    by_asset: dict[str, list[tuple[str, str]]] = {}
    for target, started, finished in cluster.client("intervals", _write(tmp_path, "ids.json", json.dumps(ids)))[
        "intervals"
    ]:
        by_asset.setdefault(target, []).append((started, finished))
    for target, spans in by_asset.items():  # one plan at a time per asset, across processes
        spans.sort()
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans)), target


def _worker_running(marker: str, timeout_s: float = 60) -> int:
    """The pid of the worker process whose step runs `sleep <marker>` (a bound, not a wait: on a machine
    loaded by other suites a claim and a step's start have taken over 20 s)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for pid in processes_matching(f"sleep {marker}"):
            parent = int(Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[1])
            if "step_unit.py" in Path(f"/proc/{parent}/cmdline").read_text():  # the step's unit, not the worker
                parent = int(Path(f"/proc/{parent}/stat").read_text().split(")")[-1].split()[1])
            return parent
        time.sleep(0.05)
    raise AssertionError(f"no process ran sleep {marker}")


def test_worker_killed_mid_read_step_is_retried_elsewhere(cluster: Cluster, tmp_path: Path) -> None:
    """SIGKILL the worker in the middle of a read step: its heartbeat lease runs out in seconds and another
    worker retries the step, inside the seeded `fast` policy's 10 s execution limit (DESIGN §15; with the
    old 15 s lease the execution timed out before the step was reclaimed)."""
    log = tmp_path / "effects.log"
    marker = unique_seconds(1)
    plan = _write(
        tmp_path,
        "plan.yaml",
        "name: NAME\nsteps:\n  - {name: slow, action: shell, target: localhost, timeout_s: 3, "
        f"params: {{command: [sleep, '{marker}']}}}}\n" + _tee("after", log, "after"),
    )
    cluster.start_worker(threads=2)
    cluster.start_worker(threads=2)
    cluster.wait_for_workers(2)
    [execution_id] = cluster.client("submit", "1", plan)["ids"]
    os.kill(_worker_running(marker), signal.SIGKILL)
    statuses = _wait_all(cluster, tmp_path, [execution_id], 40)
    assert statuses == {execution_id: "completed"}
    view = cluster.client("show", execution_id)
    assert [(s["status"], s["attempts"]) for s in view["steps"]] == [("completed", 2), ("completed", 1)]
    assert log.read_text() == "after\n"


def _minute_long_step(cluster: Cluster, tmp_path: Path) -> tuple[str, str]:
    """A plan file whose one read step sleeps 60 s, with every policy raised to hold it (and a lease longer
    than a test), and the step's `sleep` marker."""
    for sla in ("fast", "medium", "long"):
        cluster.client("policy", sla, "read", "120", "900", "600", "300", "3")
    marker = unique_seconds(60)
    plan = _write(
        tmp_path,
        "slow.yaml",
        "name: NAME\nsteps:\n  - {name: slow, action: shell, target: localhost, timeout_s: 90, "
        f"params: {{command: [sleep, '{marker}']}}}}\n",
    )
    return plan, marker


def test_a_busy_worker_leaves_the_next_message_in_redis_for_another_worker(cluster: Cluster, tmp_path: Path) -> None:
    """A worker whose one thread runs a step takes no second message (one per thread, jobs/processes.py): the
    message stays in Redis, and a worker started later runs it while the first step still runs. With Dramatiq's
    default (two per thread) the busy worker takes it, and it waits for the 60 s step to end."""
    slow, marker = _minute_long_step(cluster, tmp_path)
    log = tmp_path / "effects.log"
    quick = _write(tmp_path, "quick.yaml", "name: NAME\nsteps:\n" + _tee("quick", log, "quick", target="TARGET"))
    cluster.start_worker(threads=1)
    cluster.wait_for_workers(1)
    cluster.client("submit", "1", slow)
    _worker_running(marker)  # the first worker's only thread is busy for 60 s
    [quick_id] = cluster.client("submit", "1", quick, "1")["ids"]  # on node-0: no wait for localhost's lock
    cluster.start_worker(threads=1)
    statuses = _wait_all(cluster, tmp_path, [quick_id], 45)  # the second worker's boot, on a loaded machine
    assert statuses == {quick_id: "completed"}
    assert processes_matching(f"sleep {marker}"), "the first step ended before the second plan ran"
    assert log.read_text() == "quick\n"


def test_worker_killed_mid_modify_step_goes_to_dlq_and_requeue_resumes_there(cluster: Cluster, tmp_path: Path) -> None:
    """SIGKILL mid modify step: the step is `unknown`, nothing runs twice; requeue resumes at that step."""
    log = tmp_path / "effects.log"
    marker = unique_seconds(2)
    plan = _write(
        tmp_path,
        "plan.yaml",
        "name: NAME\nsteps:\n"
        + _tee("first", log, "first", action_class="modify")
        + "  - {name: slow, action: shell, target: localhost, action_class: modify, timeout_s: 3, "
        + f"params: {{command: [sleep, '{marker}']}}}}\n"
        + _tee("third", log, "third", action_class="modify"),
    )
    cluster.start_worker(threads=2)
    cluster.start_worker(threads=2)
    cluster.wait_for_workers(2)
    [execution_id] = cluster.client("submit", "1", plan)["ids"]
    cluster.client("approve", execution_id)
    os.kill(_worker_running(marker), signal.SIGKILL)
    assert _wait_all(cluster, tmp_path, [execution_id], 40) == {execution_id: "failed"}
    view = cluster.client("show", execution_id)
    assert [s["status"] for s in view["steps"]] == ["completed", "unknown", "pending"]
    assert log.read_text() == "first\n"
    cluster.client("requeue", execution_id)
    assert _wait_all(cluster, tmp_path, [execution_id], 40) == {execution_id: "completed"}
    assert log.read_text() == "first\nthird\n"


def test_redis_losing_its_messages_while_100_are_queued_all_still_complete(
    cluster: Cluster, tmp_path: Path, redis_url: str
) -> None:
    """Redis loses every queued message (100 executions, no worker up): the sweeper re-dispatches from the DB.

    Only this run's namespace is deleted: the Redis server is shared, so a FLUSHALL would wipe others' data."""
    log = tmp_path / "effects.log"
    plan = _write(tmp_path, "plan.yaml", "name: NAME\nsteps:\n" + _tee("only", log, "NAME"))
    ids = cluster.client("submit", "100", plan)["ids"]
    assert delete_namespace(redis_url, cluster.env["OPSC_REDIS_NAMESPACE"]), "the submitted work left no messages"
    client = redis.Redis.from_url(redis_url)
    assert not list(client.scan_iter(match=f"{cluster.env['OPSC_REDIS_NAMESPACE']}*"))
    client.close()
    cluster.start_worker(threads=4)
    statuses = _wait_all(cluster, tmp_path, ids, 90)
    assert Counter(statuses.values()) == {"completed": 100}
    assert len(set(log.read_text().splitlines())) == 100


def test_sigterm_to_the_whole_process_group_is_a_graceful_stop(cluster: Cluster, tmp_path: Path) -> None:
    """`kill -TERM -PGID` (systemd's default) reaches dramatiq's supervisor and its worker process at once; the
    supervisor forwards a second TERM, which dramatiq treats as "kill now". The worker must still stop
    gracefully: its running read step handed back uncounted, its leases released, itself marked stopped."""
    plan, marker = _minute_long_step(cluster, tmp_path)  # a lease only a graceful stop frees in time
    worker = cluster.start_worker(threads=2)
    cluster.wait_for_workers(1)
    [execution_id] = cluster.client("submit", "1", plan)["ids"]
    _worker_running(marker)
    os.killpg(os.getpgid(worker.pid), signal.SIGTERM)
    assert worker.wait(timeout=60) is not None
    log = (tmp_path / "worker-0.log").read_text(errors="replace")
    assert "Killing worker process" not in log, log[-2000:]
    view = cluster.client("show", execution_id)
    assert [(s["status"], s["attempts"]) for s in view["steps"]] == [("pending", 0)], (view["steps"], log[-2000:])
    assert cluster.client("workers")["workers"] == [], log[-2000:]  # the list leaves out workers marked stopped
    assert processes_matching(f"sleep {marker}") == []
