"""What one step costs on the hot path, in load-independent units: SQL statements and CPU ms per step.

Runs in one process, no broker: N level-0 plans of 3 noop steps are submitted in background mode, then each
is driven by ``engine.process`` (the same call a Dramatiq actor makes) until it finishes. An SQLAlchemy
listener counts every statement sent; ``time.process_time`` counts this process's CPU (the database server's
own CPU is not in it). Beside it, in the same run, the raw floor: one transaction inserting one row per
step. Prints both and their ratio, per database, and a last line of JSON with every figure.

Wall-clock steps/s is printed too, but it depends on the machine's load; statements and CPU ms do not.

Usage: uv run python bench/step_cost.py [--plans 100] [--database postgresql|sqlite|both]
Needs PostgreSQL (OPSC_TEST_DATABASE_URL or 127.0.0.1:5432) for the postgresql run; it creates and drops
its own database. The sqlite run uses a temporary file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.cpu_timeline import backends_cpu_s  # noqa: E402  (after the path: runnable as a script)
from bench.scratch_db import chosen, scratch_database  # noqa: E402
from bench.statements import StatementCounter, measure  # noqa: E402

STEPS = 3
PLAN = "name: cost-NUMBER\nsteps:\n" + "".join(
    f"  - {{name: s{i}, action: noop, target: localhost}}\n" for i in range(STEPS)
)


def run(url: str, plans: int, counter: StatementCounter) -> dict[str, float]:
    """Submit and drive ``plans`` plans on ``url``; the raw floor on the same database."""
    os.environ["OPSC_DATABASE_URL"] = url
    if "OPSC_SECRET_KEY" not in os.environ:
        from cryptography.fernet import Fernet

        os.environ["OPSC_SECRET_KEY"] = Fernet.generate_key().decode()  # this run's own key
    os.environ["OPSC_ALLOW_UNCONFINED_STEPS"] = "1"  # noop steps start no process
    import core
    from core import engine
    from core.transactions import dispose_engines, session_scope
    from db.settings import get_settings

    get_settings.cache_clear()
    dispose_engines()
    core.initialize(demo=True)
    alice = core.principal("alice", "demo")
    ids = [
        core.submit(alice, PLAN.replace("NUMBER", str(n)), background=True).execution.execution_id for n in range(plans)
    ]

    def drive_all() -> None:
        for execution_id in ids:
            for _ in range(4 * STEPS):
                if engine.process(execution_id, worker_id="bench") in {engine.Outcome.FINISHED, engine.Outcome.STALE}:
                    break

    database_cpu = backends_cpu_s(url)
    statements, cpu_s, wall_s = measure(counter, drive_all)
    database_cpu_s = backends_cpu_s(url) - database_cpu
    finished = {core.get_execution(alice, i).status for i in ids}
    assert finished == {"completed"}, finished  # figures of work that did not finish would mean nothing
    with session_scope() as session:
        session.execute(text("CREATE TABLE IF NOT EXISTS bench_floor (id INTEGER PRIMARY KEY, note TEXT)"))

    def floor() -> None:
        for n in range(plans * STEPS):
            with session_scope() as session:
                session.execute(text("INSERT INTO bench_floor (id, note) VALUES (:id, 'step')"), {"id": n})

    database_cpu = backends_cpu_s(url)
    floor_statements, floor_cpu_s, floor_wall_s = measure(counter, floor)
    floor_database_cpu_s = backends_cpu_s(url) - database_cpu
    dispose_engines()
    steps = plans * STEPS
    return {
        "steps": steps,
        "statements_per_step": statements / steps,
        "cpu_ms_per_step": 1000 * cpu_s / steps,
        "database_cpu_ms_per_step": 1000 * database_cpu_s / steps,
        "steps_per_s": steps / wall_s,
        "floor_statements_per_step": floor_statements / steps,
        "floor_cpu_ms_per_step": 1000 * floor_cpu_s / steps,
        "floor_database_cpu_ms_per_step": 1000 * floor_database_cpu_s / steps,
        "floor_steps_per_s": steps / floor_wall_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plans", type=int, default=100)
    parser.add_argument("--database", choices=["postgresql", "sqlite", "both"], default="both")
    args = parser.parse_args()
    counter = StatementCounter()
    figures: dict[str, dict[str, float]] = {}
    for name in chosen(args.database):
        with scratch_database(name) as url:
            figures[name] = run(url, args.plans, counter)
    for name, f in figures.items():
        print(
            f"{name:>10}: {f['statements_per_step']:.1f} statements/step (floor {f['floor_statements_per_step']:.1f}), "
            f"{f['cpu_ms_per_step']:.2f} CPU ms/step (floor {f['floor_cpu_ms_per_step']:.2f}, "
            f"x{f['cpu_ms_per_step'] / f['floor_cpu_ms_per_step']:.1f}), "
            + (
                f"{f['database_cpu_ms_per_step']:.2f} PostgreSQL CPU ms/step "
                f"(floor {f['floor_database_cpu_ms_per_step']:.2f}), "
                if name == "postgresql"
                else ""
            )
            + f"{f['steps_per_s']:.0f} steps/s wall (floor {f['floor_steps_per_s']:.0f}, "
            f"{100 * f['steps_per_s'] / f['floor_steps_per_s']:.1f} %)"
        )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
