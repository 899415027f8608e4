"""What the CLI tests share: plans, and helpers that read the CLI's JSON output."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from typer.testing import Result

READ_PLAN = """
name: disk-usage
steps:
  - name: df
    action: shell
    target: localhost
    params: {command: "df -h"}
"""

MODIFY_PLAN = """
name: rotate-logs
description: Rotate the demo logs
steps:
  - name: check
    action: shell
    target: localhost
    params: {command: "ls /tmp"}
  - name: rotate
    action: shell
    target: localhost
    action_class: modify
    params: {command: "true"}
"""

Cli = Callable[..., Result]
PlanFile = Callable[[str], str]


def ok_json(result: Result) -> dict[str, Any]:
    """The JSON object a successful command printed (fails the test with stderr otherwise)."""
    assert result.exit_code == 0, f"exit {result.exit_code}: {result.stderr}"
    data = json.loads(result.stdout)
    assert isinstance(data, dict)
    return data


def submit_json(cli: Cli, path: str, user: str = "alice", *extra: str) -> dict[str, Any]:
    """Submit ``path`` as ``user`` with --json and return the printed execution."""
    return ok_json(cli("submit", path, "--as", user, "--json", *extra))


def execution_ids(cli: Cli, user: str = "alice", *extra: str) -> list[str]:
    """The ids ``list --json`` shows to ``user``."""
    return [e["execution_id"] for e in ok_json(cli("list", "--as", user, "--json", *extra))["executions"]]


def status_of(cli: Cli, execution_id: str, user: str = "alice") -> str:
    """The execution's status as ``show --json`` reports it."""
    return str(ok_json(cli("show", execution_id, "--as", user, "--json"))["status"])
