"""A real `opsconductor worker --processes 2` on PostgreSQL and Redis, with OPSC_METRICS_PORT and JSON logs:
each worker process serves its own /metrics (base+N), and its log lines are JSON objects."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Cluster

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


def _free_port_pair() -> int:
    """A port P with P and P+1 both free on 127.0.0.1 right now."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            base = int(first.getsockname()[1])
            if base >= 65535:
                continue
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", base + 1))
                except OSError:
                    continue
        return base
    raise AssertionError("no two consecutive free ports")


def _scrape(port: int, timeout_s: float = 30) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _value(body: str, sample: str) -> float:
    """The value of the sample line starting with ``sample`` (name plus labels), 0 if absent."""
    for line in body.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_each_worker_process_serves_its_metrics_and_logs_json(cluster: Cluster, tmp_path: Path) -> None:
    """Ports base and base+1 answer with opsc_ metrics; the one step ran is counted by exactly one process;
    the database gauges agree in both; the worker's log lines are JSON with the worker's id."""
    base = _free_port_pair()
    cluster.env |= {"OPSC_METRICS_PORT": str(base), "OPSC_METRICS_ADDR": "127.0.0.1", "OPSC_LOG_FORMAT": "json"}
    plan = tmp_path / "plan.yaml"
    plan.write_text("name: NAME\nsteps:\n  - {name: only, action: noop, target: localhost}\n")
    cluster.start_worker(processes=2, threads=2)
    cluster.wait_for_workers(2)
    [execution_id] = cluster.client("submit", "1", str(plan))["ids"]
    ids = tmp_path / "ids.json"
    ids.write_text(json.dumps([execution_id]))
    assert cluster.client("wait", str(ids), "60")["statuses"] == {execution_id: "completed"}

    bodies = [_scrape(base), _scrape(base + 1)]
    for body in bodies:
        for name, kind in (
            ("opsc_step_duration_seconds", "histogram"),
            ("opsc_queue_wait_seconds", "histogram"),
            ("opsc_lock_wait_seconds", "histogram"),
            ("opsc_step_retries_total", "counter"),
            ("opsc_permission_denials_total", "counter"),
            ("opsc_masked_secrets_total", "counter"),
            ("opsc_lease_expirations_total", "counter"),
            ("opsc_executions", "gauge"),
            ("opsc_dlq_depth", "gauge"),
            ("opsc_approvals_pending", "gauge"),
            ("opsc_approval_oldest_age_seconds", "gauge"),
        ):
            assert f"# TYPE {name} {kind}" in body, name
        assert 'opsc_step_retries_total{action_class="read"} 0.0' in body  # series exist from the start
        assert "_created" not in body  # no creation-time series: they would double the count for nothing
        assert _value(body, "opsc_metrics_database_up") == 1
        assert _value(body, 'opsc_dlq_depth{tenant="demo"}') == 0
    step = 'opsc_step_duration_seconds_count{action_class="read",sla_class="fast"}'
    assert sorted(_value(body, step) for body in bodies) == [0, 1]  # the step ran in one process, once
    executions = [line for line in bodies[0].splitlines() if line.startswith("opsc_executions{")]
    assert any('status="completed"' in line and 'tenant="demo"' in line for line in executions), executions

    log_lines = (tmp_path / "worker-0.log").read_text().splitlines()
    records = []
    for line in log_lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            continue  # the dramatiq supervisor (parent) process keeps its own text format
    started = [r for r in records if r.get("logger") == "jobs.middleware" and "started" in str(r.get("message"))]
    assert len(started) == 2, log_lines[-20:]
    assert all(str(r["worker"]).startswith("worker:") and "execution_id" in r for r in started)
