"""Throughput and cost of the job runner against a raw Dramatiq floor, in one run (issue 15).

Measures, on the same PostgreSQL and Redis, with the same number of worker processes and threads:
  (a) raw floor: plain Dramatiq, one PostgreSQL insert per message (bench/raw_floor_actors.py);
  (b) OpsConductor: N level-0 plans of 3 noop steps on 64 assets, submitted in background mode, run by
      `opsconductor worker` processes through the full path (claim, lease, events, dispatch per step).
Prints steps/s for both and their ratio and, for the drain's window (first step started to last finished),
what a step cost: worker CPU ms, PostgreSQL CPU ms (the backends serving the workers, from /proc),
statements and transactions (counted inside the workers, bench/counting). With latency figures: submit
p50/p99, submit→completed p50/p99, approve→first step p95 (level-1 plans), lock hand-off p50/p95, and the
peak RSS of a worker process.

Several process counts (``--processes 1,2,4``, the default) run one after another, each in a child process of
this script with a database and Redis namespaces of its own, and then the modes without Redis
(bench/inprocess_modes.py: the embedded default on SQLite, and the immediate mode on both databases). The
latency figures come from the ``--latency-at`` process count. The last line is one JSON object with every
figure.

Usage: uv run python bench/throughput.py [--plans 300] [--processes 1,2,4] [--threads 4] [--approvals 30] [--kinds]
                                         [--latency-at 2] [--no-modes]
Needs PostgreSQL (OPSC_TEST_DATABASE_URL or 127.0.0.1:5432) and Redis (OPSC_TEST_REDIS_URL or :6379);
it creates and drops its own databases and uses its own Redis namespaces.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.cpu_timeline import CostTimeline, Reading  # noqa: E402  (after the path: runnable as a script)
from bench.scratch_db import scratch_database, scratch_postgres  # noqa: E402
from bench.scratch_redis import scratch_namespace  # noqa: E402

REDIS_URL = os.environ.get("OPSC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
NOOP_PLAN = "name: {name}\nsteps:\n" + "".join(f"  - {{name: s{i}, action: noop, target: TARGET}}\n" for i in range(3))
ASSETS = 64
HANDOFF_PLANS = 100
MODIFY_PLAN = "name: {name}\nsteps:\n  - {name: m, action: noop, target: localhost, action_class: modify}\n"
# Who a backend serves (libpq's PGAPPNAME): the workers' backends are measured, the bench's own are not.
RAW_APP, OPSC_APP, BENCH_APP = "bench-raw-worker", "bench-opsc-worker", "bench"


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


def raw_floor(
    dsn: str, admin_dsn: str, messages: int, processes: int, threads: int, logs: Path, namespace: str
) -> dict[str, float]:
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
    env = {**env, "dramatiq_worker_timeout": "100", "PGAPPNAME": RAW_APP}
    workers = start_group(argv, env, logs / "raw-workers.log")
    timeline = CostTimeline(workers.pid, admin_dsn, conn.info.dbname, RAW_APP, None).start()
    try:
        _wait_rows(conn, messages, 300)
        rss = peak_rss_mb(workers.pid)
        with conn.cursor() as cur:
            cur.execute("SELECT extract(epoch FROM min(at)), extract(epoch FROM max(at)) FROM bench_raw")
            first, last = (float(v) for v in cur.fetchone())  # type: ignore[union-attr]
        time.sleep(0.1)  # one more sample after the last row
    finally:
        timeline.stop()
        stop_group(workers)
        conn.close()
    return {
        "steps_per_s": (messages - 1) / (last - first),
        "seconds": last - first,
        "peak_rss_mb": rss,
        **cost_per_step(timeline.at(first), timeline.at(last), messages - 1),
    }


def cost_per_step(start: Reading, end: Reading, steps: int) -> dict[str, float]:
    """What the window between two readings cost, per step."""
    return {
        "worker_cpu_ms_per_step": 1000 * (end.worker_cpu_s - start.worker_cpu_s) / steps,
        "database_cpu_ms_per_step": 1000 * (end.database_cpu_s - start.database_cpu_s) / steps,
        "statements_per_step": (end.statements - start.statements) / steps,
        "transactions_per_step": (end.transactions - start.transactions) / steps,
    }


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
    url: str,
    admin_dsn: str,
    plans: int,
    approvals: int,
    processes: int,
    threads: int,
    logs: Path,
    namespace: str,
    *,
    latency: bool,
    history: int = 0,
    dsn: str = "",
    kinds: bool = False,
) -> dict[str, float]:
    """The full path. Throughput: queue ``plans`` 3-noop-step plans (background), start `opsconductor worker`
    processes, time the drain from the first step started to the last step finished. Latency (if asked): with
    the workers up, submit plans one by one and time submit and submit→completed; then level-1 plans."""
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
    if history:
        from bench.history import clone_history
        from core import engine

        template = submit_background(core, alice, "history")[0]
        while engine.process(template, worker_id="bench-history") is not engine.Outcome.FINISHED:
            pass
        took = clone_history(dsn, template, history)
        print(f"  history: {history:,} completed executions cloned in {took:.1f} s", flush=True)
    queued = [submit_background(core, alice, f"drain-{i}")[0] for i in range(plans)]
    counts = Path(tempfile.mkdtemp(prefix="bench-counts-"))
    kinds_dir = Path(tempfile.mkdtemp(prefix="bench-kinds-")) if kinds else None
    env = {
        **os.environ,
        "PGAPPNAME": OPSC_APP,
        "BENCH_COUNT_DIR": str(counts),
        "PYTHONPATH": os.pathsep.join([str(ROOT / "bench" / "counting"), str(ROOT)]),
        **({"BENCH_KINDS_DIR": str(kinds_dir)} if kinds_dir else {}),
    }
    workers = start_group(
        [sys.executable, "-m", "ui.cli", "worker", "--processes", str(processes), "--threads", str(threads)],
        env,
        logs / "opsc-workers.log",
    )
    timeline = CostTimeline(workers.pid, admin_dsn, url.rsplit("/", 1)[1], OPSC_APP, counts).start()
    figures: dict[str, float] = {}
    try:
        views = [core.wait_for(alice, i, timeout_s=600, poll_s=0.05) for i in queued]
        assert all(v.status == "completed" for v in views), [v.status for v in views if v.status != "completed"]
        first = min(s.started_at for v in views for s in v.steps if s.started_at)
        last = max(s.finished_at for v in views for s in v.steps if s.finished_at)
        drain_s = (last - first).total_seconds()
        time.sleep(0.2)  # a sample or two after the last step
        cost = cost_per_step(timeline.at(first.timestamp()), timeline.at(last.timestamp()), 3 * plans)
        waits = timeline.waits_between(first.timestamp(), last.timestamp())
        lock_waits = timeline.lock_waits_between(first.timestamp(), last.timestamp())
        if kinds_dir:  # read before the latency phase adds its own statements
            print_kinds(kinds_dir, 3 * plans)
        if latency:
            figures = latency_figures(core, alice, bob, plans, approvals)
        rss = peak_rss_mb(workers.pid)
    finally:
        timeline.stop()
        stop_group(workers)
    found = {"steps_per_s": 3 * plans / drain_s, "seconds": drain_s, **cost, **figures, "peak_rss_mb": rss}
    for statement, samples in lock_waits.most_common(4):
        print(f"  lock waits: {samples} samples in {statement}")
    return {**found, **{f"backends {state}": share for state, share in waits.items()}}


def latency_figures(core: Any, alice: Any, bob: Any, plans: int, approvals: int) -> dict[str, float]:
    """Submit latency and submit→completed (one plan at a time), approve→first step, lock hand-off."""
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
    return {
        "submit_ms_p50": percentile(submit_ms, 50),
        "submit_ms_p99": percentile(submit_ms, 99),
        "completed_ms_p50": percentile(completed_ms, 50),
        "completed_ms_p99": percentile(completed_ms, 99),
        "approve_to_first_step_ms_p95": percentile(approve_ms, 95),
        "lock_handoff_ms_p50": percentile(handoff_ms, 50),
        "lock_handoff_ms_p95": percentile(handoff_ms, 95),
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


def print_kinds(directory: Path, steps: int, most: int = 16) -> None:
    """The workers' statements by kind (their first 70 characters), per step, most frequent first: every
    statement the workers sent since they started, which before the latency phase is the drain's."""
    found: Counter[str] = Counter()
    for path in directory.glob("[0-9]*.json"):
        found.update(json.loads(path.read_text()))
    print(f"  statements by kind, per step ({sum(found.values()) / steps:.2f} in all):")
    for kind, count in found.most_common(most):
        print(f"    {count / steps:6.3f}  {kind}")


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
    parser.add_argument("--processes", default="1,2,4", help="worker process counts, comma-separated")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--latency-at", type=int, default=2, help="the process count that measures latency")
    parser.add_argument("--no-modes", action="store_true", help="skip the embedded and immediate modes")
    parser.add_argument("--history", type=int, default=0, help="completed executions in the database before")
    parser.add_argument("--kinds", action="store_true", help="print the workers' statements per step by kind")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a child: one process count
    args = parser.parse_args()
    os.environ["PGAPPNAME"] = BENCH_APP  # this process's own connections are not the workers' cost
    counts = [int(n) for n in args.processes.split(",")]
    if args.one:
        print(json.dumps(one_configuration(args, counts[0], latency=counts[0] == args.latency_at)))
        return
    rows = []
    for n in counts:
        print(f"{n} worker processes x {args.threads} threads, {args.plans} plans x 3 noop steps ...", flush=True)
        argv = [sys.executable, __file__, "--one", "--processes", str(n), "--plans", str(args.plans)]
        argv += [
            "--threads",
            str(args.threads),
            "--approvals",
            str(args.approvals),
            "--latency-at",
            str(args.latency_at),
            *(["--kinds"] if args.kinds else []),
        ]
        rows.append(child_figures(argv))
        print_configuration(rows[-1])
    modes = [] if args.no_modes else in_process_modes(args.plans, args.threads)
    print_summary(rows, modes)
    print(json.dumps({"configurations": rows, "modes": modes}))


def child_figures(argv: list[str]) -> dict[str, Any]:
    """Run ``argv`` (this script or bench/inprocess_modes.py) and return the JSON of its last line."""
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"{argv[1]} failed with exit code {done.returncode}")
    *said, last = done.stdout.strip().splitlines()
    for line in said:
        print(line)
    return dict(json.loads(last))


def one_configuration(args: argparse.Namespace, processes: int, *, latency: bool) -> dict[str, Any]:
    """The raw floor and OpsConductor with ``processes`` worker processes, on a database of their own."""
    logs = Path(os.environ.get("BENCH_LOG_DIR", ROOT / ".bench-logs"))
    logs.mkdir(parents=True, exist_ok=True)
    with scratch_postgres() as url:
        host = f"user={url.username or 'postgres'} host={url.host or '127.0.0.1'} port={url.port or 5432}"
        dsn, admin_dsn = f"dbname={url.database} {host}", f"dbname=postgres {host}"
        try:
            with scratch_namespace(REDIS_URL, "bench-raw") as namespace:
                raw = raw_floor(dsn, admin_dsn, 3 * args.plans, processes, args.threads, logs, namespace)
            with scratch_namespace(REDIS_URL, "bench-opsc") as namespace:
                ops = opsconductor(
                    url.render_as_string(hide_password=False),
                    admin_dsn,
                    args.plans,
                    args.approvals,
                    processes,
                    args.threads,
                    logs,
                    namespace,
                    latency=latency,
                    history=args.history,
                    dsn=dsn,
                    kinds=args.kinds,
                )
        finally:
            from db.engine import dispose_engines

            dispose_engines()
        deadlocks = deadlock_count(dsn)
    return {
        "plans": args.plans,
        "history": args.history,
        "processes": processes,
        "threads": args.threads,
        "ratio": round(ops["steps_per_s"] / raw["steps_per_s"], 3),
        **{f"raw_{k}": round(v, 2) for k, v in raw.items()},
        **{f"opsc_{k}": round(v, 2) for k, v in ops.items()},
        "deadlocks": deadlocks,
    }


def in_process_modes(plans: int, threads: int) -> list[dict[str, Any]]:
    """The embedded default (SQLite file, in-process broker) and the immediate mode on SQLite and PostgreSQL."""
    script = str(ROOT / "bench" / "inprocess_modes.py")
    found = []
    for mode, database in (("embedded", "sqlite"), ("immediate", "sqlite"), ("immediate", "postgresql")):
        print(f"{mode} mode on {database}, {plans} plans x 3 noop steps ...", flush=True)
        with scratch_database(database) as url:
            argv = [sys.executable, script, mode, url, "--plans", str(plans), "--threads", str(threads)]
            found.append(child_figures(argv))
        print(
            f"  {found[-1]['steps_per_s']:.0f} steps/s, {found[-1]['cpu_ms_per_step']:.2f} CPU ms/step"
            f" (database CPU included on SQLite), {found[-1]['statements_per_step']:.1f} statements/step,"
            f" {found[-1]['transactions_per_step']:.2f} transactions/step",
            flush=True,
        )
    return found


def print_configuration(row: dict[str, Any]) -> None:
    """One process count's figures, as lines a reader can follow."""
    print(f"  raw floor {row['raw_steps_per_s']:.0f} steps/s; opsconductor {row['opsc_steps_per_s']:.0f} steps/s"
          f" = {row['ratio']:.1%} of the floor")  # fmt: skip
    for who in ("raw", "opsc"):
        print(
            f"  {who:>4} per step: worker CPU {row[f'{who}_worker_cpu_ms_per_step']:.2f} ms,"
            f" PostgreSQL CPU {row[f'{who}_database_cpu_ms_per_step']:.2f} ms"
            + (
                f", {row['opsc_statements_per_step']:.1f} statements, {row['opsc_transactions_per_step']:.2f}"
                " transactions"
                if who == "opsc"
                else ", 1 statement, 1 transaction"
            )
        )
    if "opsc_submit_ms_p50" in row:
        print(f"  submit latency p50 {row['opsc_submit_ms_p50']:.1f} ms, p99 {row['opsc_submit_ms_p99']:.1f} ms")
        print(
            f"  submit→completed p50 {row['opsc_completed_ms_p50']:.0f} ms, p99 {row['opsc_completed_ms_p99']:.0f} ms"
        )
        print(f"  approve→first step started p95 {row['opsc_approve_to_first_step_ms_p95']:.0f} ms")
        handoff = row["opsc_lock_handoff_ms_p50"], row["opsc_lock_handoff_ms_p95"]
        print(f"  lock hand-off p50 {handoff[0]:.0f} ms, p95 {handoff[1]:.0f} ms")
    states = ", ".join(f"{k.split(' ', 1)[1]} {v:.0%}" for k, v in row.items() if k.startswith("opsc_backends "))
    print(f"  the workers' PostgreSQL backends during the drain: {states}")
    print(f"  PostgreSQL deadlocks {row['deadlocks']}; peak worker RSS {row['opsc_peak_rss_mb']:.0f} MB"
          f" (raw floor worker {row['raw_peak_rss_mb']:.0f} MB)", flush=True)  # fmt: skip


def print_summary(rows: list[dict[str, Any]], modes: list[dict[str, Any]]) -> None:
    """The matrix in one table (markdown, for docs/benchmarks.md), and the scaling against one process."""
    print("\n| processes × threads | raw floor steps/s | OpsConductor steps/s | ratio | worker CPU ms/step | "
          "PostgreSQL CPU ms/step | statements/step | transactions/step |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['processes']} × {r['threads']} | {r['raw_steps_per_s']:,.0f} | {r['opsc_steps_per_s']:,.0f} |"
            f" {r['ratio']:.3f} | {r['opsc_worker_cpu_ms_per_step']:.2f} (floor {r['raw_worker_cpu_ms_per_step']:.2f})"
            f" | {r['opsc_database_cpu_ms_per_step']:.2f} (floor {r['raw_database_cpu_ms_per_step']:.2f}) |"
            f" {r['opsc_statements_per_step']:.1f} | {r['opsc_transactions_per_step']:.2f} |"
        )
    for m in modes:
        print(f"| {m['mode']} on {m['database']} (in-process) | | {m['steps_per_s']:,.0f} | |"
              f" {m['cpu_ms_per_step']:.2f} | | {m['statements_per_step']:.1f} |"
              f" {m['transactions_per_step']:.2f} |")  # fmt: skip
    one = next((r for r in rows if r["processes"] == 1), None)
    if one is not None:
        for r in rows:
            if r is not one:
                print(f"{r['processes']} processes / 1 process: OpsConductor"
                      f" {r['opsc_steps_per_s'] / one['opsc_steps_per_s']:.2f}×,"
                      f" raw floor {r['raw_steps_per_s'] / one['raw_steps_per_s']:.2f}×")  # fmt: skip


if __name__ == "__main__":
    main()
