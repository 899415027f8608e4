"""Third-party actions (DESIGN §8): a package that declares an ``opsconductor.actions`` entry point is
loaded by a fresh ``opsconductor`` process and its action validates and runs like a built-in; a broken
plugin is skipped with a warning, and the rest still works."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]

PLUGIN = """
from pydantic import BaseModel, ConfigDict

from core.actions.context import ActionResult, StepContext
from core.actions.registry import ActionType
from db.enums import ActionClass


class GreetParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    who: str


class Greet(ActionType):
    name = "greet"
    params_model = GreetParams
    default_class = ActionClass.READ
    idempotent = True
    default_estimate_s = 0.1

    def run(self, ctx: StepContext) -> ActionResult:
        ctx.output.write(f"hello, {ctx.params['who']}\\n")
        return ActionResult(ok=True)
"""


def _install(site: Path, name: str, entry: str) -> None:
    """A minimal installed distribution: its metadata with one entry point (what pip would leave)."""
    info = site / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[opsconductor.actions]\n{entry}\n")


def test_a_plugin_action_is_loaded_validated_and_run(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "opsc_greet_plugin.py").write_text(PLUGIN)
    _install(site, "opsc_greet_plugin", "greet = opsc_greet_plugin:Greet")
    _install(site, "opsc_broken_plugin", "broken = opsc_missing_module:Nothing")
    env = {k: v for k, v in os.environ.items() if k != "OPSC_REDIS_URL"}
    env |= {"OPSC_DATABASE_URL": f"sqlite:///{tmp_path / 'opsc.db'}", "PYTHONPATH": f"{site}:{ROOT}"}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ui.cli", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
        )

    assert cli("init", "--demo").returncode == 0
    plan = tmp_path / "greet.yaml"
    plan.write_text("name: hi\nsteps:\n  - {name: hi, action: greet, target: localhost, params: {who: operators}}\n")
    done = cli("submit", str(plan), "--tenant", "demo", "--as", "alice", "--json")
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert (shown["status"], shown["approval_level"]) == ("completed", 0)
    assert shown["steps"][0]["output"].strip() == "hello, operators"
    assert "action plugin broken could not be loaded" in done.stderr

    bad = tmp_path / "bad.yaml"
    bad.write_text("name: hi\nsteps:\n  - {name: hi, action: greet, target: localhost, params: {whom: x}}\n")
    refused = cli("submit", str(bad), "--tenant", "demo", "--as", "alice")
    assert refused.returncode == 2 and "steps[0].params" in refused.stderr
