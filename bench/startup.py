"""What starting costs, in CPU seconds (user + sys), which the machine's load changes far less than wall time.

Measures, median of N runs each:
  help     ``opsconductor --help``
  show     ``opsconductor show ID --as alice`` on a SQLite database with the demo data
  actors   ``python -c "import jobs.actors"`` (what a Dramatiq worker process imports at boot)
  python, sqlmodel  baselines measured in the same run: ``python -c pass`` and ``python -c "import sqlmodel"``
  worker   ``opsconductor worker --processes 1 --threads 1`` on Redis, until its process logs
           "worker … started" (its heartbeat row is written just before): the CPU of the whole process tree
           (read from /proc: the supervisor, its worker process and any process already reaped), and the wall time.
A one-shot command's CPU comes from ``os.wait4`` (the child's own rusage). Whether the installed packages have
byte-code (``__pycache__``) matters a lot: ``PYTHONDONTWRITEBYTECODE=1`` with none compiled means every start
compiles every module; the first line says which.

Usage: uv run python bench/startup.py [--runs 5] [--only python,sqlmodel,help,show,actors,worker] [--no-bytecode]
       [--tree PATH]
``--no-bytecode`` points the children's byte-code cache at an empty directory (``PYTHONPYCACHEPREFIX``), so every
module is compiled from source at each start, as on an installation without byte-code. ``--tree`` measures another
checkout of the repository (e.g. the commit before a change) with this same interpreter and packages.
Needs Redis (OPSC_TEST_REDIS_URL or 127.0.0.1:6379) for the worker; it uses its own namespace and deletes it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.scratch_redis import scratch_namespace  # noqa: E402  (after the path: runnable as a script)

REDIS_URL = os.environ.get("OPSC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
CLI = [sys.executable, "-m", "ui.cli"]
TICK = os.sysconf("SC_CLK_TCK")
PLAN = "name: bench-startup\nsteps:\n  - {name: s, action: noop, target: localhost}\n"


def child_cpu(argv: list[str], env: dict[str, str]) -> float:
    """Run ``argv`` to its end; its user + sys CPU seconds. Raises if it fails."""
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv} exited {proc.returncode}: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
    return usage.ru_utime + usage.ru_stime


def tree_cpu(session: int) -> float:
    """CPU seconds of every live process of a session, plus the children each has already reaped."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session:  # fields[3] is the session id (field 6 of proc(5))
            total += sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    return total / TICK


def worker_ready(env: dict[str, str], log: Path) -> tuple[float, float]:
    """Start a worker tree; (CPU s, wall s) until it logs that it started. Stops it after."""
    started = time.perf_counter()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*CLI, "worker", "--processes", "1", "--threads", "1"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        while b" started with " not in log.read_bytes():
            if proc.poll() is not None:
                raise RuntimeError(f"the worker exited {proc.returncode}: {log.read_text()[-2000:]}")
            time.sleep(0.01)
        return tree_cpu(proc.pid), time.perf_counter() - started
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def has_bytecode() -> bool:
    """True when the installed packages were compiled (sqlalchemy stands for them all)."""
    return (Path(sysconfig.get_paths()["purelib"]) / "sqlalchemy" / "__pycache__").is_dir()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", default="python,sqlmodel,help,show,actors,worker")
    parser.add_argument("--no-bytecode", action="store_true")
    parser.add_argument("--tree", type=Path, default=ROOT)
    args = parser.parse_args()
    tree = args.tree.resolve()
    os.chdir(tree)  # every child runs there
    wanted = args.only.split(",")
    bytecode = has_bytecode() and not args.no_bytecode
    print(f"python {sys.version.split()[0]}; tree {tree}; byte-code used: {bytecode}; "
          f"PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', '')!r}")  # fmt: skip
    figures: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "OPSC_DATABASE_URL": f"sqlite:///{tmp}/bench.db",
            "OPSC_SECRET_KEY_FILE": f"{tmp}/secret-key",
            "OPSC_REDIS_URL": "",
            "PYTHONPATH": str(tree),  # --tree: its modules, not the installed (editable) checkout's
        }
        if args.no_bytecode:
            os.makedirs(f"{tmp}/no-pyc")
            env["PYTHONPYCACHEPREFIX"] = f"{tmp}/no-pyc"
            env["PYTHONDONTWRITEBYTECODE"] = "1"
        env.pop("OPSC_TOKEN", None)
        subprocess.run([*CLI, "init", "--demo"], env=env, check=True, capture_output=True)
        plan = Path(tmp) / "plan.yaml"
        plan.write_text(PLAN)
        submitted = subprocess.run(
            [*CLI, "submit", str(plan), "--as", "alice", "--background", "--json"],
            env=env, check=True, capture_output=True, text=True,
        )  # fmt: skip
        execution_id = json.loads(submitted.stdout)["execution_id"]
        one_shot = {
            "help": [*CLI, "--help"],
            "show": [*CLI, "show", execution_id, "--as", "alice"],
            "actors": [sys.executable, "-c", "import jobs.actors"],
            # Baselines of the same run: an empty interpreter, and the database layer alone (what show cannot skip).
            "python": [sys.executable, "-c", "pass"],
            "sqlmodel": [sys.executable, "-c", "import sqlmodel"],
        }
        for name, argv in one_shot.items():
            if name in wanted:
                runs = [child_cpu(argv, env) for _ in range(args.runs)]
                figures[name] = {"cpu_s": round(statistics.median(runs), 3)}
        if "worker" in wanted:
            with scratch_namespace(REDIS_URL, "opsc-bench") as namespace:
                worker_env = {**env, "OPSC_REDIS_URL": REDIS_URL, "OPSC_REDIS_NAMESPACE": namespace}
                pairs = [worker_ready(worker_env, Path(tmp) / f"worker-{i}.log") for i in range(args.runs)]
            figures["worker"] = {
                "cpu_s": round(statistics.median(p[0] for p in pairs), 3),
                "wall_s": round(statistics.median(p[1] for p in pairs), 3),
            }
    for name, values in figures.items():
        print(f"{name:8} " + "  ".join(f"{k} {v:.3f}" for k, v in values.items()))
    print(json.dumps({"runs": args.runs, "bytecode": bytecode, "tree": str(tree), **figures}))


if __name__ == "__main__":
    main()
