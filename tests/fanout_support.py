"""What the fan-out tests share (tests/integration/test_fanout*.py): a fleet of local assets tagged ``fan``, a step
script declared read-only for the tenant, and what its log says about the targets that ran."""

from __future__ import annotations

from pathlib import Path

import pytest

from core import add_asset, principal
from core.usecases.read_only import add_read_only_command
from db.enums import Connection
from db.settings import get_settings

NAMES = [f"fan-{n}" for n in range(1, 7)]


def make_fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str) -> Path:
    """Six demo assets tagged ``fan`` (and ``fan-odd``, tagged ``lab`` only), ``script`` as an executable file
    declared read-only (its steps are ``read``: retried), quick retries and watcher, short leases. Returns the
    script's path; its log is ``log`` beside it. The caller clears the settings cache afterwards."""
    monkeypatch.setenv("OPSC_RETRY_BACKOFF_S", "0.01")
    monkeypatch.setenv("OPSC_WATCH_INTERVAL_S", "0.05")
    monkeypatch.setenv("OPSC_HEARTBEAT_S", "0.2")
    monkeypatch.setenv("OPSC_LEASE_TTL_S", "1")
    get_settings.cache_clear()
    admin = principal("admin", "demo")
    for name in NAMES:
        add_asset(admin, name, Connection.LOCAL, tags=["fan"])
    add_asset(admin, "fan-odd", Connection.LOCAL, tags=["lab"])
    path = tmp_path / "fan.sh"
    path.write_text(script)
    path.chmod(0o755)
    tmp_path.chmod(0o777)  # the runner identity writes the log beside it
    add_read_only_command(admin, [str(path)])
    return path


def starts(script: Path) -> list[str]:
    """The targets whose process started, in the order they did (one entry per attempt)."""
    log = script.parent / "log"
    lines = log.read_text().splitlines() if log.exists() else []
    return [line.split()[1] for line in lines if line.startswith("start")]


def overlap(script: Path) -> int:
    """The most targets running at one moment, from the start and end lines their processes wrote."""
    marks: list[tuple[float, int]] = []
    for line in (script.parent / "log").read_text().splitlines():
        kind, _target, at = line.split()
        marks.append((float(at), 1 if kind == "start" else -1))
    running = peak = 0
    for _at, delta in sorted(marks):  # at one instant an end (-1) sorts before a start
        running += delta
        peak = max(peak, running)
    return peak
