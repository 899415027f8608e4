"""What a submit costs on the core API, in load-independent units: CPU ms and SQL statements per plan.

Runs in one process, no broker: level-0 plans of 3 noop steps are submitted in background mode (the full
path: validation, derivation, the execution, its steps, two audit events with the chain, the queue row),
one ``core.submit`` per plan and, where the API has it, ``core.submit_many`` in batches. Each plan is given
as YAML text (what the CLI sends) and as a mapping (what a script may send: no text to parse). An
SQLAlchemy listener counts every statement sent; ``time.process_time`` counts this process's CPU (the
database server's own CPU is not in it). Beside it, in the same run, the floor: one INSERT per plan, in a
transaction of its own (single) or one transaction per batch (batch). Prints the figures per database and a
last line of JSON with every one.

Usage: uv run python bench/submit_cost.py [--plans 300] [--batch 100] [--database postgresql|sqlite|both]
Needs PostgreSQL (OPSC_TEST_DATABASE_URL or 127.0.0.1:5432) for the postgresql run; it creates and drops
its own database. The sqlite run uses a temporary file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.scratch_db import chosen, scratch_database  # noqa: E402  (after the path: runnable as a script)
from bench.statements import StatementCounter, measure  # noqa: E402

STEPS = 3
WARM_UP = 20


def plan(number: int, form: str) -> str | dict[str, Any]:
    """Plan ``number``: its own name (so no two are idempotent duplicates), as YAML text or a mapping."""
    data = {
        "name": f"cost-{form}-{number}",
        "steps": [{"name": f"s{i}", "action": "noop", "target": "localhost"} for i in range(STEPS)],
    }
    return yaml.safe_dump(data, sort_keys=False) if form == "yaml" else data


def run(url: str, plans: int, batch: int, counter: StatementCounter) -> dict[str, float]:
    """Submit ``plans`` plans per form and mode on ``url``; the floor on the same database."""
    os.environ["OPSC_DATABASE_URL"] = url
    if "OPSC_SECRET_KEY" not in os.environ:
        from cryptography.fernet import Fernet

        os.environ["OPSC_SECRET_KEY"] = Fernet.generate_key().decode()  # this run's own key
    import core
    from core.transactions import dispose_engines, session_scope
    from db.settings import get_settings

    get_settings.cache_clear()
    dispose_engines()
    core.initialize(demo=True)
    alice = core.principal("alice", "demo")
    for n in range(WARM_UP):  # imports, compiled-statement caches, the pool
        core.submit(alice, plan(-1 - n, "yaml"), background=True)
    figures: dict[str, float] = {}
    for form in ("yaml", "mapping"):
        sources = [plan(n, form) for n in range(plans)]

        def singles(sources: list[Any] = sources) -> None:
            for source in sources:
                assert core.submit(alice, source, background=True).created

        statements, cpu_s, _wall_s = measure(counter, singles)
        figures[f"single_{form}_cpu_ms"] = 1000 * cpu_s / plans
        figures[f"single_{form}_statements"] = statements / plans
        submit_many = getattr(core, "submit_many", None)
        if submit_many is None:
            continue  # before the batch API existed
        sources = [plan(plans + n, form) for n in range(plans)]

        def batches(sources: list[Any] = sources, submit_many: Any = submit_many) -> None:
            for start in range(0, len(sources), batch):
                results = submit_many(alice, sources[start : start + batch], background=True)
                assert all(r.created for r in results)

        statements, cpu_s, _wall_s = measure(counter, batches)
        figures[f"batch_{form}_cpu_ms"] = 1000 * cpu_s / plans
        figures[f"batch_{form}_statements"] = statements / plans
    with session_scope() as session:
        session.execute(text("CREATE TABLE IF NOT EXISTS bench_floor (id INTEGER PRIMARY KEY, note TEXT)"))

    def floor_single() -> None:
        for n in range(plans):
            with session_scope() as session:
                session.execute(text("INSERT INTO bench_floor (id, note) VALUES (:id, 'plan')"), {"id": n})

    def floor_batch() -> None:
        for start in range(0, plans, batch):
            rows = [{"id": plans + n} for n in range(start, min(start + batch, plans))]
            with session_scope() as session:
                session.execute(text("INSERT INTO bench_floor (id, note) VALUES (:id, 'plan')"), rows)

    for name, work in (("single", floor_single), ("batch", floor_batch)):
        statements, cpu_s, _wall_s = measure(counter, work)
        figures[f"floor_{name}_cpu_ms"] = 1000 * cpu_s / plans
        figures[f"floor_{name}_statements"] = statements / plans
    dispose_engines()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plans", type=int, default=300, help="plans per form and mode")
    parser.add_argument("--batch", type=int, default=100, help="plans per submit_many call")
    parser.add_argument("--database", choices=["postgresql", "sqlite", "both"], default="both")
    args = parser.parse_args()
    counter = StatementCounter()
    figures: dict[str, dict[str, float]] = {}
    for name in chosen(args.database):
        with scratch_database(name) as url:
            figures[name] = run(url, args.plans, args.batch, counter)
    for name, f in figures.items():
        for mode in ("single", "batch"):
            floor = f"(floor {f[f'floor_{mode}_cpu_ms']:.2f} ms, {f[f'floor_{mode}_statements']:.2f} statements)"
            for form in ("yaml", "mapping"):
                if f"{mode}_{form}_cpu_ms" not in f:
                    print(f"{name:>10} {mode:>6} {form:>7}: n/a {floor}")
                    continue
                print(
                    f"{name:>10} {mode:>6} {form:>7}: {f[f'{mode}_{form}_cpu_ms']:.2f} CPU ms/plan, "
                    f"{f[f'{mode}_{form}_statements']:.2f} statements/plan {floor}"
                )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
