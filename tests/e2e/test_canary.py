"""A canary secret through real worker processes on PostgreSQL + Redis: echoed, logged and raised by a
step's command, it appears zero times in any table, worker log, Redis key or the rendered console."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from sqlalchemy import create_engine, text
from sqlmodel import SQLModel
from streamlit.testing.v1 import AppTest

import core
from tests.e2e.conftest import ROOT, Cluster
from tests.e2e.test_workers import _wait_all, _write
from tests.ui.conftest import texts
from ui import state

pytestmark = [pytest.mark.e2e, pytest.mark.integration]
CANARY = "e2e-CaNaRy-91c4-v4lue"
LEAKY_PYTHON = (
    "import logging, os; v = os.environ['T']; logging.warning('token=%s', v); logging.warning(f'tok {v}'); "
    "raise SystemExit('boom ' + v)"
)


def test_canary_is_nowhere(
    cluster: Cluster, tmp_path: Path, postgres_db: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    setting = subprocess.run(
        [sys.executable, "-m", "ui.cli", "secrets", "set", "canary", "--as", "admin", "--tenant", "demo"],
        cwd=ROOT, env=cluster.env, input=CANARY + "\n", capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert setting.returncode == 0, setting.stderr
    plan = _write(
        tmp_path, "plan.yaml",
        "name: NAME\ncontinue_on_error: true\nsteps:\n"
        "  - {name: echo, action: shell, target: localhost, params: {command: [printenv, T], env: {T: '{{ secret:canary }}'}}}\n"
        f"  - {{name: leak, action: shell, target: localhost, params: {{command: [python3, -c, \"{LEAKY_PYTHON}\"], "
        "env: {T: '{{ secret:canary }}'}}}\n",
    )  # fmt: skip
    cluster.start_worker(processes=1, threads=2)
    cluster.wait_for_workers(1)
    [execution_id] = cluster.client("submit", "1", plan)["ids"]
    cluster.client("approve", execution_id)  # steps with a secret are at least modify (DESIGN §13)
    assert _wait_all(cluster, tmp_path, [execution_id], 60) == {execution_id: "partial"}
    view = cluster.client("show", execution_id)
    assert view["steps"][0]["output"] == "***\n" and "boom ***" in view["steps"][1]["output"]
    assert "token=***" in view["steps"][1]["output"] or "***" in view["steps"][1]["output"]
    cluster.stop_all()

    engine = create_engine(postgres_db)
    with engine.connect() as conn:
        tables = "\n".join(
            repr(r) for t in SQLModel.metadata.sorted_tables for r in conn.execute(text(f"SELECT * FROM {t.name}"))
        )
    engine.dispose()
    logs = "\n".join(p.read_text(errors="replace") for p in tmp_path.glob("worker-*.log"))
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{cluster.env['OPSC_REDIS_NAMESPACE']}*"))
    redis_dump = b"\n".join(k + b" " + (client.dump(k) or b"") for k in keys).decode("latin-1")
    client.close()
    monkeypatch.setenv("OPSC_CONSOLE_WORKER", "0")
    core.get_settings.cache_clear()
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=30)
    at.session_state[state.PRINCIPAL] = core.principal("admin", "demo")
    at.run()
    at.switch_page("ui/pages/executions.py").run()
    at.selectbox(key=state.EXECUTION_PICK).select(execution_id).run()
    page = texts(at)
    assert execution_id in page and "secrets_read" in tables
    for sink, content in {"tables": tables, "worker logs": logs, "redis": redis_dump, "console": page}.items():
        for form in (CANARY, base64.b64encode(CANARY.encode()).decode()):
            assert form not in content, f"the canary reached {sink}"
