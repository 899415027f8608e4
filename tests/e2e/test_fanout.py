"""Fan-out (issue 17 item 2, DESIGN §14) on real `opsconductor worker` processes, PostgreSQL and Redis.

Two fan-outs over six tagged assets each run at once on two worker processes: neither ever has more than its
``max_concurrency`` targets running, by the step rows' timestamps and by what the targets' processes wrote. A worker
killed mid-fan-out leaves its running modify targets ``unknown`` (DLQ), never runs a completed target again, and
leaves no step process behind.
"""

from __future__ import annotations

import json
import os
import signal
import time
from datetime import datetime
from pathlib import Path

import pytest

import core
from tests.e2e.conftest import Cluster
from tests.engine_support import processes_matching, unique_seconds

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


def _fleet(tag: str, count: int = 6) -> list[str]:
    admin = core.principal("admin", "demo")
    names = [f"{tag}-{n}" for n in range(1, count + 1)]
    for name in names:
        core.add_asset(admin, name, core.Connection.LOCAL, tags=[tag])
    return names


def _plan(tmp_path: Path, tag: str, script: str, *, limits: str, timeout_s: int = 5) -> str:
    """A plan file whose fan-out step runs ``script`` on each asset tagged ``tag``. The script is a file of its
    own: the e2e client fills in ``TARGET`` and ``NAME`` in plan text, which would rewrite ``$OPSC_TARGET``."""
    program = tmp_path / f"{tag}.sh"
    program.write_text(script + "\n")
    path = tmp_path / f"{tag}.yaml"
    path.write_text(
        f"name: NAME-{tag}\nsteps:\n  - name: each\n    action: shell\n    action_class: modify\n"
        f"    targets: {{tags: [{tag}]}}\n{limits}    timeout_s: {timeout_s}\n"
        f"    params: {{command: [/bin/sh, {json.dumps(str(program))}]}}\n"
    )
    return str(path)


def _peak(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at one moment (an end before a start at the same instant)."""
    marks = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _at, delta in marks:
        running += delta
        peak = max(peak, running)
    return peak


def _logged(log: Path) -> list[tuple[float, float]]:
    """(start, end) per target from the lines its process wrote: ``start NAME T`` and ``end NAME T``."""
    starts: dict[str, float] = {}
    spans = []
    for line in log.read_text().splitlines():
        kind, name, at = line.split()
        if kind == "start":
            starts[name] = float(at)
        else:
            spans.append((starts.pop(name), float(at)))
    assert not starts, f"targets that never ended: {starts}"
    return spans


def _stamps(steps: list[dict]) -> list[tuple[float, float]]:  # type: ignore[type-arg]
    return [
        (datetime.fromisoformat(s["started_at"]).timestamp(), datetime.fromisoformat(s["finished_at"]).timestamp())
        for s in steps
    ]


def test_two_fan_outs_on_two_worker_processes_never_run_more_than_max_concurrency(
    cluster: Cluster, tmp_path: Path
) -> None:
    """Six targets each, ``max_concurrency: 2``, two executions at once on two worker processes: every target ran
    exactly once; at no moment were more than two of one execution's targets running (by the step rows'
    timestamps and by the processes' own lines), and two did run together."""
    tmp_path.chmod(0o777)  # the step runner's identity writes the logs
    ids = []
    for tag in ("fa", "fb"):
        names = _fleet(tag)
        log = tmp_path / f"{tag}.log"
        script = (
            f'echo "start $OPSC_TARGET $(date +%s.%N)" >> {log}; sleep 0.6; '
            f'echo "end $OPSC_TARGET $(date +%s.%N)" >> {log}'
        )
        plan = _plan(tmp_path, tag, script, limits="    max_concurrency: 2\n")
        [execution_id] = cluster.client("submit", "1", plan)["ids"]
        ids.append((execution_id, names, log))
    cluster.start_worker(threads=2)
    cluster.start_worker(threads=2)
    cluster.wait_for_workers(2)
    for execution_id, _names, _log in ids:
        cluster.client("approve", execution_id)
    ids_file = tmp_path / "ids.json"
    ids_file.write_text(json.dumps([i for i, _n, _l in ids]))
    statuses = cluster.client("wait", str(ids_file), "90")["statuses"]
    assert set(statuses.values()) == {"completed"}, statuses
    for execution_id, names, log in ids:
        view = cluster.client("show", execution_id)
        assert [(s["target"], s["status"], s["attempts"]) for s in view["steps"]] == [
            (n, "completed", 1) for n in names
        ]
        assert sorted(line.split()[1] for line in log.read_text().splitlines() if line.startswith("start")) == names
        assert _peak(_logged(log)) == 2
        assert _peak(_stamps(view["steps"])) <= 2
        [group] = view["fanouts"]
        assert (group["max_concurrency"], group["counts"]) == (2, {"completed": 6})


def _sleeping_worker(marker: str, timeout_s: float = 60) -> int:
    """The pid of the worker process one of whose step processes runs ``sleep <marker>``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for pid in processes_matching(f"sleep {marker}"):
            parent = pid
            for _ in range(4):  # sleep <- the step's unit <- the worker process
                parent = int(Path(f"/proc/{parent}/stat").read_text().split(")")[-1].split()[1])
                if "ui.cli" in Path(f"/proc/{parent}/cmdline").read_text():
                    return parent
        time.sleep(0.05)
    raise AssertionError(f"no worker ran sleep {marker}")


def test_a_worker_killed_mid_fan_out_leaves_its_running_modify_targets_unknown(
    cluster: Cluster, tmp_path: Path
) -> None:
    """SIGKILL the worker while two modify targets sleep (after a first completed): those two are ``unknown`` and
    not run again, the one not started stays pending, the completed one ran once; the execution is in the DLQ with
    ``unknown_outcome``, and the killed targets' processes are gone."""
    tmp_path.chmod(0o777)
    names = _fleet("fk", count=4)
    log = tmp_path / "fk.log"
    marker = unique_seconds(20)
    script = f'echo "$OPSC_TARGET" >> {log}; [ "$OPSC_TARGET" = fk-1 ] || exec sleep {marker}'
    plan = _plan(tmp_path, "fk", script, limits="    max_concurrency: 2\n", timeout_s=30)
    cluster.start_worker(threads=2)
    cluster.start_worker(threads=2)
    cluster.wait_for_workers(2)
    [execution_id] = cluster.client("submit", "1", plan)["ids"]
    cluster.client("approve", execution_id)
    worker = _sleeping_worker(marker)
    deadline = time.monotonic() + 30
    while len(processes_matching(f"sleep {marker}")) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)  # fk-1 done, fk-2 and fk-3 asleep: both slots busy
    os.kill(worker, signal.SIGKILL)
    ids_file = tmp_path / "ids.json"
    ids_file.write_text(json.dumps([execution_id]))
    assert cluster.client("wait", str(ids_file), "60")["statuses"] == {execution_id: "failed"}
    view = cluster.client("show", execution_id)
    assert [s["status"] for s in view["steps"]] == ["completed", "unknown", "unknown", "pending"]
    assert sorted(log.read_text().split()) == names[:3]  # nothing ran twice, fk-4 never started
    assert "unknown" in (view["error"] or "")
    deadline = time.monotonic() + 10
    while processes_matching(f"sleep {marker}") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_matching(f"sleep {marker}") == []
