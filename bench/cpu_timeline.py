"""What a drain cost, read from outside the processes doing it: a timeline sampled in a thread, read back by
interpolation at the drain's first and last step.

Per sample: the CPU seconds used so far by a process group (the workers; /proc/<pid>/stat utime + stime),
by the PostgreSQL backends whose ``application_name`` the workers set (PGAPPNAME; the server runs on this
machine, so its backends are in /proc too), and the statement and transaction counts that bench/counting
writes from inside the workers. A process that exits keeps its last reading. The bench process's own
queries use another application name and the ``postgres`` database, so they are not counted.
"""

from __future__ import annotations

import bisect
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2

TICK_S = 1 / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Reading:
    """Cumulative totals at one moment (wall clock)."""

    at: float
    worker_cpu_s: float
    database_cpu_s: float
    statements: int
    transactions: int
    waits: tuple[str, ...] = ()  # what each of the workers' backends was doing ("running", "Lock:tuple", …)
    locked_in: tuple[str, ...] = ()  # the statements (their start) of the backends waiting for a lock


def _state(state: str | None, kind: str | None, event: str | None) -> str:
    """A backend's state as one word: what it waits for while active, else idle (in a transaction or not)."""
    if state == "active":
        return f"{kind}:{event}" if kind else "running"
    return str(state)


def _cpu_s(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) * TICK_S


def backends_cpu_s(url: str) -> float:
    """The CPU seconds used so far by the PostgreSQL backends connected to ``url``'s database (0 for SQLite).

    For a benchmark in one process: its pool's connections live through the run, so the difference of two
    readings is what the server spent on the work between them (a backend that ends in between takes its CPU
    with it; the pool keeps them open)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if not parsed.drivername.startswith("postgresql"):
        return 0.0
    conn = psycopg2.connect(
        host=parsed.host, port=parsed.port, user=parsed.username, password=parsed.password, dbname="postgres"
    )
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (parsed.database,))
            pids = [row[0] for row in cur.fetchall()]
    finally:
        conn.close()
    return sum(cpu for cpu in map(_cpu_s, pids) if cpu is not None)


def _group_members(group: int) -> set[int]:
    members = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if Path(entry, "stat").read_text().rsplit(")", 1)[1].split()[2] == str(group):
                    members.add(int(entry.name))
            except OSError:
                continue
    return members


@dataclass
class CostTimeline:
    """Samples every ``interval_s`` until stopped; ``at(t)`` interpolates between samples."""

    group: int
    admin_dsn: str  # a connection to the server's ``postgres`` database
    database: str
    application_name: str
    count_dir: Path | None
    interval_s: float = 0.05
    readings: list[Reading] = field(default_factory=list)
    _last_cpu: dict[tuple[str, int], float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> CostTimeline:
        self._thread = threading.Thread(target=self._sample_until_stopped, daemon=True, name="cost-timeline")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def at(self, moment: float) -> Reading:
        """The totals at ``moment``, interpolated linearly between the samples around it."""
        times = [r.at for r in self.readings]
        i = bisect.bisect_left(times, moment)
        if i == 0 or i == len(times):
            return self.readings[min(i, len(times) - 1)]
        before, after = self.readings[i - 1], self.readings[i]
        w = (moment - before.at) / (after.at - before.at)
        return Reading(
            moment,
            before.worker_cpu_s + w * (after.worker_cpu_s - before.worker_cpu_s),
            before.database_cpu_s + w * (after.database_cpu_s - before.database_cpu_s),
            round(before.statements + w * (after.statements - before.statements)),
            round(before.transactions + w * (after.transactions - before.transactions)),
        )

    def waits_between(self, start: float, end: float) -> dict[str, float]:
        """Of the workers' backends seen in the samples between ``start`` and ``end``, the share in each state:
        running a statement, waiting for a lock, for the WAL (a commit's flush), idle between statements in a
        transaction or outside one."""
        seen = Counter(w for r in self.readings if start <= r.at <= end for w in r.waits)
        total = sum(seen.values()) or 1
        return {state: round(n / total, 3) for state, n in seen.most_common()}

    def lock_waits_between(self, start: float, end: float) -> Counter[str]:
        """Statement → how many samples between ``start`` and ``end`` found a backend waiting for a lock in it."""
        return Counter(q for r in self.readings if start <= r.at <= end for q in r.locked_in)

    def _sample_until_stopped(self) -> None:
        conn = psycopg2.connect(self.admin_dsn, application_name="bench-timeline")
        conn.autocommit = True
        workers: set[int] = set()
        backends: set[int] = set()
        looked = 0.0
        try:
            while not self._stop.is_set():
                if time.monotonic() - looked > 0.1:  # often: a process found late brings its whole CPU with it
                    looked = time.monotonic()
                    workers |= _group_members(self.group)
                with conn.cursor() as cur:
                    cur.execute(
                        "SELECT pid, state, wait_event_type, wait_event, left(query, 70) FROM pg_stat_activity"
                        " WHERE datname = %s AND application_name = %s",
                        (self.database, self.application_name),
                    )
                    rows = cur.fetchall()
                backends |= {row[0] for row in rows}
                waits = tuple(_state(state, kind, event) for _, state, kind, event, _ in rows)
                locked_in = tuple(" ".join(q.split()) for _, _, kind, _, q in rows if kind == "Lock")
                now = time.time()
                self.readings.append(
                    Reading(
                        now, self._total("w", workers), self._total("db", backends), *self._counts(), waits, locked_in
                    )
                )
                self._stop.wait(self.interval_s)
        finally:
            conn.close()

    def _total(self, kind: str, pids: set[int]) -> float:
        for pid in pids:
            cpu = _cpu_s(pid)
            if cpu is not None:
                self._last_cpu[kind, pid] = cpu
        return sum(v for (k, _), v in self._last_cpu.items() if k == kind)

    def _counts(self) -> tuple[int, int]:
        if self.count_dir is None:
            return 0, 0
        statements = transactions = 0
        for path in self.count_dir.glob("[0-9]*"):
            with_text = path.read_text().split()
            statements += int(with_text[0])
            transactions += int(with_text[1])
        return statements, transactions
