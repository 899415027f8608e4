"""The CLI as a program: usage errors, internal errors, ``init``/``up``, import hygiene, the real console script."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import core
from tests.cli.support import MODIFY_PLAN, Cli, PlanFile, ok_json

REPO = Path(__file__).resolve().parents[2]


# usage and internal errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["list", "--as", "alice", "--status", "bogus"],
        ["submit", "--as", "alice"],  # PLAN missing
        ["tenant", "mode", "demo", "sideways", "--as", "admin"],
        ["no-such-command"],
    ],
)
def test_usage_errors_exit_2(sqlite_db: str, cli: Cli, args: list[str]) -> None:
    """typer's own usage errors (missing option, bad choice, unknown command) exit 2."""
    result = cli(*args)
    assert result.exit_code == 2
    assert "internal error" not in result.output


def test_internal_error_is_one_line_with_a_reference_and_no_traceback(
    sqlite_db: str, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A non-CoreError exits 1 with 'internal error (ref XXXXXXXX): Type', no traceback, no exception message."""

    def broken(*_args: object, **_kwargs: object) -> None:
        raise KeyError("s3cr3t-in-a-message")

    monkeypatch.setattr(core, "list_executions", broken)  # the CLI looks it up on core at call time
    result = cli("list", "--as", "alice")
    assert result.exit_code == 1
    assert re.fullmatch(r"internal error \(ref [0-9a-f]{8}\): KeyError; .*\n", result.stderr)
    assert "Traceback" not in result.output
    assert "s3cr3t" not in result.output


def test_debug_flag_logs_the_traceback_of_an_internal_error(
    sqlite_db: str, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With --debug the same failure also logs the traceback (exit still 1)."""

    def broken(*_args: object, **_kwargs: object) -> None:
        raise ZeroDivisionError

    monkeypatch.setattr(core, "list_executions", broken)  # the CLI looks it up on core at call time
    result = cli("--debug", "list", "--as", "alice")
    assert result.exit_code == 1
    assert "internal error (ref " in result.stderr
    assert "Traceback" in result.stderr and "ZeroDivisionError" in result.stderr


def test_importing_the_cli_touches_no_database(tmp_path: Path) -> None:
    """``import ui.cli`` does no work: the configured SQLite file is not created."""
    database = tmp_path / "untouched.db"
    env = {**os.environ, "OPSC_DATABASE_URL": f"sqlite:///{database}"}
    code = "import ui.cli, ui.cli.admin; print(ui.cli.app.info.name)"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "opsconductor"
    assert not database.exists()


# init and up ----------------------------------------------------------------------------------------


def test_init_is_idempotent(sqlite_db: str, cli: Cli) -> None:
    """init --demo on an already seeded database adds nothing and exits 0."""
    result = cli("init", "--demo")
    assert result.exit_code == 0, result.stderr
    assert "0 timeout policies added" in result.stdout
    assert "created" not in result.stdout


def test_up_initialises_then_execs_streamlit_with_an_argv_list(
    sqlite_db: str, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """up runs initialize, then execs ``streamlit run <repo>/console_app.py`` (the app with the session cookie's
    routes) on the given port, headless."""
    calls: list[tuple[str, list[str]]] = []
    inits: list[bool] = []
    monkeypatch.setattr(os, "execvp", lambda file, argv: calls.append((file, list(argv))))
    real_initialize = core.initialize
    monkeypatch.setattr(core, "initialize", lambda *, demo: inits.append(demo) or real_initialize(demo=demo))
    result = cli("up", "--port", "8765", "--demo")
    assert result.exit_code == 0, result.stderr
    assert inits == [True]
    [(file, argv)] = calls
    assert file == argv[0] == sys.executable
    assert argv[1:5] == ["-m", "streamlit", "run", str(REPO / "console_app.py")]
    assert argv[5:] == [
        "--server.port",
        "8765",
        "--server.address",
        "127.0.0.1",  # this host only unless OPSC_CONSOLE_ADDR says otherwise
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--client.toolbarMode",
        "minimal",
        "--client.showErrorDetails",
        "none",
    ]


def test_up_refuses_a_port_out_of_range(cli: Cli) -> None:
    """A port above 65535 is a usage error (2)."""
    assert cli("up", "--port", "70000").exit_code == 2


# the real console script ----------------------------------------------------------------------------


def console_script() -> list[str]:
    """The installed ``opsconductor`` script next to this interpreter, else ``python -m ui.cli``."""
    script = Path(sys.executable).parent / "opsconductor"
    return [str(script)] if script.exists() else [sys.executable, "-m", "ui.cli"]


def test_console_script_end_to_end(tmp_path: Path, plan_file: PlanFile) -> None:
    """In real processes on a fresh SQLite file: init --demo, alice submits, her approval is 3, bob's queues it."""
    env = {**os.environ, "OPSC_DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.db'}"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*console_script(), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False
        )

    init = run("init", "--demo")
    assert init.returncode == 0, init.stderr
    assert "created tenant demo" in init.stdout
    submitted = run("submit", plan_file(MODIFY_PLAN), "--tenant", "demo", "--as", "alice", "--json")
    assert submitted.returncode == 0, submitted.stderr
    execution = json.loads(submitted.stdout)
    assert (execution["status"], execution["created"]) == ("pending_approval", True)
    own = run("approve", execution["execution_id"], "--as", "alice")
    assert own.returncode == 3
    assert own.stderr.startswith("error: ") and "Traceback" not in own.stderr
    approved = run("approve", execution["execution_id"], "--as", "bob", "--json")
    assert approved.returncode == 0, approved.stderr
    assert json.loads(approved.stdout)["status"] == "queued"
    missing = run("show", "f" * 32, "--as", "bob")
    assert missing.returncode == 4


def test_ok_json_helper_rejects_failures(cli: Cli, sqlite_db: str) -> None:
    """Guard for the helpers: a failing command does not pass as JSON."""
    with pytest.raises(AssertionError):
        ok_json(cli("list", "--as", "nobody", "--json"))


# start-up cost (issue 14: fast start) ----------------------------------------------------------------

HEAVY = ("sqlalchemy", "sqlmodel", "dramatiq", "redis", "httpx", "asyncssh", "streamlit", "prometheus_client", "rich")


def modules_after(args: list[str], env: dict[str, str]) -> set[str]:
    """The HEAVY packages a real ``opsconductor ARGS`` process has imported by the time it exits."""
    code = (
        "import atexit, json, sys\n"
        f"atexit.register(lambda: print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]), file=sys.__stderr__))\n"
        f"sys.argv = ['opsconductor', *{args!r}]\n"
        "from ui.cli import main\n"
        "main()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


def test_help_imports_no_heavy_package(tmp_path: Path) -> None:
    """``opsconductor --help`` loads neither the database layer, the broker, the clients nor rich.

    (A subcommand's ``--help`` runs the root callback first, which installs log masking before any command can
    log; since issue 15 that loads no database layer either.)
    """
    env = {**os.environ, "OPSC_DATABASE_URL": f"sqlite:///{tmp_path / 'untouched.db'}"}
    assert modules_after(["--help"], env) == set()
    assert not (tmp_path / "untouched.db").exists()


def test_show_loads_no_heavy_package(tmp_path: Path, plan_file: PlanFile) -> None:
    """``show`` reads over a plain DB-API connection (issue 15): not even the database layer (SQLAlchemy,
    SQLModel), nor Prometheus, the broker, the HTTP or SSH clients, the console or rich."""
    env = {**os.environ, "OPSC_DATABASE_URL": f"sqlite:///{tmp_path / 'show.db'}", "OPSC_REDIS_URL": ""}
    run = [*console_script(), "init", "--demo"]
    assert subprocess.run(run, cwd=tmp_path, env=env, capture_output=True, check=False).returncode == 0
    submit = [*console_script(), "submit", plan_file(MODIFY_PLAN), "--as", "alice", "--json"]
    done = subprocess.run(submit, cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    loaded = modules_after(["show", json.loads(done.stdout)["execution_id"], "--as", "alice"], env)
    assert loaded == set()


def test_worker_runs_dramatiq_in_this_process_with_the_actors_already_loaded(tmp_path: Path) -> None:
    """``opsconductor worker`` on Redis calls Dramatiq's supervisor in-process (no exec of a fresh interpreter),
    after importing the actors, so the forked worker processes start with them; Dramatiq's exit code is ours."""
    code = (
        "import json, sys\n"
        "import dramatiq.cli\n"
        "def fake_main(args):\n"
        "    print(json.dumps({'actors': 'jobs.actors' in sys.modules, 'broker': args.broker,\n"
        "                      'processes': args.processes, 'threads': args.threads}))\n"
        "    return 7\n"
        "dramatiq.cli.main = fake_main\n"
        "sys.argv = ['opsconductor', 'worker', '--processes', '3', '--threads', '2']\n"
        "from ui.cli import main\n"
        "main()\n"
    )
    env = {
        **os.environ,
        "OPSC_DATABASE_URL": f"sqlite:///{tmp_path / 'w.db'}",
        "OPSC_REDIS_URL": "redis://127.0.0.1:1/0",  # never connected to: the fake supervisor starts nothing
    }
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 7, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {
        "actors": True,
        "broker": "jobs.actors",
        "processes": 3,
        "threads": 2,
    }
