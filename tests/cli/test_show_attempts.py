"""``show --json`` lists each step's output per attempt (issue 16 items 1 and 5), with the attempt count the
console and the text table show; read directly (no ORM) and through core alike."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import core
from db.settings import get_settings
from tests.cli.support import Cli, ok_json
from tests.cli.test_show_direct import show
from tests.engine_support import approved, drive, python_plan


def _flaky(tmp_path: Path) -> str:
    """A read step that fails its first attempt ("first" on stdout, "oops" on stderr) and passes its second."""
    script = tmp_path / "flaky.sh"
    script.write_text(
        f'if [ -e "{tmp_path}/ran" ]; then echo second; exit 0; fi\n'
        f'touch "{tmp_path}/ran"; echo first; echo oops >&2; exit 1\n'
    )
    core.add_read_only_command(core.principal("admin", "demo"), ["sh", str(script)])
    plan = f"name: flaky\nsteps:\n  - {{name: a, action: shell, target: localhost, params: {{command: [sh, '{script}']}}}}\n"
    return core.submit(core.principal("alice", "demo"), plan, background=True).execution.execution_id


@pytest.fixture
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSC_RETRY_BACKOFF_S", "0.05")
    get_settings.cache_clear()


def test_show_json_lists_each_attempts_output_and_one_attempt_count(
    db: str, cli: Cli, tmp_path: Path, quick_retries: None
) -> None:
    execution_id = _flaky(tmp_path)
    drive(execution_id)
    data = ok_json(cli("show", execution_id, "--as", "alice", "--json"))
    step = data["steps"][0]
    assert (step["status"], step["attempts"]) == ("completed", 2)
    assert step["outputs"] == [
        {"run": 1, "attempt": 1, "output": "first\noops\n"},
        {"run": 1, "attempt": 2, "output": "second\n"},
    ]
    assert step["output"] == "second\n"  # the step's own output stays its latest attempt's
    console = core.list_attempt_outputs(core.principal("alice", "demo"), execution_id)  # what the console shows
    assert [(o.attempt, o.output) for o in console] == [(o["attempt"], o["output"]) for o in step["outputs"]]
    text = cli("show", execution_id[:8], "--as", "alice")
    assert text.exit_code == 0, text.stderr
    row = next(line for line in text.stdout.splitlines() if line.startswith("0 "))
    assert row.split()[5:7] == ["completed", "2"]  # STATUS, ATTEMPTS: the same count


def test_show_json_lists_an_attempt_that_printed_nothing(db: str, cli: Cli) -> None:
    execution_id = approved(python_plan("import sys\nsys.exit(4)\n"))
    drive(execution_id)
    step = ok_json(cli("show", execution_id, "--as", "alice", "--json"))["steps"][0]
    assert (step["status"], step["attempts"]) == ("failed", 1)
    assert step["outputs"] == [{"run": 1, "attempt": 1, "output": ""}]


def test_show_json_prints_the_same_attempts_directly_and_through_the_orm(
    sqlite_db: str, tmp_path: Path, quick_retries: None
) -> None:
    execution_id = _flaky(tmp_path)
    drive(execution_id)
    direct, loaded = show([execution_id, "--as", "alice", "--json"], sqlite_db)
    through_orm, _ = show([execution_id, "--as", "alice", "--json"], sqlite_db, through_orm=True)
    assert loaded == [] and direct == through_orm
    assert [o["output"] for o in json.loads(direct)["steps"][0]["outputs"]] == ["first\noops\n", "second\n"]
