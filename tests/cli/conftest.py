"""CLI fixtures: invoke ``opsconductor`` in-process (typer's CliRunner) and write plan files."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from tests.cli.support import Cli, PlanFile
from ui.cli import app


@pytest.fixture
def cli() -> Cli:
    """Run the CLI with ``args`` (and optional stdin ``input``); returns typer's Result (exit code, stdout, stderr)."""
    runner = CliRunner()

    def run(*args: str, input: str | bytes | None = None) -> Result:
        return runner.invoke(app, list(args), input=input)

    return run


@pytest.fixture
def plan_file(tmp_path: Path) -> PlanFile:
    """Write plan text to a fresh file and return its path."""
    counter = iter(range(1000))

    def write(text: str) -> str:
        path = tmp_path / f"plan-{next(counter)}.yaml"
        path.write_text(text)
        return str(path)

    return write
