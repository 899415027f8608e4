"""The CLI and input that costs or lies (issue 13 items 4 and 6): bombs and deep nesting exit 2 at once."""

from __future__ import annotations

import time

from tests.cli.support import Cli, PlanFile
from tests.factories import alias_bomb


def test_an_alias_bomb_is_refused_in_under_a_second_with_exit_2(sqlite_db: str, cli: Cli, plan_file: PlanFile) -> None:
    """A ~500-byte YAML alias bomb: exit 2 (invalid input) in under a second, naming the anchor's path."""
    bomb = plan_file(alias_bomb())
    started = time.monotonic()
    result = cli("submit", bomb, "--as", "alice", "--tenant", "demo")
    elapsed = time.monotonic() - started
    assert result.exit_code == 2, result.stderr
    assert elapsed < 1.0, f"{elapsed:.2f}s"
    assert "anchors" in result.stderr and "a0" in result.stderr


def test_deep_nesting_exits_2_not_1(sqlite_db: str, cli: Cli, plan_file: PlanFile) -> None:
    """A plan nested thousands of levels deep (YAML flow, block, JSON) is invalid input, not a RecursionError."""
    for text in ("[" * 5000 + "]" * 5000, "".join(" " * i + "a:\n" for i in range(500)), '{"a":' * 5000):
        result = cli("submit", plan_file(text), "--as", "alice", "--tenant", "demo")
        assert result.exit_code == 2, result.stderr
        assert "levels deep" in result.stderr
