"""docker-compose.yml and deploy/Dockerfile cannot run here (no Docker engine), so they are checked for
what can go stale: every command the services run is a real `opsconductor` command with real options,
every OPSC_* variable is a real setting, and every path the Dockerfile copies exists."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from db.settings import Settings
from ui.cli import app

ROOT = Path(__file__).resolve().parents[2]


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def test_the_stack_has_postgres_redis_a_console_and_scalable_workers() -> None:
    services = _compose()["services"]
    assert set(services) == {"postgres", "redis", "console", "worker"}
    assert services["worker"]["deploy"]["replicas"] >= 1
    assert services["console"]["depends_on"].keys() == {"postgres", "redis"}
    assert services["worker"]["depends_on"]["console"]["condition"] == "service_healthy"


def test_every_service_command_is_a_real_cli_command() -> None:
    runner = CliRunner()
    for name in ("console", "worker"):
        command = _compose()["services"][name]["command"]
        result = runner.invoke(app, [*command, "--help"])
        assert result.exit_code == 0, f"{name}: {command}: {result.output}"
        for option in (arg for arg in command if arg.startswith("--")):
            assert option in result.output, f"{name}: unknown option {option}"


def test_every_opsc_variable_is_a_setting() -> None:
    env = _compose()["x-opsc-env"]
    fields = set(Settings.model_fields)
    for variable in env:
        assert variable.startswith("OPSC_")
        assert variable.removeprefix("OPSC_").lower() in fields, f"{variable} is not a setting"
    assert {"OPSC_DATABASE_URL", "OPSC_REDIS_URL", "OPSC_SECRET_KEY"} <= set(env)


def test_the_dockerfile_copies_only_what_exists() -> None:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    for line in re.findall(r"^COPY (.+)$", dockerfile, flags=re.MULTILINE):
        *sources, _dest = line.split()
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: missing"


def test_the_containers_listen_on_every_interface_explicitly() -> None:
    """The console and the metrics endpoint default to 127.0.0.1; a container must say 0.0.0.0 itself."""
    env = _compose()["x-opsc-env"]
    assert (env["OPSC_CONSOLE_ADDR"], env["OPSC_METRICS_ADDR"]) == ("0.0.0.0", "0.0.0.0")  # noqa: S104
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert "OPSC_CONSOLE_ADDR=0.0.0.0" in dockerfile and "OPSC_METRICS_ADDR=0.0.0.0" in dockerfile
