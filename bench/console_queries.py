"""Latency of the console's reads at scale: the Executions list, the detail view, the approvals inbox, the Dashboard.

Creates a scratch PostgreSQL database (``opsc_bench_console``; dropped at the end unless --keep), migrates it
(db/migrate.py), fills it with COPY from generated streams (not the ORM): by default 1,000,000 executions
over 90 days in 3 tenants (60/30/10 %), 10,000,000 events, steps for every level-3 and a fifth of the other
executions, approvals (given, rejected, pending), DLQ entries for failed and timed-out runs, queue rows for
active ones and a few level-3 executions parked at a step gate. Then it times the public ``core`` calls the
console makes (p50/p95 over --runs calls each, after 2 warm-up calls) in the largest tenant, and the
baseline: the same list page 10,000 rows deep by OFFSET against the keyset cursor. The last line is one JSON
object with every figure.

Usage: uv run python bench/console_queries.py [--executions 1000000] [--events 10000000] [--runs 30] [--keep]
       uv run python bench/console_queries.py --executions 20000 --events 200000    (a smoke run, ~30 s)
       uv run python bench/console_queries.py --reuse     (measure again on a database kept with --keep)
Needs PostgreSQL (OPSC_TEST_DATABASE_URL or 127.0.0.1:5432) as a superuser: the fill turns off foreign-key
triggers (session_replication_role) and builds the secondary indexes after the COPY, not row by row.
"""

# ruff: noqa: S311  (seeded pseudo-random data for a benchmark: reproducible on purpose, never a secret)
from __future__ import annotations

import argparse
import bisect
import hashlib
import itertools
import json
import math
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg2
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.approval_levels import APPROVALS_REQUIRED  # noqa: E402  (after the path: runnable as a script)
from core.policy_limits import DEFAULT_POLICIES  # noqa: E402

PG_ADMIN = os.environ.get("OPSC_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
DEFAULT_DB = "opsc_bench_console"
TENANTS = (("acme", 0.6), ("globex", 0.3), ("initech", 0.1))
OPERATORS, APPROVERS, ASSETS = 24, 6, 60
DAYS = 90
STEP_FRACTION = 0.2
# The bench's admin widened every approval window to 7 days, so an inbox holds a realistic backlog
# (with the seeded 5 min to 2 h windows only a few dozen executions are ever pending at once).
APPROVAL_WINDOW_S = 7 * 86400
GATES_PER_TENANT = 5
VERBS = ("restart", "deploy", "rollback", "check", "rotate-logs", "drain", "scale", "backup", "vacuum",
         "renew-cert", "flush-cache", "patch")  # fmt: skip
SERVICES = ("nginx", "api", "billing", "auth", "redis", "postgres", "kafka", "search", "web", "worker", "cron",
            "gateway")  # fmt: skip
ENVS = ("prod", "staging", "dev", "eu-1", "us-2")
# Names come from VERBS x SERVICES x ENVS with Zipf weights: "nginx" is in ~6 % of them, "rollback-worker-dev"
# names ~0.02 % (about 140 of 600,000), "no-such-runbook" none (a typo: the case a plain scan is worst at).
SEARCHES = {"search_common": "nginx", "search_rare": "rollback-worker-dev", "search_none": "no-such-runbook"}
STATUS_FILTERS = (["failed"], ["timeout"], ["pending_approval"], ["running", "queued"], ["completed"],
                  ["failed", "timeout", "partial"])  # fmt: skip
ACTION_CLASSES = (("read", 0.5, 0), ("modify", 0.35, 1), ("deploy", 0.15, 2))
SLA_CLASSES = (("fast", 0.6, 2.0), ("medium", 0.3, 12.0), ("long", 0.1, 90.0))  # (class, share, median run s)
DEPTHS = (10_000, 100_000)  # the OFFSET baseline: how deep into the list a page starts


# ----------------------------------------------------------------------------------------------- the data


@dataclass(slots=True)
class Run:
    """One generated execution and the moments of its life (epoch seconds; None = never happened)."""

    id: str
    tenant: int
    requester: str
    name: str
    level: int
    action_class: str
    sla: str
    run_mode: str
    background: bool
    status: str
    created: float
    decided: float | None
    queued: float | None
    started: float | None
    finished: float | None
    approvers: tuple[str, ...]
    steps: tuple[str, ...]  # asset ids of the step rows (empty: no step rows)
    virtual_steps: int
    plan_json: str
    plan_hash: str
    gate_step: int | None = None


@dataclass(slots=True)
class World:
    tenants: list[str]
    users: dict[int, list[tuple[str, str, str]]]  # tenant -> (user id, username, role)
    assets: dict[int, list[tuple[str, str]]]  # tenant -> (asset id, name)
    runs: list[Run]
    now: float


def hexid(rng: random.Random) -> str:
    return f"{rng.getrandbits(128):032x}"


def stamp(epoch: float | None) -> str:
    """A COPY text value for a timestamptz (or NULL)."""
    if epoch is None:
        return "\\N"
    return datetime.fromtimestamp(epoch, UTC).isoformat(sep=" ")


def weighted(rng: random.Random, cumulative: list[float], values: list[Any]) -> Any:
    return values[bisect.bisect(cumulative, rng.random() * cumulative[-1])]


def zipf(n: int) -> list[float]:
    return list(itertools.accumulate(1 / (i + 1) ** 0.9 for i in range(n)))


def creation_times(rng: random.Random, n: int, now: float) -> list[float]:
    """``n`` sorted moments over the last DAYS days, busier in working hours (UTC 07-19) and on weekdays."""
    start = now - DAYS * 86400
    out: list[float] = []
    while len(out) < n:
        t = start + rng.random() * (DAYS * 86400 - 5)
        moment = time.gmtime(t)
        weight = (1.0 if 7 <= moment.tm_hour < 19 else 0.35) * (1.0 if moment.tm_wday < 5 else 0.5)
        if rng.random() < weight:
            out.append(t)
    out.sort()
    return out


def build_world(n: int, seed: int) -> World:
    rng = random.Random(seed)
    now = time.time()
    tenants = [hexid(rng) for _ in TENANTS]
    users: dict[int, list[tuple[str, str, str]]] = {}
    assets: dict[int, list[tuple[str, str]]] = {}
    for t, (tname, _share) in enumerate(TENANTS):
        people = [(hexid(rng), f"{tname}-op{i}", "operator") for i in range(OPERATORS)]
        people += [(hexid(rng), f"{tname}-approver{i}", "approver") for i in range(APPROVERS)]
        people += [(hexid(rng), f"{tname}-viewer", "viewer"), (hexid(rng), f"{tname}-admin", "admin")]
        users[t] = people
        assets[t] = [(hexid(rng), f"{s}-{e}-{i:02d}") for i, (s, e) in enumerate(itertools.product(SERVICES, ENVS))][
            :ASSETS
        ]
    names = [f"{v}-{s}-{e}" for v in VERBS for s in SERVICES for e in ENVS]
    rng.shuffle(names)
    name_weights, asset_weights = zipf(len(names)), zipf(ASSETS)
    user_weights = zipf(OPERATORS)
    tenant_cum = list(itertools.accumulate(share for _n, share in TENANTS))
    class_cum = list(itertools.accumulate(share for _c, share, _l in ACTION_CLASSES))
    sla_cum = list(itertools.accumulate(share for _s, share, _m in SLA_CLASSES))
    tenant_ids, classes, slas = list(range(len(TENANTS))), list(ACTION_CLASSES), list(SLA_CLASSES)
    runs: list[Run] = []
    for created in creation_times(rng, n, now):
        t = weighted(rng, tenant_cum, tenant_ids)
        people = users[t]
        operators, approvers = people[:OPERATORS], people[OPERATORS : OPERATORS + APPROVERS]
        requester = weighted(rng, user_weights, operators)[0] if rng.random() < 0.9 else rng.choice(approvers)[0]
        action_class, _share, floor = weighted(rng, class_cum, classes)
        level = max(floor, 3 if rng.random() < 0.05 else floor)
        sla, _s, median_s = weighted(rng, sla_cum, slas)
        background = not (sla == "fast" and level == 0) or rng.random() < 0.3
        name = weighted(rng, name_weights, names)
        with_steps = level == 3 or rng.random() < STEP_FRACTION
        count = rng.choice((1, 2, 2, 3)) if with_steps else 0
        steps = tuple(weighted(rng, asset_weights, assets[t])[0] for _ in range(count))
        steps = tuple(dict.fromkeys(steps)) if steps else ()
        virtual = len(steps) or rng.choice((1, 2, 2, 3, 4))
        plan = {
            "name": name,
            "steps": [
                {"action": "shell", "name": f"s{i}", "params": {"command": f"{name} on {a}"}, "target": a}
                for i, a in enumerate(steps or ("",) * virtual)
            ],
        }
        plan_json = json.dumps(plan, sort_keys=True, separators=(",", ":"))
        policy = DEFAULT_POLICIES[(sla, action_class)]
        run = Run(
            id=hexid(rng),
            tenant=t,
            requester=requester,
            name=name,
            level=level,
            action_class=action_class,
            sla=sla,
            run_mode="dry_run" if rng.random() < 0.3 else "live",
            background=background,
            status="",
            created=created,
            decided=None,
            queued=None,
            started=None,
            finished=None,
            approvers=(),
            steps=steps,
            virtual_steps=virtual,
            plan_json=plan_json,
            plan_hash=hashlib.sha256(plan_json.encode()).hexdigest(),
        )
        _live(rng, run, now, approvers, median_s, policy.execution_s)
        runs.append(run)
    _park_gates(rng, runs, users, now)
    return World(tenants, users, assets, runs, now)


def _live(
    rng: random.Random, run: Run, now: float, approvers: list[tuple[str, str, str]], median_s: float, limit_s: int
) -> None:
    """Decide the run's fate and moments: approval, queue, run time, end; recent ones may still be active."""
    age = now - run.created
    eligible = [a[0] for a in approvers if a[0] != run.requester]
    needed = APPROVALS_REQUIRED[run.level]
    t = run.created
    if run.level:
        if age < APPROVAL_WINDOW_S and rng.random() < 0.25 * math.exp(-age / 86400):
            run.status = "pending_approval"
            run.approvers = tuple(rng.sample(eligible, rng.randrange(needed)))
            return
        wait = min(rng.lognormvariate(math.log(300), 1.2), max(1.0, age - 1))
        t += wait
        run.decided = t
        fate = rng.random()
        if fate < 0.04:
            run.status, run.finished, run.approvers = "rejected", t, (rng.choice(eligible),)
            return
        if fate < 0.06:
            run.status, run.finished = "expired", run.created + min(APPROVAL_WINDOW_S, age - 0.5)
            run.decided = None
            return
        run.approvers = tuple(rng.sample(eligible, needed))
    if run.background:
        t += 0.01
        run.queued = t
        t += rng.lognormvariate(math.log(0.25), 1.0)
    if t > now - 0.5:  # still waiting for a worker
        run.status = "queued"
        return
    run.started = t
    if rng.random() < 0.02:
        run.status, run.finished = "cancelled", t + rng.random() * median_s
        return
    fate = rng.random()
    duration = rng.lognormvariate(math.log(median_s), 0.6)
    if fate < 0.025:
        run.status, duration = "timeout", limit_s + rng.random()
    elif fate < 0.075:
        run.status = "failed"
    elif fate < 0.09:
        run.status = "partial"
    else:
        run.status = "completed"
        duration = min(duration, limit_s * (1.2 if rng.random() < 0.01 else 0.95))  # a few late finishers
    if t + duration > now:
        run.status = "running"
        return
    run.finished = t + duration


def _park_gates(rng: random.Random, runs: list[Run], users: dict[int, Any], now: float) -> None:
    """A few recent level-3 executions, running and parked before a step for want of an approver's go."""
    for tenant in users:
        candidates = [
            r
            for r in reversed(runs[-20000:])
            if r.tenant == tenant and r.level == 3 and len(r.steps) > 1 and len(r.approvers) == 2 and r.queued
        ]
        for run in candidates[:GATES_PER_TENANT]:
            run.status, run.finished = "running", None
            run.started = run.started or run.queued + 0.1  # type: ignore[operator]
            run.gate_step = rng.randrange(1, len(run.steps))


STATUS_ORDER_DONE = {"completed", "failed", "partial", "timeout", "cancelled", "rejected", "expired"}
RESUBMITTABLE = {"failed", "cancelled", "rejected", "expired", "timeout"}


# ---------------------------------------------------------------------------------------------- the rows


def execution_rows(world: World) -> Iterator[str]:
    for r in world.runs:
        policy = DEFAULT_POLICIES[(r.sla, r.action_class)]  # type: ignore[index]
        expires = r.created + APPROVAL_WINDOW_S if r.level else None
        deadline = r.started + policy.execution_s if r.started is not None else None
        updated = max(x for x in (r.created, r.decided, r.queued, r.started, r.finished) if x is not None)
        error = "step s0 failed: exit status 1" if r.status == "failed" else "\\N"
        mode = "background" if r.background else "immediate"
        yield (
            f"{r.id}\t{world.tenants[r.tenant]}\t{r.requester}\t{r.name}\t\t{r.plan_json}\t{r.plan_hash}\t"
            f"{r.action_class}\t{r.level}\t{r.sla}\t{mode}\t{r.run_mode}\tf\t{r.status}\t{r.id}\t"
            f"{'f' if r.status in RESUBMITTABLE else 't'}\t1\t{error}\t{stamp(expires)}\t{stamp(r.created)}\t"
            f"{stamp(updated)}\t{stamp(r.started)}\t{stamp(deadline)}\t{stamp(r.finished)}\n"
        )


EXECUTION_COLUMNS = (
    "id, tenant_id, requested_by, name, description, plan_json, plan_hash, action_class, approval_level, sla_class,"
    " execution_mode, run_mode, continue_on_error, status, idempotency_key, idempotency_active, attempt, error,"
    " approval_expires_at, created_at, updated_at, started_at, deadline_at, finished_at"
)


def step_status(r: Run, index: int) -> str:
    if r.gate_step is not None:
        return "completed" if index < r.gate_step else "pending"
    last = len(r.steps) - 1
    if r.status in {"completed"}:
        return "completed"
    if r.status in {"failed", "timeout", "partial"}:
        return r.status.replace("partial", "failed") if index == last else "completed"
    if r.status == "running":
        return "running" if index == 0 else "pending"
    return "cancelled" if r.status == "cancelled" else "pending"


def step_rows(world: World) -> Iterator[str]:
    names = {a: n for assets in world.assets.values() for a, n in assets}
    rng = random.Random(7)
    for r in world.runs:
        for i, asset in enumerate(r.steps):
            status = step_status(r, i)
            ran = status not in {"pending", "cancelled"}
            started = stamp(r.started) if ran else "\\N"
            finished = stamp(r.finished) if ran and status != "running" else "\\N"
            yield (
                f"{hexid(rng)}\t{r.id}\t{world.tenants[r.tenant]}\t{i}\ts{i}\tshell\t{asset}\t{names[asset]}\t"
                f"{r.action_class}\t{{}}\t\\N\t{status}\t{int(ran)}\t\\N\t\\N\t{started}\t{finished}\n"
            )


STEP_COLUMNS = (
    "id, execution_id, tenant_id, step_index, name, action, target_asset_id, target_name, action_class,"
    " params_json, timeout_s, status, attempts, output, error, started_at, finished_at"
)


def approval_rows(world: World) -> Iterator[str]:
    rng = random.Random(11)
    for r in world.runs:
        tenant = world.tenants[r.tenant]
        when = r.decided if r.decided is not None else r.created + 30
        decision = "rejected" if r.status == "rejected" else "approved"
        for n, approver in enumerate(r.approvers):
            yield f"{hexid(rng)}\t{r.id}\t{tenant}\t{approver}\t{decision}\t{r.plan_hash}\t\\N\t{stamp(when - n)}\n"
        if r.gate_step is not None:
            for step in range(r.gate_step):
                approver = r.approvers[step % len(r.approvers)]
                yield f"{hexid(rng)}\t{r.id}\t{tenant}\t{approver}\tapproved\t{r.plan_hash}\t{step}\t{stamp(when)}\n"


APPROVAL_COLUMNS = "id, execution_id, tenant_id, approver_id, decision, plan_hash, step_index, created_at"


def dlq_rows(world: World) -> Iterator[str]:
    rng = random.Random(13)
    for r in world.runs:
        if r.status not in {"failed", "timeout"} or r.finished is None:
            continue
        resolved = world.now - r.finished > 2 * 86400 and rng.random() < 0.95
        reason = "step_failed" if r.status == "failed" else "execution_timeout"
        end = (f"{stamp(r.finished + 3600)}\tdiscarded\t{r.requester}") if resolved else "\\N\t\\N\t\\N"
        yield (
            f"{hexid(rng)}\t{r.id}\t{world.tenants[r.tenant]}\t{reason}\t0\t1\texit status 1\t"
            f"{stamp(r.finished)}\t{end}\t\\N\n"
        )


DLQ_COLUMNS = (
    "id, execution_id, tenant_id, reason, step_index, attempts, last_error, created_at, resolved_at, resolution,"
    " resolved_by, comment"
)


def queue_rows(world: World) -> Iterator[str]:
    rng = random.Random(17)
    for r in world.runs:
        if r.status not in {"queued", "running"}:
            continue
        tenant = world.tenants[r.tenant]
        head = f"{hexid(rng)}\t{r.id}\t{tenant}\t{r.sla}"
        if r.gate_step is not None:  # parked until the gate's deadline, no lease
            until = stamp(world.now + 1800)
            yield f"{head}\t{r.gate_step}\t{until}\t{stamp(r.started)}\t\\N\t\\N\t\\N\t{stamp(r.created)}\n"
        elif r.status == "running":
            lease = f"{hexid(rng)}\t{stamp(world.now + 60)}\tbench-worker"
            yield f"{head}\t0\t{stamp(r.started)}\t{stamp(r.started)}\t{lease}\t{stamp(r.created)}\n"
        else:
            yield f"{head}\t0\t{stamp(r.queued or r.created)}\t\\N\t\\N\t\\N\t\\N\t{stamp(r.created)}\n"


QUEUE_COLUMNS = (
    "id, execution_id, tenant_id, sla_class, step_index, available_at, dispatched_at, lease_token, lease_expires_at,"
    " claimed_by, created_at"
)


def essential_events(r: Run, usernames: dict[str, str]) -> list[tuple[str, str, str, str, str, str, float]]:
    """(kind, from, to, step, actor, message, at) of the run's trail, as core.fsm and the engine write it."""
    who = usernames[r.requester]
    first = "pending_approval" if r.level else "approved"
    out = [("status", "\\N", first, "\\N", who, "submitted", r.created)]
    state = first
    if r.level and r.decided is not None:
        for n, approver in enumerate(r.approvers[:-1]):
            out.append(("approval", "\\N", "\\N", "\\N", usernames[approver], f"approval {n + 1}", r.decided - 1))
        to = "rejected" if r.status == "rejected" else "approved"
        actor = usernames[r.approvers[-1]] if r.approvers else "system"
        out.append(("status", state, to, "\\N", actor, to, r.decided))
        state = to
    elif r.status == "expired":
        out.append(("status", state, "expired", "\\N", "system", "approval window passed", r.finished or r.created))
        return out
    if state == "rejected" or r.status == "pending_approval":
        return out
    if r.queued is not None:
        out.append(("status", state, "queued", "\\N", who, "queued for a worker", r.queued))
        state = "queued"
    if r.started is None:
        return out
    out.append(("status", state, "running", "\\N", "worker", "started", r.started))
    state = "running"
    end = r.finished if r.finished is not None else r.started + 1
    steps = r.gate_step if r.gate_step is not None else r.virtual_steps
    span = (end - r.started) / max(1, steps)
    for i in range(steps):
        at = r.started + i * span
        out.append(("step_started", "\\N", "\\N", str(i), "worker", f"s{i}: started", at))
        out.append(("step_finished", "\\N", "\\N", str(i), "worker", f"s{i}: done", at + span * 0.9))
    if r.gate_step is not None:
        out.append(("gate_waiting", "\\N", "\\N", str(r.gate_step), "worker", "waits for a go", end))
    elif r.finished is not None:
        out.append(("status", state, r.status, "\\N", "worker", r.status, r.finished))
    return out


def event_rows(world: World, target: int) -> Iterator[str]:
    """About ``target`` events: each run's trail, trimmed or padded with step output lines to the average."""
    usernames = {uid: name for people in world.users.values() for uid, name, _role in people}
    emitted = 0
    per_run = target / max(1, len(world.runs))
    for n, r in enumerate(world.runs):
        events = essential_events(r, usernames)
        allowed = round(per_run * (n + 1)) - emitted
        if allowed < len(events):
            events = events[: max(1, allowed)]
        tenant = world.tenants[r.tenant]
        for kind, from_s, to_s, step, actor, message, at in events:
            yield f"{r.id}\t{tenant}\t{kind}\t{from_s}\t{to_s}\t{step}\t{actor}\t{message}\t{{}}\t{stamp(at)}\n"
        pad = min(allowed - len(events), 200)
        last = events[-1][6]
        for i in range(pad):
            yield f"{r.id}\t{tenant}\tstep_output\t\\N\t\\N\t0\tworker\toutput line {i}\t{{}}\t{stamp(last)}\n"
        emitted += len(events) + max(0, pad)


EVENT_COLUMNS = (
    "execution_id, tenant_id, kind, from_status, to_status, step_index, actor, message, data_json, created_at"
)


# ---------------------------------------------------------------------------------------------- the fill


class Stream:
    """A file-like object over generated COPY lines, for psycopg2's copy_expert; reports progress."""

    def __init__(self, lines: Iterable[str], label: str, expected: int) -> None:
        self._lines = iter(lines)
        self._label, self._expected = label, expected
        self.count = 0
        self._started = self._reported = time.monotonic()

    def read(self, size: int = 65536) -> bytes:
        chunk: list[str] = []
        length = 0
        for line in self._lines:
            chunk.append(line)
            length += len(line)
            self.count += 1
            if length >= size:
                break
        now = time.monotonic()
        if now - self._reported >= 10:
            self._reported = now
            rate = self.count / (now - self._started)
            print(f"  {self._label}: {self.count:,} of ~{self._expected:,} ({rate:,.0f} rows/s)", flush=True)
        return "".join(chunk).encode()

    def readline(self, size: int = -1) -> bytes:
        return self.read(size if size > 0 else 65536)


def copy(conn: Any, table: str, columns: str, lines: Iterable[str], expected: int) -> int:
    started = time.monotonic()
    stream = Stream(lines, table, expected)
    with conn.cursor() as cur:
        cur.copy_expert(f"COPY {table} ({columns}) FROM STDIN", stream, size=1 << 18)
    conn.commit()
    print(f"  {table}: {stream.count:,} rows in {time.monotonic() - started:.0f} s", flush=True)
    return stream.count


BIG_TABLES = ("executions", "execution_steps", "approvals", "execution_events", "execution_dlq", "execution_queue")


def fill(dsn: str, executions: int, events: int, seed: int) -> dict[str, Any]:
    """Generate the world and COPY it in; returns the row counts and the time taken."""
    started = time.monotonic()
    print(f"generating {executions:,} executions ...", flush=True)
    world = build_world(executions, seed)
    print(f"  done in {time.monotonic() - started:.0f} s", flush=True)
    conn = psycopg2.connect(dsn)
    with conn.cursor() as cur:
        cur.execute("SET session_replication_role = replica")  # no FK triggers per row: the data is consistent
        cur.execute("SET maintenance_work_mem = '1GB'")
        cur.execute("SET synchronous_commit = off")
        cur.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ANY(%s) AND indexname NOT IN"
            " (SELECT conname FROM pg_constraint)",
            (list(BIG_TABLES),),
        )
        secondary = cur.fetchall()
        for index, _definition in secondary:
            cur.execute(f'DROP INDEX "{index}"')
    conn.commit()
    counts = _fill_small(conn, world)
    counts["executions"] = copy(conn, "executions", EXECUTION_COLUMNS, execution_rows(world), executions)
    counts["execution_steps"] = copy(conn, "execution_steps", STEP_COLUMNS, step_rows(world), executions // 3)
    counts["approvals"] = copy(conn, "approvals", APPROVAL_COLUMNS, approval_rows(world), executions // 2)
    counts["execution_dlq"] = copy(conn, "execution_dlq", DLQ_COLUMNS, dlq_rows(world), executions // 12)
    counts["execution_queue"] = copy(conn, "execution_queue", QUEUE_COLUMNS, queue_rows(world), 100)
    counts["execution_events"] = copy(conn, "execution_events", EVENT_COLUMNS, event_rows(world, events), events)
    with conn.cursor() as cur:  # COPY under session_replication_role fired no trigger: count as migration 0013 does
        cur.execute(
            "INSERT INTO execution_counts (tenant_id, status, run_mode, n)"
            " SELECT tenant_id, status, run_mode, count(*) FROM executions GROUP BY tenant_id, status, run_mode"
        )
    conn.commit()
    print(f"building {len(secondary)} indexes ...", flush=True)
    with conn.cursor() as cur:
        for index, definition in secondary:
            began = time.monotonic()
            cur.execute(definition)
            conn.commit()
            print(f"  {index}: {time.monotonic() - began:.0f} s", flush=True)
    conn.autocommit = True
    began = time.monotonic()
    with conn.cursor() as cur:
        cur.execute("VACUUM (ANALYZE)")  # what autovacuum would have done: statistics and the visibility map
    print(f"  vacuum analyze: {time.monotonic() - began:.0f} s", flush=True)
    conn.close()
    counts["fill_s"] = round(time.monotonic() - started)
    return counts


def _fill_small(conn: Any, world: World) -> dict[str, int]:
    created = stamp(world.now - DAYS * 86400 - 3600)
    with conn.cursor() as cur:
        for (sla, action), v in DEFAULT_POLICIES.items():
            cur.execute(
                "INSERT INTO timeout_policies VALUES (%s, %s, %s, %s, %s, %s, %s, now(), NULL)",
                (sla.value, action.value, v.step_s, v.execution_s, v.lease_s, APPROVAL_WINDOW_S, v.max_attempts),
            )
        for t, (name, _share) in enumerate(TENANTS):
            cur.execute(
                "INSERT INTO tenants (id, name, created_at) VALUES (%s, %s, %s)", (world.tenants[t], name, created)
            )
            cur.execute(
                "INSERT INTO tenant_settings (tenant_id, mode, max_live_level, over_level, updated_at)"
                " VALUES (%s, 'live', 3, 'dry_run', now())",
                (world.tenants[t],),
            )
            for uid, username, role in world.users[t]:
                cur.execute(
                    "INSERT INTO users (id, username, display_name, disabled, created_at)"
                    " VALUES (%s, %s, %s, false, %s)",
                    (uid, username, username, created),
                )
                cur.execute(
                    "INSERT INTO memberships (tenant_id, user_id, role, created_at) VALUES (%s, %s, %s, %s)",
                    (world.tenants[t], uid, role, created),
                )
            for aid, aname in world.assets[t]:
                cur.execute(
                    "INSERT INTO assets (id, tenant_id, name, connection, host, tags_json, created_at)"
                    " VALUES (%s, %s, %s, 'ssh', %s, '[]', %s)",
                    (aid, world.tenants[t], aname, f"{aname}.example.internal", created),
                )
    conn.commit()
    return {"users": sum(len(p) for p in world.users.values()), "assets": sum(len(a) for a in world.assets.values())}


# ------------------------------------------------------------------------------------------- the timings


def percentile(values: list[float], pct: float) -> float:
    """The pct-th percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(pct / 100 * len(ordered)) - 1))]


def timed(call: Callable[[random.Random], Any], runs: int, rng: random.Random) -> dict[str, float]:
    for _ in range(2):
        call(rng)
    took = []
    for _ in range(runs):
        began = time.perf_counter()
        call(rng)
        took.append((time.perf_counter() - began) * 1000)
    return {"p50_ms": round(statistics.median(took), 1), "p95_ms": round(percentile(took, 95), 1)}


def measure(url: str, runs: int, seed: int) -> dict[str, Any]:
    """Time every console read through the public ``core`` API, in the largest tenant."""
    from cryptography.fernet import Fernet

    os.environ.update({"OPSC_DATABASE_URL": url, "OPSC_SECRET_KEY": Fernet.generate_key().decode()})
    from db.settings import get_settings

    get_settings.cache_clear()
    import core
    from core.reads.executions import encode_cursor

    tenant = TENANTS[0][0]
    viewer = core.principal(f"{tenant}-viewer", tenant)
    approver = core.principal(f"{tenant}-approver0", tenant)
    engine = create_engine(url)
    with engine.connect() as conn:
        tid = conn.execute(text("SELECT id FROM tenants WHERE name = :n"), {"n": tenant}).scalar_one()
        size = conn.execute(text("SELECT count(*) FROM executions WHERE tenant_id = :t"), {"t": tid}).scalar_one()
        pending = conn.execute(
            text("SELECT count(*) FROM executions WHERE tenant_id = :t AND status = 'pending_approval'"), {"t": tid}
        ).scalar_one()
        ids = [
            r[0]
            for r in conn.execute(
                text("SELECT id FROM executions WHERE tenant_id = :t ORDER BY random() LIMIT 2000"), {"t": tid}
            )
        ]
        operators = [f"{tenant}-op{i}" for i in range(OPERATORS)]
        assets = [r[0] for r in conn.execute(text("SELECT name FROM assets WHERE tenant_id = :t"), {"t": tid})]
        deep = {
            depth: conn.execute(
                text(
                    "SELECT created_at, id FROM executions WHERE tenant_id = :t"
                    " ORDER BY created_at DESC, id DESC OFFSET :o LIMIT 1"
                ),
                {"t": tid, "o": depth - 1},
            ).first()
            for depth in DEPTHS
        }
        oldest, newest = conn.execute(
            text("SELECT min(created_at), max(created_at) FROM executions WHERE tenant_id = :t"), {"t": tid}
        ).one()
    engine.dispose()
    cursors = {depth: encode_cursor(row[0], row[1]) for depth, row in deep.items() if row is not None}
    page = core.list_executions_page

    def searching(term: str) -> Callable[[random.Random], Any]:
        return lambda rng: page(viewer, search=term)

    def dated(rng: random.Random) -> Any:
        after = oldest + (newest - oldest - timedelta(days=1)) * rng.random()
        return page(viewer, created_after=after, created_before=after + timedelta(days=1))

    def keyset_at(cursor: str) -> Callable[[random.Random], Any]:
        return lambda rng: page(viewer, before=cursor)

    def offset_at(depth: int) -> Callable[[random.Random], Any]:
        return lambda rng: core.list_executions(viewer, offset=depth)

    def second_page(rng: random.Random) -> Any:
        return page(viewer, before=first_cursor)

    def detail(rng: random.Random) -> Any:
        chosen = rng.choice(ids)
        return core.get_execution(viewer, chosen), core.list_events(viewer, chosen, limit=200)

    first_cursor = page(viewer).next_cursor
    calls: dict[str, Callable[[random.Random], Any]] = {
        "list_first_page": lambda rng: page(viewer),
        "list_status": lambda rng: page(viewer, status=[core.ExecutionStatus(s) for s in rng.choice(STATUS_FILTERS)]),
        "list_requester": lambda rng: page(viewer, requested_by=rng.choice(operators)),
        "list_status_and_requester": lambda rng: page(
            viewer, status=core.ExecutionStatus.FAILED, requested_by=rng.choice(operators)
        ),
        "list_date_range": dated,
        "list_asset": lambda rng: page(viewer, asset=rng.choice(assets)),
        **{f"list_{key}": searching(term) for key, term in SEARCHES.items()},
        "list_search_id_prefix": lambda rng: page(viewer, search=rng.choice(ids)[:8]),
        "list_page_2": second_page,
        **{f"list_keyset_{d}_deep": keyset_at(c) for d, c in cursors.items()},
        **{f"list_offset_{d}_deep": offset_at(d) for d in cursors},
        "detail_and_events": detail,
        "approval_inbox": lambda rng: core.approval_inbox(approver),
        "dashboard_24h": lambda rng: core.dashboard(viewer),
        "dashboard_7d": lambda rng: core.dashboard(viewer, since=timedelta(days=7)),
    }
    figures: dict[str, Any] = {}
    for name, call in calls.items():
        figures[name] = timed(call, runs, random.Random(seed))
        print(f"  {name:28} p50 {figures[name]['p50_ms']:7.1f} ms   p95 {figures[name]['p95_ms']:7.1f} ms", flush=True)
    inbox = core.approval_inbox(approver)
    figures["_context"] = {
        "tenant": tenant,
        "tenant_executions": size,
        "tenant_pending_approvals": pending,
        "inbox_items": len(inbox),
        "inbox_gates": sum(1 for i in inbox if i.kind == "gate"),
        "dashboard_24h_executions": core.dashboard(viewer).total,
        "dashboard_7d_executions": core.dashboard(viewer, since=timedelta(days=7)).total,
    }
    return figures


# -------------------------------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--executions", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=30, help="timed calls per query (after 2 warm-up calls)")
    parser.add_argument("--database", default=DEFAULT_DB)
    parser.add_argument("--seed", type=int, default=20261129)
    parser.add_argument("--keep", action="store_true", help="keep the database at the end")
    parser.add_argument("--reuse", action="store_true", help="measure an existing (kept) database; no fill")
    args = parser.parse_args()
    admin = create_engine(make_url(PG_ADMIN), isolation_level="AUTOCOMMIT")
    url = make_url(PG_ADMIN).set(database=args.database)
    dsn = (
        f"dbname={args.database} user={url.username or 'postgres'} host={url.host or '127.0.0.1'}"
        f" port={url.port or 5432}"
    )
    counts: dict[str, Any] = {}
    if not args.reuse:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{args.database}"'))
    from db import migrate
    from db.engine import dispose_engines

    try:
        if not args.reuse:
            migrate.upgrade(url.render_as_string(hide_password=False))
            dispose_engines()
            counts = fill(dsn, args.executions, args.events, args.seed)
        print(f"measuring ({args.runs} calls each) ...", flush=True)
        figures = measure(url.render_as_string(hide_password=False), args.runs, args.seed)
    finally:
        dispose_engines()
        if not args.keep:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)'))
        admin.dispose()
    context = figures.pop("_context")
    ratios = {
        str(d): round(figures[f"list_offset_{d}_deep"]["p50_ms"] / figures[f"list_keyset_{d}_deep"]["p50_ms"], 1)
        for d in DEPTHS
        if f"list_keyset_{d}_deep" in figures
    }
    result: dict[str, Any] = {
        "executions": counts.get("executions", args.executions),
        "events": counts.get("execution_events", args.events),
        **{k: v for k, v in counts.items() if k not in {"executions", "execution_events"}},
        **context,
        "runs": args.runs,
        "queries": figures,
    }
    result["offset_vs_keyset_p50_ratio"] = ratios
    for depth, ratio in ratios.items():
        print(f"a page {int(depth):,} rows deep: OFFSET takes {ratio}x the time of the keyset cursor (p50)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
