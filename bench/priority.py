"""Priority through real workers (issue 17 item 5): a fast plan submitted behind N long ones starts first.

Two configurations, each in a child process with a PostgreSQL database and Redis namespaces of its own:
priority as configured (``OPSC_PRIORITY_STEP_S`` 60 s, the default) and the baseline without it
(``OPSC_PRIORITY_STEP_S=0``: every row sorts by its queue time, the broker's FIFO). Each queues ``--long``
long plans (one noop step whose declared timeout only the long class holds: priority 0), spread over 64 local
assets so that per-asset locks do not order them, then one fast plan (priority 2) on an asset of its own, and
only then starts ``opsconductor worker`` (``--processes`` × ``--threads``). It prints, from the executions'
own timestamps: the fast plan's rank among all starts (1 = first), its queue wait, and the long plans' median
queue wait; the last line is JSON with every figure.

Usage: uv run python bench/priority.py [--long 500] [--processes 1] [--threads 4]
Needs PostgreSQL (OPSC_TEST_DATABASE_URL or 127.0.0.1:5432) and Redis (OPSC_TEST_REDIS_URL or :6379); it
creates and drops its own databases and uses its own Redis namespaces.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.scratch_db import scratch_postgres  # noqa: E402  (after the path: runnable as a script)
from bench.scratch_redis import scratch_namespace  # noqa: E402
from bench.throughput import REDIS_URL, start_group, stop_group  # noqa: E402

ASSETS = 64
LONG = "name: long-{n}\nsteps:\n  - {{name: s, action: noop, target: node-{a}, timeout_s: 50}}\n"
FAST = "name: urgent\nsteps:\n  - {name: s, action: noop, target: urgent-node}\n"


def child(long_plans: int, processes: int, threads: int, step_s: str) -> dict[str, Any]:
    """One configuration (in this process: the environment configures ``core`` at import)."""
    from cryptography.fernet import Fernet

    with scratch_postgres() as url, scratch_namespace(REDIS_URL, "bench-priority") as namespace:
        os.environ.update(
            {
                "OPSC_DATABASE_URL": url.render_as_string(hide_password=False),
                "OPSC_REDIS_URL": REDIS_URL,
                "OPSC_REDIS_NAMESPACE": namespace,
                "OPSC_SECRET_KEY": Fernet.generate_key().decode(),
                "OPSC_PRIORITY_STEP_S": step_s,
            }
        )
        import core  # configured by the environment above: import only now
        from db.engine import dispose_engines
        from ui import runtime

        core.initialize(demo=True)
        runtime.connect()
        admin, alice = core.principal("admin", "demo"), core.principal("alice", "demo")
        for n in range(ASSETS):
            core.add_asset(admin, f"node-{n}", core.Connection.LOCAL)
        core.add_asset(admin, "urgent-node", core.Connection.LOCAL)
        longs = [
            core.submit(alice, LONG.format(n=n, a=n % ASSETS), background=True).execution.execution_id
            for n in range(long_plans)
        ]
        fast = core.submit(alice, FAST, background=True).execution
        logs = Path(tempfile.mkdtemp(prefix="bench-priority-"))
        workers = start_group(
            [sys.executable, "-m", "ui.cli", "worker", "--processes", str(processes), "--threads", str(threads)],
            {**os.environ, "PYTHONPATH": str(ROOT)},
            logs / "workers.log",
        )
        try:
            views = {i: core.wait_for(alice, i, timeout_s=600, poll_s=0.1) for i in [*longs, fast.execution_id]}
        finally:
            stop_group(workers)
            dispose_engines()
    assert all(v.status == "completed" for v in views.values())
    started = sorted((v.started_at, i) for i, v in views.items() if v.started_at)
    rank = 1 + [i for _, i in started].index(fast.execution_id)
    wait = {i: (v.started_at - v.created_at).total_seconds() for i, v in views.items() if v.started_at}
    return {
        "priority_step_s": float(step_s),
        "fast_priority": fast.priority,
        "fast_rank": rank,
        "fast_wait_s": round(wait[fast.execution_id], 3),
        "long_wait_median_s": round(statistics.median(wait[i] for i in longs), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--long", type=int, default=500)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--child", help="run one configuration with this OPSC_PRIORITY_STEP_S (internal)")
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.long, args.processes, args.threads, args.child)))
        return
    rows = []
    for step_s in ("60", "0"):
        argv = [sys.executable, __file__, "--long", str(args.long), "--processes", str(args.processes)]
        done = subprocess.run(
            [*argv, "--threads", str(args.threads), "--child", step_s], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            sys.stderr.write(done.stdout + done.stderr)
            raise SystemExit(f"the configuration OPSC_PRIORITY_STEP_S={step_s} failed")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    for row in rows:
        name = "priority (60 s a point)" if row["priority_step_s"] else "baseline (FIFO)"
        print(
            f"{name:>24}: fast plan started {row['fast_rank']} of {args.long + 1}, waited {row['fast_wait_s']:.2f} s; "
            f"long plans waited {row['long_wait_median_s']:.2f} s (median)"
        )
    print(json.dumps({"long_plans": args.long, "rows": rows}))


if __name__ == "__main__":
    main()
