"""Attacks on issue 15's hot path, from the failure side, on real PostgreSQL (and real processes where it matters):
the one-statement audit link (core/audit_links.py: a process links onto the head it remembers, threads take a
turn per tenant), the combined settles (core/engine/settle.py) and psycopg's server-side prepared statements.

Each test breaks something at the worst moment it can reach (a commit that fails after the link, a killed
connection, a session closed without committing, writers in several processes mixing tables and tenants) and
then holds the result to DESIGN §3 and §13: one gapless chain per tenant that verifies, no turn left held,
no step written completed for a refused result."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, event, select, text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from core import add_asset, audit_links, engine, get_execution, principal, remove_member, submit
from core.audit import record_event
from core.engine.steps import Outcome
from core.usecases.dlq import list_dlq
from db.engine import get_engine, session_scope
from db.enums import Connection
from db.settings import get_settings
from db.tables import Execution, ExecutionStep
from tests.audit_support import assert_chain_sound, running_execution, turn_free
from tests.engine_support import (
    approved,
    cancel_in_flight,
    drive,
    link_statements,
    python_plan,
    tee_step,
    unique_seconds,
)

STEPS = ExecutionStep.__table__  # type: ignore[attr-defined]
REPO = Path(__file__).resolve().parents[2]


def _notes(execution_id: str, tenant_id: str, n: int) -> None:
    for i in range(n):
        with session_scope() as session:
            record_event(
                session, execution_id=execution_id, tenant_id=tenant_id, kind="note", actor="t", message=f"{i}"
            )


# -- several processes -------------------------------------------------------------------------------------

# A writer process: its own engine, pool and memory of heads, as a worker's. Each transaction is one of:
# an execution event (the one-statement link), an admin event, both (two tables: the locking way), events of
# two tenants at once, or events linked and then rolled back (the head it moved never existed).
_WRITER = """
import sys, time
from pathlib import Path
from core import audit_links, principal
from core.admin_audit import record_admin_event
from core.audit import record_event
from db.engine import session_scope

start, n, demo_tenant, demo_exec, globex_tenant, globex_exec, tag = sys.argv[1:8]
while not Path(start).exists():
    time.sleep(0.01)
admin = principal("admin", "demo")
committed = {"demo": 0, "globex": 0}
for i in range(int(n)):
    mode = i % 6
    if mode == 5:  # linked, then rolled back
        with session_scope() as session:
            record_event(session, execution_id=demo_exec, tenant_id=demo_tenant, kind="note", actor=tag)
            session.flush()
            audit_links._link_before_commit(session)
            session.rollback()
        continue
    with session_scope() as session:
        if mode in (0, 1, 2, 3):
            record_event(session, execution_id=demo_exec, tenant_id=demo_tenant, kind="note", actor=tag)
            committed["demo"] += 1
        if mode in (1, 4):
            record_admin_event(session, admin, "note", f"{tag}-{i}")
            committed["demo"] += 1
        if mode == 3:
            record_event(session, execution_id=globex_exec, tenant_id=globex_tenant, kind="note", actor=tag)
            committed["globex"] += 1
print(committed["demo"], committed["globex"])
"""


@pytest.mark.integration
def test_writer_processes_mixing_tables_tenants_and_rollbacks_never_fork_a_chain(
    postgres_db: str, tmp_path: Path
) -> None:
    """Three real processes x 60 transactions at once into two tenants' chains: one-statement links, admin
    events beside execution events, two tenants in one transaction, links rolled back after their statement.
    Each chain comes out gapless, unforked, with exactly the committed events, and verifies."""
    demo_exec, demo_tenant = running_execution("demo")
    globex_exec, globex_tenant = running_execution("globex")
    before = {"demo": assert_chain_sound("demo"), "globex": assert_chain_sound("globex")}
    start = tmp_path / "start"
    env = os.environ | {"OPSC_DATABASE_URL": postgres_db}
    writers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _WRITER,
                str(start),
                "60",
                demo_tenant,
                demo_exec,
                globex_tenant,
                globex_exec,
                f"p{n}",
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(3)
    ]
    start.touch()
    committed = {"demo": 0, "globex": 0}
    for writer in writers:
        out, err = writer.communicate(timeout=180)
        assert writer.returncode == 0, err[-2000:]
        demo, globex = (int(x) for x in out.split())
        committed["demo"] += demo
        committed["globex"] += globex
    assert committed == {"demo": 3 * 60, "globex": 3 * 10}  # what the writers say they committed
    for tenant in ("demo", "globex"):
        assert assert_chain_sound(tenant) == before[tenant] + committed[tenant]


# -- a transaction that ends badly after its link ----------------------------------------------------------


def _deferred_failure(session: Any) -> None:
    """Make this transaction's COMMIT fail after every statement succeeded: a deferred unique constraint."""
    session.execute(
        text("CREATE TEMP TABLE attack_deferred (x int UNIQUE DEFERRABLE INITIALLY DEFERRED) ON COMMIT DROP")
    )
    session.execute(text("INSERT INTO attack_deferred VALUES (1), (1)"))


@pytest.mark.integration
def test_a_commit_that_fails_after_the_one_statement_link_leaves_no_link_and_frees_the_turn(
    postgres_db: str,
) -> None:
    """The link statement succeeded (onto the remembered head), then the COMMIT failed (a deferred constraint):
    the process remembers a head that never existed. The turn is free, the next transaction misses that ghost
    and links onto the real head, and the chain is gapless and verifies."""
    execution_id, tenant_id = running_execution()
    _notes(execution_id, tenant_id, 2)  # this process knows the head
    before = assert_chain_sound("demo")

    def failing() -> None:
        with pytest.raises(DBAPIError, match="attack_deferred"), session_scope() as session:
            _deferred_failure(session)
            record_event(session, execution_id=execution_id, tenant_id=tenant_id, kind="note", actor="ghost")

    assert link_statements(failing) == ["tried"]  # the one-statement link ran, and then the commit failed
    assert turn_free(tenant_id)
    then = link_statements(lambda: _notes(execution_id, tenant_id, 1))
    assert then == ["tried", "linked"]  # onto the ghost: nothing written, the head locked; onto the real one
    assert assert_chain_sound("demo") == before + 1


@pytest.mark.integration
def test_a_connection_killed_at_commit_after_the_link_frees_the_turn_and_keeps_the_chain(postgres_db: str) -> None:
    """The server connection is terminated between the link statement and the COMMIT (the server crashed or
    an admin killed it). The transaction fails, the turn is free at once (another thread links without waiting
    out ``TURN_WAIT_S``), and the chain is gapless and verifies whatever reached the server."""
    execution_id, tenant_id = running_execution()
    _notes(execution_id, tenant_id, 2)
    before = assert_chain_sound("demo")
    killer = create_engine(postgres_db, isolation_level="AUTOCOMMIT")
    armed = [True]

    def kill_before_commit(conn: Any) -> None:
        if not armed[0]:
            return
        armed[0] = False
        pid = conn.connection.dbapi_connection.info.backend_pid
        with killer.connect() as other:
            # pg_terminate_backend with a timeout waits until the backend is gone: the COMMIT finds no server.
            assert other.execute(text("SELECT pg_terminate_backend(:pid, 10000)"), {"pid": pid}).scalar()

    event.listen(get_engine(), "commit", kill_before_commit)
    try:
        with pytest.raises(DBAPIError), session_scope() as session:
            record_event(session, execution_id=execution_id, tenant_id=tenant_id, kind="note", actor="killed")
    finally:
        event.remove(get_engine(), "commit", kill_before_commit)
        killer.dispose()
    assert not armed[0]
    assert turn_free(tenant_id)
    started = time.monotonic()
    other = threading.Thread(target=_notes, args=(execution_id, tenant_id, 1))
    other.start()
    other.join(timeout=30)
    assert not other.is_alive()
    assert time.monotonic() - started < audit_links._Heads.TURN_WAIT_S  # it did not wait for a leaked turn
    assert assert_chain_sound("demo") == before + 1


@pytest.mark.integration
def test_a_session_closed_without_commit_after_its_link_frees_the_turn(postgres_db: str) -> None:
    """A session linked its events (the statement ran), then was closed without committing or rolling back
    (a caller that gave up): the turn is released with the transaction, nothing of it stays, the chain goes on."""
    execution_id, tenant_id = running_execution()
    _notes(execution_id, tenant_id, 2)
    before = assert_chain_sound("demo")
    session = Session(get_engine())
    try:
        record_event(session, execution_id=execution_id, tenant_id=tenant_id, kind="note", actor="closed")
        session.flush()
        audit_links._link_before_commit(session)
        assert not turn_free(tenant_id)  # held from the link to the end of the transaction
    finally:
        session.close()
    assert turn_free(tenant_id)
    _notes(execution_id, tenant_id, 2)
    assert assert_chain_sound("demo") == before + 2


@pytest.mark.integration
def test_an_error_raised_inside_commit_after_the_link_frees_the_turn(postgres_db: str) -> None:
    """Something raises inside the commit itself, after the link (a listener of the connection's commit): the
    transaction is rolled back, its turn released, and the next commits link as usual."""
    execution_id, tenant_id = running_execution()
    _notes(execution_id, tenant_id, 2)
    before = assert_chain_sound("demo")

    def boom(_conn: Any) -> None:
        raise RuntimeError("inside commit")

    event.listen(get_engine(), "commit", boom)
    try:
        with pytest.raises(RuntimeError, match="inside commit"), session_scope() as session:
            record_event(session, execution_id=execution_id, tenant_id=tenant_id, kind="note", actor="boom")
    finally:
        event.remove(get_engine(), "commit", boom)
    assert turn_free(tenant_id)
    _notes(execution_id, tenant_id, 2)
    assert assert_chain_sound("demo") == before + 2


@pytest.mark.integration
def test_a_transaction_with_two_tenants_and_both_tables_after_one_statement_links_stays_chained(
    postgres_db: str,
) -> None:
    """After one-statement links into both tenants, a transaction writes an execution and an admin event to
    one tenant and an event to the other (the locking way, heads in tenant order), then fails at commit; the
    following one-statement links of each tenant go on from the real heads, never from the failed one's."""
    from core.admin_audit import record_admin_event

    demo_exec, demo_tenant = running_execution("demo")
    globex_exec, globex_tenant = running_execution("globex")
    _notes(demo_exec, demo_tenant, 2)
    _notes(globex_exec, globex_tenant, 2)
    before = {t: assert_chain_sound(t) for t in ("demo", "globex")}
    with pytest.raises(DBAPIError, match="attack_deferred"), session_scope() as session:
        _deferred_failure(session)
        record_event(session, execution_id=demo_exec, tenant_id=demo_tenant, kind="note", actor="both")
        record_admin_event(session, principal("admin", "demo"), "note", "both")
        record_event(session, execution_id=globex_exec, tenant_id=globex_tenant, kind="note", actor="both")
    assert turn_free(demo_tenant) and turn_free(globex_tenant)
    with session_scope() as session:  # two tenants, committed
        record_event(session, execution_id=demo_exec, tenant_id=demo_tenant, kind="note", actor="both")
        record_event(session, execution_id=globex_exec, tenant_id=globex_tenant, kind="note", actor="both")
    _notes(demo_exec, demo_tenant, 2)
    _notes(globex_exec, globex_tenant, 2)
    assert {t: assert_chain_sound(t) for t in ("demo", "globex")} == {t: n + 3 for t, n in before.items()}


@pytest.mark.integration
def test_many_threads_with_failing_commits_never_leak_a_turn_or_fork_the_chain(postgres_db: str) -> None:
    """6 threads x 15 transactions of one process into one tenant, every third failing at commit after its link
    (a deferred constraint), every fifth rolled back after it: none waits for a leaked turn (the whole run is
    bounded), each thread's committed events are in the chain, gapless and verifiable."""
    execution_id, tenant_id = running_execution()
    _notes(execution_id, tenant_id, 1)
    before = assert_chain_sound("demo")
    errors: list[BaseException] = []
    committed = [0] * 6
    barrier = threading.Barrier(6)

    def work(n: int) -> None:
        try:
            barrier.wait()
            for i in range(15):
                if i % 3 == 2:
                    with pytest.raises(DBAPIError), session_scope() as session:
                        _deferred_failure(session)
                        record_event(session, execution_id=execution_id, tenant_id=tenant_id, kind="note", actor="f")
                elif i % 5 == 4:
                    with session_scope() as session:
                        record_event(session, execution_id=execution_id, tenant_id=tenant_id, kind="note", actor="r")
                        session.flush()
                        audit_links._link_before_commit(session)
                        session.rollback()
                else:
                    _notes(execution_id, tenant_id, 1)
                    committed[n] += 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a writer hung"
    assert not errors, errors[:3]
    assert turn_free(tenant_id)
    assert assert_chain_sound("demo") == before + sum(committed)


# -- the combined settles (core/engine/settle.py), on both databases: the same contract -------------------


@pytest.fixture
def quick(db: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A quick watcher (a cancel or a lost lease is seen at once); steps chain, as in a worker by default."""
    monkeypatch.setenv("OPSC_WATCH_INTERVAL_S", "0.05")
    monkeypatch.setenv("OPSC_RETRY_BACKOFF_S", "0.01")
    get_settings.cache_clear()
    yield db
    get_settings.cache_clear()


def _bg(plan: str) -> str:
    return submit(principal("alice", "demo"), plan, background=True).execution.execution_id


def _steps(execution_id: str) -> list[tuple[int, str, str, str | None]]:
    """(index, phase, status, output) of every step, read directly (the requester may no longer be a member)."""
    with session_scope() as session:
        rows = session.execute(
            select(STEPS.c.step_index, STEPS.c.phase, STEPS.c.status, STEPS.c.output)
            .where(STEPS.c.execution_id == execution_id)
            .order_by(STEPS.c.step_index)
        ).all()
    return [(r[0], r[1], r[2], r[3]) for r in rows]


def _status(execution_id: str) -> str:
    with session_scope() as session:
        return str(session.execute(select(Execution.status).where(Execution.id == execution_id)).scalar_one())  # type: ignore[call-overload]


def _while_step_runs(execution_id: str, index: int, change: Any) -> list[Outcome]:
    """Run the execution in a worker thread (chaining through its steps); once step ``index`` runs, call
    ``change()``; wait for the worker to end."""
    outcomes: list[Outcome] = []
    worker = threading.Thread(target=lambda: outcomes.append(engine.process(execution_id, worker_id="w")))
    worker.start()
    deadline = time.monotonic() + 30
    while _steps(execution_id)[index][2] != "running":
        assert time.monotonic() < deadline, f"step {index} never started"
        assert worker.is_alive() or _steps(execution_id)[index][2] == "running", "the worker ended first"
        time.sleep(0.02)
    change()
    worker.join(timeout=60)
    assert not worker.is_alive()
    return outcomes


def _sql(statement: str, execution_id: str) -> Any:
    def run() -> None:
        with session_scope() as session:
            session.execute(text(statement), {"e": execution_id})

    return run


_NAP = "  - {name: nap, action: sleep, target: localhost, params: {seconds: 1.5}}\n"


def test_a_fencing_token_changed_during_a_chained_step_refuses_it_and_never_runs_the_next(
    quick: str, tmp_path: Path
) -> None:
    """The execution's lock changes hands while step 0 runs and the worker would chain into step 1 (on
    PostgreSQL the settle has already moved the queue row and read step 1's claim): the result is refused
    (unknown, DLQ lock_lost), and step 1 never runs, then or later."""
    log = tmp_path / "log"
    execution_id = _bg("name: f\nsteps:\n" + _NAP + tee_step("next", log, "next"))
    outcomes = _while_step_runs(
        execution_id, 0, _sql("UPDATE execution_locks SET fencing_token = 10000 WHERE execution_id = :e", execution_id)
    )
    assert outcomes == [Outcome.FINISHED]
    engine.process(execution_id, worker_id="late")  # a late message: nothing is left to run
    assert _status(execution_id) == "failed"
    assert [(i, s) for i, _p, s, _o in _steps(execution_id)] == [(0, "unknown"), (1, "pending")]
    assert not log.exists()
    assert list_dlq(principal("alice", "demo"))[0].reason == "lock_lost"


def test_a_fencing_token_changed_during_the_last_step_clears_the_output_the_settle_wrote(quick: str) -> None:
    """The last step prints, then its lock changes hands before it ends: on PostgreSQL the settle writes the
    step completed with its output before the fencing check; the refusal must leave it unknown, without the
    refused output, the execution failed, as on SQLite."""
    code = "import time; print('refused-output', flush=True); time.sleep(1.5)"
    execution_id = approved(python_plan(code))
    outcomes = _while_step_runs(
        execution_id, 0, _sql("UPDATE execution_locks SET fencing_token = 10000 WHERE execution_id = :e", execution_id)
    )
    assert outcomes == [Outcome.FINISHED]
    assert _status(execution_id) == "failed"
    [(_, _, status, output)] = _steps(execution_id)
    assert (status, output) == ("unknown", None)


def test_a_lease_lost_during_a_chained_step_writes_nothing_and_never_runs_the_next(quick: str, tmp_path: Path) -> None:
    """The lease is taken away while step 0 runs (a sweeper gave it to another worker): neither the combined
    settle nor the usual one writes anything of the result; step 1 is not run by this worker."""
    log = tmp_path / "log"
    execution_id = _bg("name: l\nsteps:\n" + _NAP + tee_step("next", log, "next"))
    outcomes = _while_step_runs(
        execution_id,
        0,
        _sql("UPDATE execution_queue SET lease_token = 'someone-else' WHERE execution_id = :e", execution_id),
    )
    assert outcomes == [Outcome.STALE]
    assert [(i, s) for i, _p, s, _o in _steps(execution_id)] == [(0, "running"), (1, "pending")]
    assert _status(execution_id) == "running" and not log.exists()


def test_a_requester_removed_during_a_chained_step_has_the_next_refused_not_run(quick: str, tmp_path: Path) -> None:
    """The requester loses their membership while step 0 runs (no Grant when the chain reads the next claim,
    on PostgreSQL from the settle's own statement): step 0 is kept completed, step 1 is refused without
    running and the execution ends failed, on both databases alike."""
    log = tmp_path / "log"
    execution_id = _bg("name: r\nsteps:\n" + _NAP + tee_step("next", log, "next"))
    outcomes = _while_step_runs(execution_id, 0, lambda: remove_member(principal("admin", "demo"), "alice"))
    steps = [(i, s) for i, _p, s, _o in _steps(execution_id)]
    assert outcomes == [Outcome.FINISHED]
    assert steps == [(0, "completed"), (1, "failed")]  # refused at its claim: failed without running
    assert _status(execution_id) == "failed" and not log.exists()


def test_a_cancel_during_the_last_chained_step_ends_cancelled_not_completed(quick: str, tmp_path: Path) -> None:
    """A cancel requested while the last step of a chain runs (the step the combined end-settle would write
    completed): the step is cancelled, the execution cancelled, and nothing is written completed for it."""
    log = tmp_path / "log"
    seconds = unique_seconds(30)
    plan = (
        "name: c\nsteps:\n"
        + tee_step("first", log, "first")
        + f"  - {{name: wait, action: shell, target: localhost, timeout_s: 60, params: {{command: [sleep, '{seconds}']}}}}\n"
    )
    execution_id = _bg(plan)
    cancel_in_flight(execution_id, running=lambda: _steps(execution_id)[1][2] == "running", join_s=30)
    assert _status(execution_id) == "cancelled"
    assert [(i, s) for i, _p, s, _o in _steps(execution_id)] == [(0, "completed"), (1, "cancelled")]
    assert log.read_text() == "first\n"


def test_a_chained_rollback_runs_each_undo_once_and_ends_failed(quick: str, tmp_path: Path) -> None:
    """Chaining on: a main step fails, the on_failure steps chain into one another and the last one ends its
    phase (the combined end-settle on PostgreSQL, which must not judge the execution by the rollback): each
    undo ran once, the execution is failed, its rollback completed."""
    log = tmp_path / "log"
    plan = (
        "name: rb\nsteps:\n"
        + tee_step("first", log, "main-0")
        + "  - {name: break, action: shell, target: localhost, params: {command: 'false'}}\n"
        + "on_failure:\n"
        + tee_step("undo-1", log, "undo-1")
        + tee_step("undo-2", log, "undo-2")
    )
    execution_id = _bg(plan)
    assert drive(execution_id)[-1] is Outcome.FINISHED
    assert log.read_text().splitlines() == ["main-0", "undo-1", "undo-2"]
    view = get_execution(principal("alice", "demo"), execution_id)
    assert (view.status, view.rollback_status) == ("failed", "completed")
    assert [s.status for s in view.rollback_steps] == ["completed", "completed"]


def test_continue_on_error_then_a_last_step_that_succeeds_ends_partial(quick: str, tmp_path: Path) -> None:
    """A failed step with continue_on_error, then a last step that succeeds (the end-settle reads "did any main
    step not complete?" leaving its own step out): the execution is partial, not completed."""
    log = tmp_path / "log"
    plan = (
        "name: coe\ncontinue_on_error: true\nsteps:\n"
        + "  - {name: break, action: shell, target: localhost, params: {command: 'false'}}\n"
        + tee_step("last", log, "last")
    )
    execution_id = _bg(plan)
    assert drive(execution_id)[-1] is Outcome.FINISHED
    assert _status(execution_id) == "partial"
    assert [(i, s) for i, _p, s, _o in _steps(execution_id)][:2] == [(0, "failed"), (1, "completed")]
    assert log.read_text() == "last\n"


def test_a_fan_out_between_chained_steps_runs_every_target_and_step_once(quick: str, tmp_path: Path) -> None:
    """A normal step chains into a fan-out over two assets, which goes on to a normal last step: each step and
    target runs once, every row ends completed, the execution completed."""
    admin = principal("admin", "demo")
    for name in ("hp-1", "hp-2"):
        add_asset(admin, name, Connection.LOCAL, tags=["hp"])
    log = tmp_path / "log"
    fan = (
        "  - name: each\n    action: shell\n    targets: {tags: [hp]}\n"
        f"    params: {{command: [tee, -a, '{log}'], stdin: \"fan\\n\"}}\n"
    )
    execution_id = _bg("name: fo\nsteps:\n" + tee_step("a", log, "a") + fan + tee_step("b", log, "b"))
    assert drive(execution_id)[-1] is Outcome.FINISHED
    assert sorted(log.read_text().splitlines()) == ["a", "b", "fan", "fan"]
    assert _status(execution_id) == "completed"
    assert {s for _i, _p, s, _o in _steps(execution_id)} == {"completed"}


def test_two_workers_racing_through_one_chain_run_each_step_once(quick: str, tmp_path: Path) -> None:
    """Two workers are handed the same execution at once (a redelivered message) and chain through its five
    steps: each step's side effect happens once, each row ends completed, the execution completed."""
    log = tmp_path / "log"
    execution_id = _bg("name: race\nsteps:\n" + "".join(tee_step(f"s{i}", log, f"s{i}") for i in range(5)))
    barrier = threading.Barrier(2)
    results: list[list[Outcome]] = []

    def work(worker_id: str) -> None:
        barrier.wait()
        results.append(drive(execution_id, worker_id=worker_id))

    workers = [threading.Thread(target=work, args=(f"w{n}",)) for n in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert not any(w.is_alive() for w in workers)
    assert log.read_text().splitlines() == [f"s{i}" for i in range(5)]
    assert _status(execution_id) == "completed"
    assert [s for _i, _p, s, _o in _steps(execution_id)] == ["completed"] * 5
