"""The metrics scrape's database gauges at scale (issue 15 item 2): the old full scan against the kept counts.

Fills a scratch PostgreSQL database as bench/console_queries.py does (``--executions`` over 90 days in 3
tenants, with approvals, DLQ entries and queue rows), then times, p50/p95 over ``--runs`` calls after 2
warm-up calls, in one run: (a) the scrape as it was, one grouped scan of every execution and of every DLQ
entry (kept here as ``scan_as_before``); (b) ``DatabaseCollector.collect`` as it is, on folded counts; (c) the
same with ``--unfolded`` change rows the sweeper has not folded yet (a burst of status changes between two
passes); and the cost of the counting trigger on a status change. The last line is one JSON object with
every figure.

Usage: uv run python bench/metrics_scrape.py [--executions 100000] [--runs 30] [--unfolded 10000]
Needs PostgreSQL (OPSC_TEST_DATABASE_URL or 127.0.0.1:5432) as a superuser (the fill's COPY, see there).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.console_queries import fill, percentile  # noqa: E402  (after the path: runnable as a script)
from bench.scratch_db import scratch_postgres  # noqa: E402


def scan_as_before() -> list[Any]:
    """The scrape's two queries before the counts (core/metrics.py until issue 15): every execution grouped."""
    from sqlalchemy import func, select
    from sqlmodel import col

    from core.transactions import session_scope
    from db.tables import DlqEntry, Execution, Tenant

    with session_scope() as session:
        executions = session.execute(
            select(
                col(Tenant.name),
                col(Execution.status),
                col(Execution.run_mode),
                func.count(col(Execution.id)),
                func.min(col(Execution.created_at)),
            )
            .select_from(Tenant)
            .outerjoin(Execution, col(Execution.tenant_id) == col(Tenant.id))
            .group_by(col(Tenant.name), col(Execution.status), col(Execution.run_mode))
        ).all()
        dlq = session.execute(
            select(col(Tenant.name), func.count(col(DlqEntry.id)))
            .select_from(Tenant)
            .outerjoin(DlqEntry, (col(DlqEntry.tenant_id) == col(Tenant.id)) & col(DlqEntry.resolved_at).is_(None))
            .group_by(col(Tenant.name))
        ).all()
    return [executions, dlq]


def trigger_cost_us(dsn: str, changes: int) -> dict[str, float]:
    """Time ``changes`` single-row status changes (as the FSM's compare-and-set does them) with the counting
    trigger and without it, each in a transaction rolled back; per change, in microseconds."""
    import psycopg2

    conn = psycopg2.connect(dsn)
    per_change: dict[str, list[float]] = {"with_trigger": [], "without_trigger": []}
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT id, status FROM executions ORDER BY id LIMIT %s", (changes,))
            rows = cur.fetchall()
        conn.rollback()
        for _ in range(3):
            for label in ("with_trigger", "without_trigger"):
                with conn.cursor() as cur:
                    if label == "without_trigger":
                        cur.execute("ALTER TABLE executions DISABLE TRIGGER executions_count_update")
                    started = time.perf_counter()
                    for execution_id, status in rows:
                        cur.execute(
                            "UPDATE executions SET status = 'cancelled', updated_at = now()"
                            " WHERE id = %s AND status = %s",
                            (execution_id, status),
                        )
                    per_change[label].append((time.perf_counter() - started) * 1e6 / len(rows))
                conn.rollback()
    finally:
        conn.close()
    return {label: round(min(values), 1) for label, values in per_change.items()}


def timed(call: Callable[[], Any], runs: int) -> dict[str, float]:
    for _ in range(2):
        call()
    took = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        took.append((time.perf_counter() - started) * 1000)
    return {"p50_ms": round(statistics.median(took), 2), "p95_ms": round(percentile(took, 95), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--executions", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--unfolded", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=20261129)
    args = parser.parse_args()
    with scratch_postgres("opsc_bench_scrape") as url:
        dsn = (
            f"dbname={url.database} user={url.username or 'postgres'} host={url.host or '127.0.0.1'}"
            f" port={url.port or 5432}"
        )
        os.environ["OPSC_DATABASE_URL"] = url.render_as_string(hide_password=False)
        from db import migrate
        from db.engine import dispose_engines

        try:
            migrate.upgrade(os.environ["OPSC_DATABASE_URL"])
            dispose_engines()
            counts = fill(dsn, args.executions, args.executions, args.seed)
            from sqlalchemy import text

            from core import metrics
            from core.ops import execution_counts
            from core.transactions import session_scope

            collector = metrics.DatabaseCollector()
            figures = {"before_full_scan": timed(scan_as_before, args.runs)}
            figures["after_counts"] = timed(lambda: list(collector.collect()), args.runs)
            with session_scope() as session:  # a burst of changes the sweeper has not folded yet
                session.execute(
                    text(
                        "INSERT INTO execution_counts (tenant_id, status, run_mode, n)"
                        " SELECT tenant_id, status, run_mode, 1 - 2 * (g % 2)"
                        " FROM (SELECT tenant_id, status, run_mode FROM execution_counts LIMIT 1) one,"
                        " generate_series(1, :rows) g"
                    ),
                    {"rows": args.unfolded},
                )
            figures[f"after_counts_{args.unfolded}_unfolded"] = timed(lambda: list(collector.collect()), args.runs)
            began = time.perf_counter()
            execution_counts.fold_now()
            fold_ms = round((time.perf_counter() - began) * 1000, 1)
            dispose_engines()
            status_change_us = trigger_cost_us(dsn, 2000)
        finally:
            dispose_engines()
    for name, figure in figures.items():
        print(f"{name}: p50 {figure['p50_ms']:.1f} ms, p95 {figure['p95_ms']:.1f} ms")
    print(f"one fold of {args.unfolded} rows: {fold_ms} ms")
    print(
        f"a status change (one-row UPDATE, best of 3 x 2,000): {status_change_us['with_trigger']:.0f} us with the"
        f" counting trigger, {status_change_us['without_trigger']:.0f} us without"
    )
    result = {
        "executions": counts["executions"],
        "runs": args.runs,
        "fold_ms": fold_ms,
        "status_change_us": status_change_us,
        **figures,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
