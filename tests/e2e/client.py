"""A client process for the e2e tests: uses the public API with the environment it is given.

Usage: client.py submit N PLAN_FILE [SPREAD] | wait IDS_FILE TIMEOUT_S | workers [COUNT TIMEOUT_S] | show ID | approve ID | requeue ID |
       policy SLA CLASS STEP EXEC LEASE APPROVAL ATTEMPTS
Prints one JSON object on its last line.

``client.py serve`` answers many such commands in one process (what the e2e fixtures use: a process per
command paid a Python start-up each): one JSON array of arguments a line on stdin, one JSON object a line on
stdout: ``{"answer": …}``, or ``{"error": traceback}`` when the command failed (an answer may itself hold
an ``error`` field: an execution's). Between commands it forgets its database engines
and cached policies, so each command sees the database as a fresh process would.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path

import core
from ui import runtime


def main(argv: list[str]) -> dict[str, object]:
    """Run one command (the module docstring's usage) and return its JSON answer."""
    runtime.connect()  # Redis configured: messages go out after each commit
    command = argv[0]
    if command == "submit":
        count, plan = int(argv[1]), Path(argv[2]).read_text()
        spread = int(argv[3]) if len(argv) > 3 else 0  # plans on TARGET spread over this many local assets
        alice, admin = core.principal("alice", "demo"), core.principal("admin", "demo")
        existing = {a.name for a in core.list_assets(admin)}
        for n in range(spread):
            if f"node-{n}" not in existing:
                core.add_asset(admin, f"node-{n}", core.Connection.LOCAL)
        ids = []
        for i in range(count):
            text = plan.replace("NAME", f"plan-{i}").replace("TARGET", f"node-{i % spread}" if spread else "localhost")
            ids.append(core.submit(alice, text, background=True).execution.execution_id)
        return {"ids": ids}
    if command == "wait":
        ids, timeout_s = json.loads(Path(argv[1]).read_text()), float(argv[2])
        admin = core.principal("admin", "demo")
        deadline = time.monotonic() + timeout_s
        statuses: dict[str, str] = {}
        for execution_id in ids:
            try:
                remaining = max(0.1, deadline - time.monotonic())
                statuses[execution_id] = core.wait_for(admin, execution_id, timeout_s=remaining).status
            except core.DeadlineExceeded:
                statuses[execution_id] = core.get_execution(admin, execution_id).status
        return {"statuses": statuses}
    if command == "intervals":
        admin = core.principal("admin", "demo")
        views = [core.get_execution(admin, i) for i in json.loads(Path(argv[1]).read_text())]
        if len(argv) > 2 and argv[2] == "--parked":  # also when each first queued for a lock, if it had to
            parked = []
            for v in views:
                waits = [
                    e.created_at.isoformat()
                    for e in core.list_events(admin, v.execution_id)
                    if e.kind == "lock_waiting"
                ]
                parked.append(
                    [
                        v.execution_id,
                        v.status,
                        waits[0] if waits else None,
                        v.started_at.isoformat() if v.started_at else None,
                        v.finished_at.isoformat() if v.finished_at else None,
                    ]
                )
            return {"parked": parked}
        return {
            "intervals": [
                [v.steps[0].target, v.started_at.isoformat(), v.finished_at.isoformat()]  # type: ignore[union-attr]
                for v in views
            ]
        }
    if command == "events":
        admin = core.principal("admin", "demo")
        return {
            "events": [
                [e.created_at.isoformat(), e.kind, e.actor, e.message, e.data] for e in core.list_events(admin, argv[1])
            ]
        }
    if command == "workers":  # [COUNT TIMEOUT_S]: first wait up to TIMEOUT_S for COUNT live workers, in here
        count, timeout_s = (int(argv[1]), float(argv[2])) if len(argv) > 2 else (0, 0.0)
        deadline = time.monotonic() + timeout_s
        while True:
            views = core.list_workers(core.principal("admin", "demo"))
            live = sum(1 for w in views if w.heartbeat_age_s < 5)
            if live >= count or time.monotonic() >= deadline:
                return {"live": live, "workers": [w.model_dump(mode="json") for w in views]}
            time.sleep(0.1)
    if command == "approve":
        return core.approve(core.principal("bob", "demo"), argv[1]).model_dump(mode="json")
    if command == "requeue":
        from core.usecases.dlq import requeue

        return requeue(core.principal("alice", "demo"), argv[1], comment="e2e").model_dump(mode="json")
    if command == "policy":
        sla, cls, *values = argv[1:]
        core.update_policy(
            core.principal("admin", "demo"),
            core.SlaClass(sla),
            core.ActionClass(cls),
            core.PolicyValues(*(int(v) for v in values)),
        )
        return {"ok": True}
    if command == "show":
        return core.get_execution(core.principal("admin", "demo"), argv[1]).model_dump(mode="json")
    raise SystemExit(f"unknown command {command}")


def serve() -> None:
    """Answer one command per stdin line until stdin closes (see the module docstring)."""
    from core.policies import clear_policy_cache
    from db.engine import dispose_engines

    answers = sys.stdout
    sys.stdout = sys.stderr  # whatever a command prints must not end up in the answers
    for line in sys.stdin:
        try:
            reply: dict[str, object] = {"answer": main(json.loads(line))}
        except (Exception, SystemExit):  # SystemExit: an unknown command
            reply = {"error": traceback.format_exc()}
        finally:
            dispose_engines()  # a fresh process's connections each time (the chaos test restarts PostgreSQL)
            clear_policy_cache()
        answers.write(json.dumps(reply) + "\n")
        answers.flush()


if __name__ == "__main__":
    if sys.argv[1:] == ["serve"]:
        serve()
    else:
        print(json.dumps(main(sys.argv[1:])))
