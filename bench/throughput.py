"""Throughput and latency of the job runner against a raw Dramatiq floor, in one run (issue: job runner).

Measures, on the same PostgreSQL and Redis, with the same number of worker processes and threads:
  (a) raw floor: plain Dramatiq, one PostgreSQL insert per message (bench/raw_floor_actors.py);
  (b) OpsConductor: N level-0 plans of 3 noop steps on 64 assets, submitted in background mode, run by
      `opsconductor worker` processes through the full path (claim, lease, events, dispatch per step).
Prints steps/s for both and their ratio, submit latency p50/p99, submit→completed p50/p99,
approve→first-step-started p95 (level-1 plans), and the peak RSS of a worker process; the last line
is one JSON object with every figure.

Usage: uv run python bench/throughput.py [--plans 300] [--processes 2] [--threads 4] [--approvals 30]
Needs PostgreSQL (OPSC_TEST_DATABASE_URL or 127.0.0.1:5432) and Redis (OPSC_TEST_REDIS_URL or :6379);
it creates and drops its own database and uses its own Redis namespaces.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import psycopg2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.scratch_db import scratch_postgres  # noqa: E402  (after the path: runnable as a script)
from bench.scratch_redis import scratch_namespace  # noqa: E402

REDIS_URL = os.environ.get("OPSC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
NOOP_PLAN = "name: {name}\nsteps:\n" + "".join(f"  - {{name: s{i}, action: noop, target: TARGET}}\n" for i in range(3))
ASSETS = 64
HANDOFF_PLANS = 100
MODIFY_PLAN = "name: {name}\nsteps:\n  - {name: m, action: noop, target: localhost, action_class: modify}\n"


def percentile(values: list[float], pct: float) -> float:
    """The pct-th percentile (nearest rank) of ``values``, in the values' unit."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))]


def peak_rss_mb(group_leader: int) -> float:
    """The largest peak RSS (VmHWM) among the processes of a process group, in MB."""
    peak = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != group_leader:
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) / 1024)
        except (OSError, ProcessLookupError):
            continue
    return peak


def start_group(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("wb")
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def raw_floor(dsn: str, messages: int, processes: int, threads: int, logs: Path, namespace: str) -> dict[str, float]:
    """Plain Dramatiq + one insert per message: queue ``messages``, start the workers, time the drain."""
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE bench_raw (id bigserial PRIMARY KEY, n int NOT NULL,"
            " at timestamptz DEFAULT clock_timestamp())"
        )
    env = {**os.environ, "BENCH_REDIS_URL": REDIS_URL, "BENCH_NAMESPACE": namespace, "BENCH_PG_DSN": dsn}
    os.environ.update({"BENCH_REDIS_URL": REDIS_URL, "BENCH_NAMESPACE": namespace, "BENCH_PG_DSN": dsn})
    sys.path.insert(0, str(ROOT))
    from bench import raw_floor_actors

    for n in range(messages):
        raw_floor_actors.insert_row.send(n)
    argv = [
        sys.executable,
        "-m",
        "dramatiq",
        "bench.raw_floor_actors",
        "--processes",
        str(processes),
        "--threads",
        str(threads),
    ]
    workers = start_group(argv, {**env, "dramatiq_worker_timeout": "100"}, logs / "raw-workers.log")
    try:
        _wait_rows(conn, messages, 300)
        rss = peak_rss_mb(workers.pid)
        with conn.cursor() as cur:
            cur.execute("SELECT extract(epoch FROM max(at) - min(at)) FROM bench_raw")
            elapsed = float(cur.fetchone()[0])  # type: ignore[index]
    finally:
        stop_group(workers)
        conn.close()
    return {"steps_per_s": (messages - 1) / elapsed, "seconds": elapsed, "peak_rss_mb": rss}


def _wait_rows(conn: psycopg2.extensions.connection, count: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    with conn.cursor() as cur:
        while time.monotonic() < deadline:
            cur.execute("SELECT count(*) FROM bench_raw")
            if cur.fetchone()[0] >= count:  # type: ignore[index]
                return
            time.sleep(0.01)
    raise TimeoutError(f"raw floor: fewer than {count} rows after {timeout_s}s")


def opsconductor(
    url: str, plans: int, approvals: int, processes: int, threads: int, logs: Path, namespace: str
) -> dict[str, float]:
    """The full path. Throughput: queue ``plans`` 3-noop-step plans (background), start `opsconductor worker`
    processes, time the drain from the first step started to the last step finished. Latency: with the
    workers up, submit plans one by one and time submit and submit→completed; then level-1 plans."""
    from cryptography.fernet import Fernet

    os.environ.update(
        {
            "OPSC_DATABASE_URL": url,
            "OPSC_REDIS_URL": REDIS_URL,
            "OPSC_REDIS_NAMESPACE": namespace,
            "OPSC_SECRET_KEY": Fernet.generate_key().decode(),
        }
    )
    import core  # configured by the environment above: import only now
    from ui import runtime

    core.initialize(demo=True)
    runtime.connect()
    # A fleet: one plan at a time per asset (DESIGN §3.9), so plans spread over ASSETS local assets.
    admin = core.principal("admin", "demo")
    for n in range(ASSETS):
        core.add_asset(admin, f"node-{n}", core.Connection.LOCAL)
    alice, bob = core.principal("alice", "demo"), core.principal("bob", "demo")
    queued = [submit_background(core, alice, f"drain-{i}")[0] for i in range(plans)]
    workers = start_group(
        [sys.executable, "-m", "ui.cli", "worker", "--processes", str(processes), "--threads", str(threads)],
        dict(os.environ),
        logs / "opsc-workers.log",
    )
    try:
        views = [core.wait_for(alice, i, timeout_s=600, poll_s=0.05) for i in queued]
        assert all(v.status == "completed" for v in views), [v.status for v in views if v.status != "completed"]
        first = min(s.started_at for v in views for s in v.steps)  # type: ignore[type-var]
        last = max(s.finished_at for v in views for s in v.steps)  # type: ignore[type-var]
        drain_s = (last - first).total_seconds()
        submit_ms, completed_ms = [], []
        for i in range(min(plans, 100)):
            execution_id, took_ms = submit_background(core, alice, f"latency-{i}")
            submit_ms.append(took_ms)
            view = core.wait_for(alice, execution_id, timeout_s=60, poll_s=0.005)
            completed_ms.append((view.finished_at - view.created_at).total_seconds() * 1000)  # type: ignore[operator]
        approve_ms: list[float] = []
        for i in range(approvals):
            execution_id = core.submit(alice, MODIFY_PLAN.replace("{name}", f"approve-{i}")).execution.execution_id
            core.approve(bob, execution_id)
            core.wait_for(alice, execution_id, timeout_s=60, poll_s=0.01)
            decided = max(a.created_at for a in core.get_execution(alice, execution_id).approvals)
            started = next(e for e in core.list_events(alice, execution_id) if e.kind == "step_started")
            approve_ms.append((started.created_at - decided).total_seconds() * 1000)
        handoff_ms = lock_handoff_ms(core, alice, HANDOFF_PLANS)
        rss = peak_rss_mb(workers.pid)
    finally:
        stop_group(workers)
    return {
        "steps_per_s": 3 * plans / drain_s,
        "seconds": drain_s,
        "submit_ms_p50": percentile(submit_ms, 50),
        "submit_ms_p99": percentile(submit_ms, 99),
        "completed_ms_p50": percentile(completed_ms, 50),
        "completed_ms_p99": percentile(completed_ms, 99),
        "approve_to_first_step_ms_p95": percentile(approve_ms, 95),
        "lock_handoff_ms_p50": percentile(handoff_ms, 50),
        "lock_handoff_ms_p95": percentile(handoff_ms, 95),
        "peak_rss_mb": rss,
    }


def lock_handoff_ms(core: Any, alice: Any, plans: int) -> list[float]:
    """``plans`` one-step plans on one asset, queued at once: for each holder after the first, the time from
    the previous holder's end (its locks released in that commit) to its own first step starting."""
    ids = [
        core.submit(
            alice, f"name: handoff-{i}\nsteps:\n  - {{name: n, action: noop, target: localhost}}\n", background=True
        ).execution.execution_id
        for i in range(plans)
    ]
    views = sorted((core.wait_for(alice, i, timeout_s=600, poll_s=0.05) for i in ids), key=lambda v: v.started_at)
    assert all(v.status == "completed" for v in views)
    return [
        (after.steps[0].started_at - before.finished_at).total_seconds() * 1000
        for before, after in itertools.pairwise(views)
    ]


def deadlock_count(dsn: str) -> int:
    """``pg_stat_database.deadlocks`` of the run's database, once its other backends have exited (a backend
    flushes its counters when it exits; the workers are stopped and the engines disposed by now)."""
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                cur.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND pid <> pg_backend_pid()"
                )
                if cur.fetchone()[0] == 0:  # type: ignore[index]
                    break
                time.sleep(0.05)
            cur.execute("SELECT pg_stat_clear_snapshot()")
            cur.execute("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
            return int(cur.fetchone()[0])  # type: ignore[index]
    finally:
        conn.close()


def submit_background(core: Any, alice: Any, name: str) -> tuple[str, float]:
    """Submit one 3-noop-step plan in background mode; its id and how long submit took (ms)."""
    started = time.perf_counter()
    target = f"node-{zlib.crc32(name.encode()) % ASSETS}"
    result = core.submit(alice, NOOP_PLAN.replace("{name}", name).replace("TARGET", target), background=True)
    return result.execution.execution_id, (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plans", type=int, default=300)
    parser.add_argument("--approvals", type=int, default=30)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    logs = Path(os.environ.get("BENCH_LOG_DIR", ROOT / ".bench-logs"))
    logs.mkdir(parents=True, exist_ok=True)
    with scratch_postgres() as url:
        dsn = (
            f"dbname={url.database} user={url.username or 'postgres'} host={url.host or '127.0.0.1'}"
            f" port={url.port or 5432}"
        )
        try:
            print(
                f"raw floor: {3 * args.plans} messages, {args.processes} processes x {args.threads} threads ...",
                flush=True,
            )
            with scratch_namespace(REDIS_URL, "bench-raw") as namespace:
                raw = raw_floor(dsn, 3 * args.plans, args.processes, args.threads, logs, namespace)
            print(f"  {raw['steps_per_s']:.0f} steps/s", flush=True)
            print(f"opsconductor: {args.plans} plans x 3 noop steps ...", flush=True)
            with scratch_namespace(REDIS_URL, "bench-opsc") as namespace:
                ops = opsconductor(
                    url.render_as_string(hide_password=False),
                    args.plans,
                    args.approvals,
                    args.processes,
                    args.threads,
                    logs,
                    namespace,
                )
        finally:
            from db.engine import dispose_engines

            dispose_engines()
        deadlocks = deadlock_count(dsn)
    ratio = ops["steps_per_s"] / raw["steps_per_s"]
    print(f"  {ops['steps_per_s']:.0f} steps/s = {ratio:.0%} of the raw floor")
    print(f"  submit latency p50 {ops['submit_ms_p50']:.1f} ms, p99 {ops['submit_ms_p99']:.1f} ms")
    print(f"  submit→completed p50 {ops['completed_ms_p50']:.0f} ms, p99 {ops['completed_ms_p99']:.0f} ms")
    print(f"  approve→first step started p95 {ops['approve_to_first_step_ms_p95']:.0f} ms")
    print(
        f"  lock hand-off (release→next waiter's first step) p50 {ops['lock_handoff_ms_p50']:.0f} ms,"
        f" p95 {ops['lock_handoff_ms_p95']:.0f} ms"
    )
    print(f"  PostgreSQL deadlocks in the run's database: {deadlocks}")
    print(f"  peak RSS of a worker process {ops['peak_rss_mb']:.0f} MB (raw floor worker {raw['peak_rss_mb']:.0f} MB)")
    result = {
        "plans": args.plans,
        "processes": args.processes,
        "threads": args.threads,
        "raw_steps_per_s": round(raw["steps_per_s"], 1),
        "opsc_steps_per_s": round(ops["steps_per_s"], 1),
        "ratio": round(ratio, 3),
        **{k: round(v, 1) for k, v in ops.items() if k != "steps_per_s"},
        "raw_peak_rss_mb": round(raw["peak_rss_mb"], 1),
        "deadlocks": deadlocks,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
