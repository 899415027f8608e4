"""The CLI and input that costs or lies (issue 13 items 4 and 6): bombs and deep nesting exit 2 at once."""

from __future__ import annotations

import json
import time

from tests.cli.support import Cli, PlanFile, submit_json
from tests.factories import alias_bomb


def test_an_alias_bomb_is_refused_in_under_a_second_with_exit_2(sqlite_db: str, cli: Cli, plan_file: PlanFile) -> None:
    """A ~500-byte YAML alias bomb: exit 2 (invalid input) in under a second, naming the anchor's path."""
    bomb = plan_file(alias_bomb())
    started = time.process_time()  # CPU time of this process (the CLI runs in it): load-independent
    result = cli("submit", bomb, "--as", "alice", "--tenant", "demo")
    elapsed = time.process_time() - started
    assert result.exit_code == 2, result.stderr
    assert elapsed < 1.0, f"{elapsed:.2f}s"
    assert "anchors" in result.stderr and "a0" in result.stderr


def test_deep_nesting_exits_2_not_1(sqlite_db: str, cli: Cli, plan_file: PlanFile) -> None:
    """A plan nested thousands of levels deep (YAML flow, block, JSON) is invalid input, not a RecursionError."""
    for text in ("[" * 5000 + "]" * 5000, "".join(" " * i + "a:\n" for i in range(500)), '{"a":' * 5000):
        result = cli("submit", plan_file(text), "--as", "alice", "--tenant", "demo")
        assert result.exit_code == 2, result.stderr
        assert "levels deep" in result.stderr


ESCAPING_PLAN = r"""
name: "rotate\e[2J\e[1;1Hstatus completed"
steps:
  - name: "s\e]0;owned\a"
    action: shell
    target: localhost
    params: {command: "true"}
"""


def test_show_never_prints_a_terminal_escape_from_a_name(sqlite_db: str, cli: Cli, plan_file: PlanFile) -> None:
    """A plan and step named with ESC sequences: `show` and `list` print them escaped (no ESC byte), JSON too."""
    execution_id = submit_json(cli, plan_file(ESCAPING_PLAN))["execution_id"]
    shown = cli("show", execution_id, "--as", "alice")
    listed = cli("list", "--as", "alice")
    for result in (shown, listed):
        assert result.exit_code == 0, result.stderr
        assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    assert "rotate\\x1b[2J\\x1b[1;1Hstatus completed" in shown.stdout
    assert "s\\x1b]0;owned\\x07" in shown.stdout
    as_json = cli("show", execution_id, "--as", "alice", "--json")
    assert "\x1b" not in as_json.stdout
    assert json.loads(as_json.stdout)["steps"][0]["name"] == "s\x1b]0;owned\x07"  # the data itself is intact


def test_an_error_quoting_the_input_prints_no_escape(sqlite_db: str, cli: Cli, plan_file: PlanFile) -> None:
    """An error whose path comes from the plan (an unknown key) shows the key's control characters escaped."""
    text = ESCAPING_PLAN + '"own\\e[2Jed": 1\n'
    result = cli("submit", plan_file(text), "--as", "alice", "--tenant", "demo")
    assert result.exit_code == 2
    assert "\x1b" not in result.stderr and "own\\x1b[2Jed: unknown field" in result.stderr
