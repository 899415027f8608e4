"""Orphans: a lost worker's step process must be gone before its asset is handed on (issue 14 item 2).

A local step runs in a unit that dies with its worker (core/safety/step_unit.py, or bubblewrap's
``--die-with-parent``), so a *dead* worker's step is killed by the kernel at once. What is left is a worker
that hangs, or a unit that failed: before the sweeper releases a lost step's lease or lock, it kills what is
still there.

- **Record**: when a step starts a local process, one UPDATE writes where it runs onto the step row:
  host name, boot id (``/proc/sys/kernel/random/boot_id``), process group id and the group leader's start
  time (``/proc/PID/stat``, clock ticks since boot). Only the attempt that started it is written.
- **Kill** (the sweeper, before the lock goes): if the row names this host and this boot, SIGKILL the
  recorded group if it is still the step's, and wait until its processes are gone. "Still the step's"
  guards against pid reuse: the leader, if alive, has the recorded start time; without a leader, only
  members started no earlier than it count (a pid that is still some group's id is never handed out).
- **Elsewhere**: a row naming another host (or this host before a reboot, whose processes are gone) is
  not ours to kill; an event says so. The rule: a dead worker's processes died with it (the death signal);
  a hung worker's watcher stops its step when it finds its lease lost.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import update
from sqlmodel import Session, col, select

from core.audit import record_event
from core.transactions import session_scope
from db.clock import utcnow
from db.enums import StepStatus
from db.tables import ExecutionLock, ExecutionStep

log = logging.getLogger(__name__)

_STEPS = ExecutionStep.__table__  # type: ignore[attr-defined]
_PROC = Path("/proc")
KILL_WAIT_S = 10.0  # how long the sweeper waits for SIGKILLed processes to leave /proc


@dataclass(frozen=True)
class Here:
    """This host as a step row names it."""

    host: str
    boot_id: str


@functools.cache
def here() -> Here:
    """This host's name and boot id (read once per process)."""
    try:
        boot_id = (_PROC / "sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot_id = ""
    return Here(host=socket.gethostname(), boot_id=boot_id)


@dataclass(frozen=True)
class _Stat:
    state: str
    pgrp: int
    start: int


def _stat(pid: int | str) -> _Stat | None:
    """The fields of ``/proc/PID/stat`` we use, or None if there is no such process."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except (OSError, ValueError):
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the name in parentheses may hold spaces
    # fields[0] is field 3 of proc(5): state; 5 is pgrp; 22 is starttime
    return _Stat(state=fields[0], pgrp=int(fields[2]), start=int(fields[19]))


def worker_runs_here(worker_id: str | None) -> bool:
    """True when ``worker_id`` (``kind:host:pid:suffix``, core.engine.worker_identity) names a process of this
    host that is alive and not stopped: a worker that is slow to renew (a loaded machine), not a dead one."""
    parts = (worker_id or "").split(":")
    if len(parts) != 4 or parts[1] != socket.gethostname() or not parts[2].isdigit():
        return False
    found = _stat(parts[2])
    return found is not None and found.state not in "ZXTt"


def start_ticks(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks since boot (None if it is gone)."""
    found = _stat(pid)
    return None if found is None else found.start


def group_members(pgid: int, start: int) -> list[int]:
    """Live (not zombie) processes of group ``pgid`` that belong to the group recorded with ``start``."""
    leader = _stat(pgid)
    if leader is not None and leader.start != start:
        return []  # the pid is another process now: the recorded group is long gone
    members = []
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        found = _stat(entry.name)
        if found is not None and found.pgrp == pgid and found.state not in "ZX" and found.start >= start:
            members.append(int(entry.name))
    return members


def kill_group(pgid: int, start: int, *, wait_s: float = KILL_WAIT_S) -> int:
    """SIGKILL the recorded group if it is still there and wait until it is gone; how many processes it had.

    Raises:
        TimeoutError: some of them are still alive after ``wait_s`` (stuck in the kernel, e.g. on NFS).
    """
    members = group_members(pgid, start)
    if not members:
        return 0
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        return 0
    give_up = time.monotonic() + wait_s
    while group_members(pgid, start):
        if time.monotonic() >= give_up:
            raise TimeoutError(f"process group {pgid} is still alive {wait_s:.0f}s after SIGKILL")
        time.sleep(0.01)
    return len(members)


def recorder(execution_id: str, step_index: int, attempt: int) -> Callable[[int], None]:
    """The callback a step context calls with the pgid of a process it started: records where it runs."""

    def record(pgid: int) -> None:
        place = here()
        values = {
            "process_host": place.host,
            "process_boot_id": place.boot_id,
            "process_pgid": pgid,
            "process_start": start_ticks(pgid),
        }
        with session_scope() as session:
            session.execute(
                update(_STEPS)
                .where(
                    _STEPS.c.execution_id == execution_id,
                    _STEPS.c.step_index == step_index,
                    _STEPS.c.attempts == attempt,  # a later attempt's row is not this process's
                )
                .values(**values)
            )

    return record


def stop_lost_step(session: Session, step: ExecutionStep, *, actor: str) -> None:
    """Before a lost step's lease or lock is released: kill its process if it is on this host (module doc)."""
    if step.status != StepStatus.RUNNING.value or step.process_pgid is None or step.process_host is None:
        return
    place = here()
    pgid, start = step.process_pgid, step.process_start or 0
    where = f"process group {pgid} on {step.process_host}"
    if step.process_host != place.host:
        _event(
            session,
            step,
            actor,
            "orphan_elsewhere",
            f"{step.name} ran as {where}, not on this host ({place.host}): not killed from here; a dead worker's "
            "processes died with it, a hung worker stops its step when it finds its lease lost",
        )
        return
    if step.process_boot_id != place.boot_id:
        return  # the host rebooted since: nothing of that step survived
    try:
        killed = kill_group(pgid, start)
    except TimeoutError as exc:
        log.warning("orphan of %s step %s: %s", step.execution_id, step.step_index, exc)
        _event(session, step, actor, "orphan_kill_failed", f"{step.name}: {exc}")
        return
    if killed:
        _event(session, step, actor, "orphan_killed", f"killed {killed} process(es) of {step.name} left in {where}")


def stop_for_expired_locks(session: Session) -> None:
    """Before expired locks are reaped: stop the running steps of their executions (``stop_lost_step``)."""
    expired = select(ExecutionLock.execution_id).where(col(ExecutionLock.expires_at) < utcnow())
    steps = session.exec(
        select(ExecutionStep).where(
            col(ExecutionStep.execution_id).in_(expired),
            ExecutionStep.status == StepStatus.RUNNING.value,
            col(ExecutionStep.process_pgid).is_not(None),
        )
    ).all()
    for step in steps:
        stop_lost_step(session, step, actor="sweeper")


def _event(session: Session, step: ExecutionStep, actor: str, kind: str, message: str) -> None:
    record_event(
        session,
        execution_id=step.execution_id,
        tenant_id=step.tenant_id,
        kind=kind,
        actor=actor,
        step_index=step.step_index,
        message=message,
        data={"host": step.process_host, "boot_id": step.process_boot_id, "pgid": step.process_pgid},
    )
