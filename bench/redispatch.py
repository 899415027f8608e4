"""Messages per plan under a backlog (issue 15 item 2): the sweeper's re-dispatch rule, old against new, in one run.

For each rule: a scratch PostgreSQL database and Redis namespace; ``--plans`` level-0 plans of 3 noop steps
queued in background mode, each on an asset of its own (so no lock hand-off adds a message: one message per
plan is the floor); then ``opsconductor worker`` processes start with the sweeper at its normal rhythm
(OPSC_SWEEP_INTERVAL_S 1 s, OPSC_REDISPATCH_AFTER_S 15 s) and drain the backlog slower than it was queued.
Every broker message is counted where it is sent (``opsc_messages_sent_total``: this process's submits plus
each worker process's metrics endpoint, read before the workers stop), and the sweeper's re-sends apart
(``opsc_redispatches_total``). Rules: ``age`` (OPSC_REDISPATCH_ASK_BROKER=0: whatever waited 15 s is sent
again, every 15 s) and ``broker`` (the default: only what the broker no longer holds). The last line is one
JSON object with every figure.

Usage: uv run python bench/redispatch.py [--plans 2000] [--processes 1] [--threads 4] [--rules age,broker]
Needs PostgreSQL (OPSC_TEST_DATABASE_URL or 127.0.0.1:5432) and Redis (OPSC_TEST_REDIS_URL or :6379).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.scratch_db import scratch_postgres  # noqa: E402  (after the path: runnable as a script)
from bench.scratch_redis import scratch_namespace  # noqa: E402
from bench.throughput import NOOP_PLAN, REDIS_URL, start_group, stop_group  # noqa: E402

RULES = {"age": "0", "broker": "1"}


def free_port_block(count: int) -> int:
    """A base port with ``count`` consecutive free ports after it (worker process N serves base+N)."""
    for base in range(19100, 29000, 17):
        try:
            for port in range(base, base + count):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no free port block")


def scrape(port: int, name: str) -> float:
    """The value of the unlabelled sample ``name`` on a worker process's metrics endpoint."""
    body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    found = re.search(rf"^{name} (\S+)$", body, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def one_rule(rule: str, plans: int, processes: int, threads: int, logs: Path) -> dict[str, float]:
    """Queue ``plans`` plans under ``rule`` in a fresh database and namespace, drain them, count the messages."""
    from cryptography.fernet import Fernet
    from prometheus_client import REGISTRY

    with scratch_postgres() as url, scratch_namespace(REDIS_URL, f"bench-redispatch-{rule}") as namespace:
        port = free_port_block(processes)
        os.environ.update(
            {
                "OPSC_DATABASE_URL": url.render_as_string(hide_password=False),
                "OPSC_REDIS_URL": REDIS_URL,
                "OPSC_REDIS_NAMESPACE": namespace,
                "OPSC_SECRET_KEY": Fernet.generate_key().decode(),
                "OPSC_REDISPATCH_ASK_BROKER": RULES[rule],
                "OPSC_METRICS_PORT": str(port),
                "OPSC_METRICS_ADDR": "127.0.0.1",
            }
        )
        import core
        from db.engine import dispose_engines
        from ui import runtime

        core.initialize(demo=True)
        runtime.connect()
        admin, alice = core.principal("admin", "demo"), core.principal("alice", "demo")
        for n in range(plans):
            core.add_asset(admin, f"node-{n}", core.Connection.LOCAL)
        sent_before = REGISTRY.get_sample_value("opsc_messages_sent_total") or 0.0
        started = time.monotonic()
        ids = [
            core.submit(
                alice, NOOP_PLAN.replace("{name}", f"backlog-{n}").replace("TARGET", f"node-{n}"), background=True
            ).execution.execution_id
            for n in range(plans)
        ]
        queue_s = time.monotonic() - started
        submitted = (REGISTRY.get_sample_value("opsc_messages_sent_total") or 0.0) - sent_before
        workers = start_group(
            [sys.executable, "-m", "ui.cli", "worker", "--processes", str(processes), "--threads", str(threads)],
            dict(os.environ),
            logs / f"redispatch-{rule}-workers.log",
        )
        try:
            drain_started = time.monotonic()
            views = [core.wait_for(alice, i, timeout_s=1200, poll_s=0.2) for i in ids]
            drain_s = time.monotonic() - drain_started
            assert all(v.status == "completed" for v in views), [v.status for v in views if v.status != "completed"]
            by_workers = sum(scrape(port + n, "opsc_messages_sent_total") for n in range(processes))
            resent = sum(scrape(port + n, "opsc_redispatches_total") for n in range(processes))
        finally:
            stop_group(workers)
            dispose_engines()
    total = submitted + by_workers
    return {
        "messages": total,
        "messages_per_plan": total / plans,
        "redispatches": resent,
        "redispatches_per_plan": resent / plans,
        "queue_s": queue_s,
        "drain_s": drain_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plans", type=int, default=2000)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--rules", default="age,broker")
    parser.add_argument("--one-rule", help=argparse.SUPPRESS)  # a child run: one rule, its figures as JSON
    args = parser.parse_args()
    logs = Path(os.environ.get("BENCH_LOG_DIR", ROOT / ".bench-logs"))
    logs.mkdir(parents=True, exist_ok=True)
    if args.one_rule:
        print(json.dumps(one_rule(args.one_rule, args.plans, args.processes, args.threads, logs)))
        return
    results: dict[str, dict[str, float]] = {}
    for rule in args.rules.split(","):
        print(f"rule {rule}: {args.plans} plans queued, {args.processes} x {args.threads} workers ...", flush=True)
        # A process per rule: the broker (and its namespace) is chosen once per process (jobs/broker.py).
        child = [sys.executable, __file__, "--one-rule", rule, "--plans", str(args.plans)]
        child += ["--processes", str(args.processes), "--threads", str(args.threads)]
        out = subprocess.run(child, cwd=ROOT, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise SystemExit(f"rule {rule} failed:\n{out.stderr[-4000:]}")
        results[rule] = figures = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"  {figures['messages_per_plan']:.2f} messages per plan ({figures['messages']:.0f}),"
            f" {figures['redispatches_per_plan']:.2f} re-sent by the sweeper; queued in {figures['queue_s']:.0f} s,"
            f" drained in {figures['drain_s']:.0f} s",
            flush=True,
        )
    if {"age", "broker"} <= results.keys():
        ratio = results["age"]["messages_per_plan"] / results["broker"]["messages_per_plan"]
        print(f"  the age rule sent {ratio:.2f} x the messages of the broker rule")
    print(json.dumps({"plans": args.plans, "processes": args.processes, "threads": args.threads, **results}))


if __name__ == "__main__":
    main()
