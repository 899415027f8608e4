"""``opsconductor windows``: set the rules from a file, list them, a refused submit names the next opening, and an
override asked by one admin and confirmed by another; refusals exit with the contract's codes, never a traceback."""

from __future__ import annotations

from datetime import timedelta

from core import Role, principal, set_member
from db.clock import utcnow
from tests.cli.support import Cli, PlanFile, ok_json

ADMIN = ("--as", "admin", "--tenant", "demo")
MODIFY_PLAN = (
    "name: change\nsteps:\n"
    "  - {name: s, action: shell, target: localhost, action_class: modify, params: {command: [echo, hi]}}\n"
)


def test_windows_set_list_and_a_refused_submit(db: str, cli: Cli, plan_file: PlanFile) -> None:
    """A refuse-mode blackout set from YAML: list shows it closed; a modify submit exits 3 naming the opening."""
    until = (utcnow() + timedelta(hours=1)).replace(microsecond=0)
    rules = plan_file(
        "mode: refuse\n"
        f"blackouts:\n  - {{from: '{(utcnow() - timedelta(minutes=1)).isoformat()}', to: '{until.isoformat()}'}}\n"
        "windows:\n  - {days: [mon..sun], start: '00:00', end: '24:00', tz: Europe/Paris}\n"
    )
    assert cli("windows", "set", rules, *ADMIN).exit_code == 0
    listed = cli("windows", "list", "--as", "alice", "--tenant", "demo")
    assert listed.exit_code == 0 and "closed now; next opening " + until.strftime("%Y-%m-%dT%H:%M:%SZ") in listed.stdout
    assert "mon,tue,wed,thu,fri,sat,sun 00:00-24:00 Europe/Paris" in listed.stdout
    shown = ok_json(cli("windows", "list", *ADMIN, "--json"))
    assert shown["mode"] == "refuse" and not shown["open_now"] and shown["overrides"] == []
    refused = cli("submit", plan_file(MODIFY_PLAN), "--tenant", "demo", "--as", "alice")
    assert refused.exit_code == 3 and "[change_window]" in refused.stderr
    assert "next change window opens at " + until.strftime("%Y-%m-%dT%H:%M:%SZ") in refused.stderr


def test_windows_errors_and_the_override(db: str, cli: Cli, plan_file: PlanFile) -> None:
    """A bad rule exits 2 with its path; an operator may not set rules (3); an override takes two admins."""
    bad = cli("windows", "set", plan_file("windows:\n  - {days: [mon], start: 22:00, end: '04:00', tz: UTC}\n"), *ADMIN)
    assert (
        bad.exit_code == 2 and "error: windows[0].start: must be HH:MM" in bad.stderr and "Traceback" not in bad.output
    )
    operator = cli("windows", "set", plan_file("windows: []\n"), "--as", "alice", "--tenant", "demo")
    assert operator.exit_code == 3
    missing = cli("windows", "set", "/nonexistent/rules.yaml", *ADMIN)
    assert missing.exit_code == 2 and "cannot read" in missing.stderr
    set_member(principal("admin", "demo"), "carol", Role.ADMIN)
    submitted = ok_json(cli("submit", plan_file(MODIFY_PLAN), "--tenant", "demo", "--as", "alice", "--json"))
    execution_id = submitted["execution_id"]
    asked = cli("windows", "override", execution_id[:8], "--reason", "incident 7", *ADMIN)
    assert asked.exit_code == 0 and "a second admin must confirm" in asked.stdout
    again = cli("windows", "override", execution_id, "--reason", "me again", *ADMIN)
    assert again.exit_code == 3 and "second admin" in again.stderr
    given = ok_json(
        cli("windows", "override", execution_id, "--reason", "ok", "--as", "carol", "--tenant", "demo", "--json")
    )
    assert given["active"] and given["requested_by"] == "admin" and given["confirmed_by"] == "carol"
    own = cli("windows", "override", execution_id, "--reason", "mine", "--as", "alice", "--tenant", "demo")
    assert own.exit_code == 3  # alice requested it, and is no admin
