"""The two modes that need no Redis, measured in this one process (bench/throughput.py runs it as a child).

- ``embedded``: the embedded default (DESIGN §10): N 3-noop-step plans queued in background mode, then the
  in-process broker's worker threads (jobs/runtime.py) drain them. Steps/s from the first step started to
  the last one finished; CPU ms per step is this process's CPU over the drain (``time.process_time``: the
  threads are this process's; SQLite runs inside it too, PostgreSQL does not).
- ``immediate``: N fast level-0 plans submitted one by one and run in the caller (DESIGN §5), so each
  figure includes the submit's own cost.

Statements and transactions are counted by SQLAlchemy listeners (bench/statements.py); completion is
watched with SQL outside them, so the waiting is not counted. Prints one line of JSON.

Usage: python bench/inprocess_modes.py MODE DATABASE_URL [--plans 300] [--threads 4]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.statements import StatementCounter  # noqa: E402  (after the path: runnable as a script)

STEPS = 3
ASSETS = 64
PLAN = "name: {name}\nsteps:\n" + "".join(f"  - {{name: s{i}, action: noop, target: TARGET}}\n" for i in range(STEPS))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["embedded", "immediate"])
    parser.add_argument("database_url")
    parser.add_argument("--plans", type=int, default=300)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    os.environ.pop("OPSC_REDIS_URL", None)  # both modes are the ones without Redis
    os.environ["OPSC_DATABASE_URL"] = args.database_url
    os.environ["OPSC_ALLOW_UNCONFINED_STEPS"] = "1"  # noop steps start no process
    if "OPSC_SECRET_KEY" not in os.environ:
        from cryptography.fernet import Fernet

        os.environ["OPSC_SECRET_KEY"] = Fernet.generate_key().decode()
    from sqlalchemy import text

    import core
    from core.transactions import session_scope
    from db.dbapi import utc

    core.initialize(demo=True)
    admin, alice = core.principal("admin", "demo"), core.principal("alice", "demo")
    for n in range(ASSETS):
        core.add_asset(admin, f"node-{n}", core.Connection.LOCAL)
    plans = [
        PLAN.replace("{name}", f"{args.mode}-{i}").replace("TARGET", f"node-{i % ASSETS}") for i in range(args.plans)
    ]
    counter = StatementCounter()
    if args.mode == "immediate":
        statements, transactions = counter.count, counter.transactions
        cpu, wall = time.process_time(), time.perf_counter()
        for plan in plans:
            result = core.submit(alice, plan)
            assert result.execution.status == "completed", result.execution.status  # ran in the caller
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    else:
        from jobs.runtime import start_embedded, stop_embedded

        for plan in plans:
            core.submit(alice, plan, background=True)
        statements, transactions = counter.count, counter.transactions
        cpu = time.process_time()
        start_embedded(args.threads)
        _wait_all_ended(args.database_url, args.plans)
        cpu = time.process_time() - cpu
        stop_embedded()
    statements, transactions = counter.count - statements, counter.transactions - transactions
    with session_scope() as session:
        first, last, done = session.execute(
            text(
                "SELECT min(s.started_at), max(s.finished_at),"
                " count(DISTINCT e.id) FILTER (WHERE e.status = 'completed')"
                " FROM execution_steps s JOIN executions e ON e.id = s.execution_id"
            )
        ).one()
    assert done == args.plans, f"{done} of {args.plans} completed"  # figures of unfinished work mean nothing
    if args.mode == "embedded":
        wall = (utc(last) - utc(first)).total_seconds()  # type: ignore[operator]
    steps = STEPS * args.plans
    print(
        json.dumps(
            {
                "mode": args.mode,
                "database": args.database_url.split(":")[0],
                "steps_per_s": round(steps / wall, 1),
                "cpu_ms_per_step": round(1000 * cpu / steps, 2),
                "statements_per_step": round(statements / steps, 1),
                "transactions_per_step": round(transactions / steps, 2),
            }
        )
    )


def _wait_all_ended(url: str, plans: int) -> None:
    """Until every execution has ended, asked through a DB-API connection of its own (db/dbapi.py), which the
    statement counter does not see."""
    from db.dbapi import read_only

    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        with read_only(url) as conn:  # a new one each time: a SQLite read transaction would keep its snapshot
            running = conn.rows("SELECT count(*) FROM executions WHERE finished_at IS NULL")[0][0]
        if running == 0:
            return
        time.sleep(0.05)
    raise TimeoutError(f"{plans} plans did not drain in 600 s")


if __name__ == "__main__":
    main()
