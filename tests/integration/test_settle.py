"""core/engine/settle.py: the persist's first statement with what rides along with it on PostgreSQL (the next
step's claim read, or the last step's completion and the end's read), held to one contract on both databases:
a removed or lost row leaves the result where the usual settle would, and the hot path keeps its budget."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from core import engine, get_execution, principal, submit
from core.engine import reachability
from core.engine.steps import Outcome
from db.engine import session_scope
from db.settings import get_settings
from db.tables import Asset, Execution, ExecutionStep, QueueItem
from tests.engine_support import drive


@pytest.fixture
def quick_watch(db: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("OPSC_WATCH_INTERVAL_S", "0.05")
    get_settings.cache_clear()
    return db


def _bg(plan: str) -> str:
    return submit(principal("alice", "demo"), plan, background=True).execution.execution_id


def _while_step_runs(execution_id: str, index: int, change: str) -> list[Outcome]:
    """Run the execution in a worker thread; once step ``index`` runs, apply the SQL ``change``."""
    outcomes: list[Outcome] = []
    worker = threading.Thread(target=lambda: outcomes.append(engine.process(execution_id, worker_id="w")))
    worker.start()
    deadline = time.monotonic() + 30
    while get_execution(principal("alice", "demo"), execution_id).steps[index].status != "running":
        assert time.monotonic() < deadline, f"step {index} never started"
        time.sleep(0.02)
    with session_scope() as session:
        session.execute(text(change), {"e": execution_id})
    worker.join(timeout=30)
    assert not worker.is_alive()
    return outcomes


SLEEPY = (
    "name: s\nsteps:\n"
    "  - {name: nap, action: sleep, target: localhost, params: {seconds: 1}}\n"
    "  - {name: next, action: noop, target: localhost}\n"
)


def test_a_next_step_row_removed_while_the_step_ran_is_not_run(quick_watch: str) -> None:
    """The next step's row is deleted while step 0 runs (someone with database access): the chain's read
    finds nothing, the completed step is kept, and the missing step never runs, on either database."""
    execution_id = _bg(SLEEPY)
    outcomes = _while_step_runs(
        execution_id, 0, "DELETE FROM execution_steps WHERE execution_id = :e AND step_index = 1"
    )
    drive(execution_id)
    view = get_execution(principal("alice", "demo"), execution_id)
    assert outcomes == [Outcome.ADVANCED]
    assert [(s.index, s.status) for s in view.steps] == [(0, "completed")]
    assert view.status == "running"  # until its time limit: the sweeper ends it then


def test_a_lease_lost_during_the_last_step_writes_nothing_of_its_result(quick_watch: str) -> None:
    """The last step's lease is taken away while it runs (a sweeper reclaimed it): the combined settle writes
    nothing, the usual one finds the lease lost, and the step's row is not marked completed by this worker."""
    plan = "name: l\nsteps:\n  - {name: nap, action: sleep, target: localhost, params: {seconds: 1}}\n"
    execution_id = _bg(plan)
    outcomes = _while_step_runs(
        execution_id, 0, "UPDATE execution_queue SET lease_token = 'someone-else' WHERE execution_id = :e"
    )
    assert outcomes == [Outcome.STALE]
    view = get_execution(principal("alice", "demo"), execution_id)
    assert (view.status, view.steps[0].status, view.steps[0].finished_at) == ("running", "running", None)


def test_a_three_step_plan_keeps_the_hot_paths_statement_budget(db: str) -> None:
    """The hot path's budget (issue 15: at most 6 statements a step): a 3-step plan, from its first claim to
    its end, in at most 18 statements on PostgreSQL once this process knows the tenant's audit head; SQLite,
    without data-modifying CTEs or RETURNING from other tables, in at most 36."""
    plan = "name: NAME\nsteps:\n" + "".join(f"  - {{name: s{i}, action: noop, target: localhost}}\n" for i in range(3))
    drive(_bg(plan.replace("NAME", "warm")))  # the audit head is known from here on, as in a running worker
    execution_id = _bg(plan.replace("NAME", "measured"))
    sent: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(" ".join(statement.split())[:80])

    event.listen(Engine, "before_cursor_execute", seen)
    try:
        assert drive(execution_id) == [Outcome.FINISHED]
    finally:
        event.remove(Engine, "before_cursor_execute", seen)
    assert get_execution(principal("alice", "demo"), execution_id).status == "completed"
    assert len(sent) <= (18 if db.startswith("postgresql") else 36), sent


@pytest.mark.integration
def test_a_statement_prepared_before_another_process_altered_its_table_is_run_again(pg_url: str) -> None:
    """A migration run beside a live worker changes a table under the statements its connections prepared:
    PostgreSQL refuses the next use ("cached plan must not change result type") and rolls the transaction
    back whole. ``through_outages`` (the claim's and the persist's wrapper) runs the work again at once and
    quietly; psycopg prepares the statement anew."""
    worker = create_engine(pg_url, pool_size=1, max_overflow=0, connect_args={"prepare_threshold": 1})
    other = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    table = f"stale_plan_{uuid.uuid4().hex[:8]}"
    attempts: list[str] = []

    def read() -> str | None:
        attempts.append("read")
        with worker.begin() as conn:
            return conn.execute(text(f"SELECT name FROM {table} WHERE id = 1")).scalar()

    try:
        with other.connect() as conn:
            conn.execute(text(f"CREATE TABLE {table} (id int PRIMARY KEY, name varchar(10))"))
            conn.execute(text(f"INSERT INTO {table} VALUES (1, 'n')"))
        for _ in range(3):
            assert read() == "n"  # prepared on the worker's one connection
        with other.connect() as conn:
            conn.execute(text(f"ALTER TABLE {table} ALTER COLUMN name TYPE varchar(20)"))
        attempts.clear()
        with pytest.raises(DBAPIError) as refused:
            read()
        assert reachability.is_stale_plan(refused.value)
        for _ in range(3):
            assert read() == "n"  # prepared anew
        with other.connect() as conn:
            conn.execute(text(f"ALTER TABLE {table} ALTER COLUMN name TYPE varchar(30)"))
        attempts.clear()
        assert reachability.through_outages("test", read) == "n"
        assert attempts == ["read", "read"]  # refused once, then run again
    finally:
        with other.connect() as conn:
            conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
        worker.dispose()
        other.dispose()


def _orm_loads(run: Any) -> list[str]:
    """The ORM rows loaded (of the tables a claim reads) while ``run()`` runs."""
    loaded: list[str] = []
    entities = (QueueItem, Execution, ExecutionStep, Asset)

    def on_load(target: Any, _context: Any) -> None:
        loaded.append(type(target).__name__)

    for entity in entities:
        event.listen(entity, "load", on_load)
    try:
        run()
    finally:
        for entity in entities:
            event.remove(entity, "load", on_load)
    return loaded


@pytest.mark.integration
def test_an_ordinary_plan_loads_no_orm_row_on_the_hot_path(postgres_db: str) -> None:
    """PostgreSQL: the claim reads, the chained settles and the end come back as records (db/prepared.py), so a
    3-step plan builds no ORM row from its first claim to its end."""
    plan = "name: NAME\nsteps:\n" + "".join(f"  - {{name: s{i}, action: noop, target: localhost}}\n" for i in range(3))
    execution_id = _bg(plan.replace("NAME", "records"))
    outcomes: list[Outcome] = []
    assert _orm_loads(lambda: outcomes.extend(drive(execution_id))) == []
    assert outcomes == [Outcome.FINISHED]
    assert get_execution(principal("alice", "demo"), execution_id).status == "completed"


def test_a_plan_whose_claim_may_write_its_rows_reads_them_through_the_session(db: str) -> None:
    """A plan with rollback steps (its end records how the rollback went) reads its execution as an ORM row, on
    both databases, and runs to its end: a record would be refused by the session that has to write it."""
    plan = (
        "name: undo\nsteps:\n  - {name: a, action: noop, target: localhost}\n"
        "  - {name: b, action: noop, target: localhost}\n"
        "on_failure:\n  - {name: undo, action: noop, target: localhost}\n"
    )
    execution_id = _bg(plan)
    outcomes: list[Outcome] = []
    loaded = _orm_loads(lambda: outcomes.extend(drive(execution_id)))
    assert outcomes == [Outcome.FINISHED]
    assert "Execution" in loaded
    assert get_execution(principal("alice", "demo"), execution_id).status == "completed"
