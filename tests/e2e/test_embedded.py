"""The embedded default end to end (DESIGN §10): SQLite and the in-process broker, driven by the real
`opsconductor` command: `submit` in one process, `worker` in another, `watch` following along."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def _cli(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ui.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def embedded_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A fresh SQLite file with demo data; no Redis, no secret key: the embedded default."""
    env = {k: v for k, v in os.environ.items() if k not in {"OPSC_REDIS_URL", "OPSC_SECRET_KEY"}}
    env |= {
        "OPSC_DATABASE_URL": f"sqlite:///{tmp_path / 'opsc.db'}",
        "OPSC_SWEEP_INTERVAL_S": "0.3",
        "OPSC_REDISPATCH_AFTER_S": "1",
        "PYTHONUNBUFFERED": "1",
    }
    assert _cli(env, "init", "--demo").returncode == 0
    assert (tmp_path / "opsc.secret-key").stat().st_mode & 0o777 == 0o600
    yield env


def test_submit_in_one_process_worker_in_another(embedded_env: dict[str, str], tmp_path: Path) -> None:
    """A background plan submitted by the CLI is run by `opsconductor worker` (fed from the DB queue);
    a modify plan runs after bob's approval; `watch` follows it to the end."""
    read_plan = tmp_path / "read.yaml"
    read_plan.write_text(
        "name: disk\nsteps:\n  - {name: df, action: shell, target: localhost, params: {command: [df, -h, /]}}\n"
    )
    modify_plan = tmp_path / "modify.yaml"
    modify_plan.write_text(
        "name: touch\nsteps:\n  - {name: t, action: shell, target: localhost, action_class: modify, "
        f"params: {{command: [touch, '{tmp_path / 'touched'}']}}}}\n"
    )
    worker = subprocess.Popen(
        [sys.executable, "-m", "ui.cli", "worker", "--threads", "2"],
        cwd=ROOT,
        env=embedded_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        submitted = _cli(embedded_env, "submit", str(read_plan), "--as", "alice", "--background", "--json")
        read_id = json.loads(submitted.stdout)["execution_id"]
        watched = _cli(embedded_env, "watch", read_id, "--as", "alice", timeout=60)
        assert watched.returncode == 0 and "completed" in watched.stdout, watched.stdout + watched.stderr
        modify_id = json.loads(_cli(embedded_env, "submit", str(modify_plan), "--as", "alice", "--json").stdout)[
            "execution_id"
        ]
        assert _cli(embedded_env, "approve", modify_id, "--as", "alice").returncode == 3
        assert _cli(embedded_env, "approve", modify_id, "--as", "bob").returncode == 0
        assert _cli(embedded_env, "watch", modify_id, "--as", "bob", timeout=60).returncode == 0
        shown = json.loads(_cli(embedded_env, "show", modify_id, "--as", "bob", "--json").stdout)
        assert shown["status"] == "completed" and (tmp_path / "touched").exists()
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        output, _ = worker.communicate(timeout=30)
    assert worker.returncode == 0, output
    assert "stopping" in output


def test_submit_wait_runs_the_plan_in_the_cli(embedded_env: dict[str, str], tmp_path: Path) -> None:
    """`submit --background --wait` with no worker anywhere: the CLI becomes the worker until it ends."""
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "name: two\nsteps:\n  - {name: a, action: sleep, target: localhost, params: {seconds: 0.2}}\n"
        "  - {name: b, action: shell, target: localhost, params: {command: [echo, done]}}\n"
    )
    # `echo` is no demo read-only prefix: an admin declares it, so the plan needs no approval.
    allowed = _cli(embedded_env, "commands", "allow", "--as", "admin", "--tenant", "demo", "--", "echo")
    assert allowed.returncode == 0, allowed.stderr
    result = _cli(embedded_env, "submit", str(plan), "--as", "alice", "--background", "--wait", "--json")
    body = json.loads(result.stdout)
    assert result.returncode == 0 and body["status"] == "completed"
    assert [s["status"] for s in body["steps"]] == ["completed", "completed"] and body["steps"][1]["output"] == "done\n"
