"""A step trying to escape the worker's trust (DESIGN §13, first bullet), with real processes.

A real `opsconductor worker` runs on the embedded default (a SQLite file and its generated key file, in a
world-readable directory) with canaries in its environment. An operator's plan of shell steps then tries
to read the key file and the database, write the database, read the worker's environment through /proc,
and list the database directory. Each attempt must fail or come back empty, and neither the key nor a
canary may appear anywhere: in the stored outputs, any table, or the worker's log.

Two identities for the worker, one per run:
- ``runner-user``: the worker runs as root, so steps run as the runner user (OPSC_RUNNER_USER);
- ``bubblewrap``: the worker runs as ``nobody`` (`runuser -u nobody`), so steps run in a bwrap sandbox
  (see ``_as_nobody`` for how nobody gets to run this checkout's Python).
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT

pytestmark = pytest.mark.e2e
WRITTEN = "ESCAPE-WRITTEN"  # what the write attempt appends, built by the shell so the plan text differs


@dataclass
class Box:
    """The worker's installation: its environment, the files to protect and its canaries."""

    env: dict[str, str]
    mode: str
    data: Path
    database: Path
    key_file: Path
    session_key_file: Path  # the console's session key (it signs console sessions): a step must not mint one
    canaries: list[str]
    worker: subprocess.Popen[bytes]
    log: Path

    def cli(self, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        """The `opsconductor` command, as the test's user (root), on the worker's database."""
        return subprocess.run(
            [sys.executable, "-m", "ui.cli", *args],
            cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip


def _as_nobody(view: Path) -> list[str]:
    """The command prefix that runs this checkout's Python as ``nobody`` (skips where it cannot).

    The virtualenv's interpreter may live in root's home (pyenv under /root, 0700): then the worker gets
    a mount namespace of its own in which /root is a traversable ``view`` holding just that tree, so the
    very interpreter and packages of this run serve nobody too; the host's /root is not touched.
    """
    if os.geteuid() != 0 or shutil.which("runuser") is None or shutil.which("bwrap") is None:
        pytest.skip("running the worker as nobody needs root, runuser and bubblewrap")
    python = Path(sys.executable).resolve()
    prefix = ["runuser", "-u", "nobody", "--"]
    if Path("/root") in python.parents:
        top = Path("/root") / python.relative_to("/root").parts[0]
        view.mkdir(mode=0o711)
        view.chmod(0o711)
        (view / top.name).mkdir()
        script = f'mount --bind "{top}" "{view / top.name}" && mount --rbind "{view}" /root && exec "$@"'
        prefix = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, "sh", *prefix]
    probe = subprocess.run([*prefix, sys.executable, "-c", "import ui.cli"], cwd=ROOT, capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"nobody cannot run this checkout's Python: {probe.stderr.decode(errors='replace')[-200:]}")
    return [*prefix, sys.executable]


@pytest.fixture(params=["runner-user", "bubblewrap"])
def box(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Box]:
    mode = request.param
    if mode == "runner-user" and os.geteuid() != 0:
        pytest.skip("the runner-user path needs a root worker")
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o755)  # world-readable on purpose: the files' own modes must keep the runner out
    canaries = [f"escape-env-canary-{uuid.uuid4().hex}", f"vault-canary-{uuid.uuid4().hex}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSC_")}
    env |= {
        "OPSC_DATABASE_URL": f"sqlite:///{data / 'opsc.db'}",
        "OPSC_SWEEP_INTERVAL_S": "0.3",
        "OPSC_REDISPATCH_AFTER_S": "1",
        "PYTHONUNBUFFERED": "1",
        "ESCAPE_CANARY": canaries[0],
        "OPSC_VAULT_TOKEN": canaries[1],  # a credential the worker holds (unused: no OPSC_VAULT_URL)
    }
    prefix = [sys.executable]
    if mode == "bubblewrap":
        prefix = _as_nobody(tmp_path / "root-view")
        nobody = pwd.getpwnam("nobody")
        os.chown(data, nobody.pw_uid, nobody.pw_gid)
    init = subprocess.run(
        [*prefix, "-m", "ui.cli", "init", "--demo"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert init.returncode == 0, init.stdout + init.stderr
    console_key = subprocess.run(  # as the console's first sign-in would: its session key beside the database
        [*prefix, "-c", "from core.identity.session_key import session_key; session_key()"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert console_key.returncode == 0, console_key.stderr
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [*prefix, "-m", "ui.cli", "worker", "--threads", "2"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    box = Box(
        env, mode, data, data / "opsc.db", data / "opsc.secret-key", data / "opsc.session-key", canaries, worker, log
    )
    try:
        yield box
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()


def _worker_environ_has(box: Box, canary: str, within_s: float = 60) -> bool:
    """Whether a process of the worker's session holds ``canary`` in its environment (waiting for it to exist).

    The session's leader may be a wrapper (``unshare``/``runuser``) still exec'ing, or already waiting for
    its child, so every process of the session is looked at, not just the pid Popen returned.
    """
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline and box.worker.poll() is None:
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                session = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[3])
                if session == box.worker.pid and canary in (proc / "environ").read_text(errors="replace"):
                    return True
            except (OSError, IndexError, ValueError):
                continue
        time.sleep(0.1)
    return False


def _attempts(box: Box) -> dict[str, str]:
    """Step name → shell command of each escape attempt."""
    db, key, data = box.database, box.key_file, box.data
    return {
        "read-key-file": f"cat '{key}'",
        "read-session-key": f"cat '{box.session_key_file}'",
        "read-database": f"cat '{db}'",
        "read-wal": f"cat '{db}-wal'",
        "write-database": f"printf '%s-%s' ESCAPE WRITTEN >> '{db}'",
        "parent-environ": "cat /proc/$PPID/environ",
        "init-environ": "cat /proc/1/environ",
        "every-environ": 'for f in /proc/[0-9]*/environ; do cat "$f"; echo; done 2>/dev/null; true',
        "env": "env",
        "list-data-dir": f"ls -la '{data}'",
    }


def _plan(box: Box) -> str:
    steps = [
        {"name": name, "action": "shell", "target": "localhost", "params": {"command": command, "shell": True}}
        for name, command in _attempts(box).items()
    ]
    return json.dumps({"name": "escape", "continue_on_error": True, "steps": steps})


def _run_as_operator(box: Box, tmp_path: Path) -> dict[str, dict[str, object]]:
    """alice submits the plan, bob approves it (shell: true is a modify), the worker runs it; its steps."""
    plan = tmp_path / "escape.json"
    plan.write_text(_plan(box))
    submitted = box.cli("submit", str(plan), "--tenant", "demo", "--as", "alice", "--background", "--json")
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    execution = json.loads(submitted.stdout)
    if execution["status"] == "pending_approval":
        approved = box.cli("approve", execution["execution_id"], "--as", "bob")
        assert approved.returncode == 0, approved.stdout + approved.stderr
    box.cli("watch", execution["execution_id"], "--as", "bob", timeout=120)
    shown = json.loads(box.cli("show", execution["execution_id"], "--as", "bob", "--json").stdout)
    assert shown["status"] in {"partial", "completed", "failed"}, (shown, box.log.read_text()[-3000:])
    return {step["name"]: step for step in shown["steps"]}


def test_a_step_cannot_reach_the_key_the_database_or_the_workers_environment(box: Box, tmp_path: Path) -> None:
    """Every attempt fails (permission denied, no such file) or finds nothing of the worker's."""
    key = box.key_file.read_text().strip()
    session_key = box.session_key_file.read_text().strip()
    assert box.key_file.stat().st_mode & 0o777 == 0o600 and box.database.stat().st_mode & 0o777 == 0o600
    assert box.session_key_file.stat().st_mode & 0o777 == 0o600
    assert _worker_environ_has(box, box.canaries[0]), box.log.read_text(errors="replace")[-3000:]  # not vacuous
    steps = _run_as_operator(box, tmp_path)
    assert set(steps) == set(_attempts(box)) and all(s["status"] in {"completed", "failed"} for s in steps.values())
    output = {name: f"{s['output'] or ''}\n{s['error'] or ''}" for name, s in steps.items()}
    refused = "No such file or directory" if box.mode == "bubblewrap" else "Permission denied"

    for name in ("read-key-file", "read-session-key", "read-database", "read-wal"):
        assert steps[name]["status"] == "failed" and refused in output[name], (name, output[name])
    if box.mode == "runner-user":
        for name in ("write-database", "parent-environ", "init-environ"):
            assert steps[name]["status"] == "failed" and "Permission denied" in output[name], (name, output[name])
        assert "-rw------- " in output["list-data-dir"]  # names visible in a world-readable dir, contents not
    else:  # the sandbox's /proc holds only its own processes; the database dir is an empty tmpfs
        assert "opsc.db" not in output["list-data-dir"] and "secret-key" not in output["list-data-dir"]
    seen = dict(line.split("=", 1) for line in str(steps["env"]["output"]).splitlines() if "=" in line)
    # Nothing of the worker's: the minimal three, and OPSC_TARGET, the step's own asset (fan-out, DESIGN §14).
    assert set(seen) == {"PATH", "HOME", "LANG", "OPSC_TARGET"}, output["env"]
    assert seen["OPSC_TARGET"] == steps["env"]["target"]
    with sqlite3.connect(box.database) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        dump = "\n".join(repr(row) for t in tables for row in conn.execute(f'SELECT * FROM "{t}"'))
    on_disk = b"".join(p.read_bytes() for p in box.data.glob("opsc.db*"))
    assert WRITTEN.encode() not in on_disk, "the step wrote into the database file"
    box.worker.terminate()
    box.worker.wait(timeout=30)
    logs = box.log.read_text(errors="replace")
    for secret in (key, session_key, *box.canaries):
        for where, text in {"step output": "\n".join(output.values()), "tables": dump, "worker log": logs}.items():
            assert secret not in text, f"{secret[:14]}… reached the {where}"
