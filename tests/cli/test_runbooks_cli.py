"""``opsconductor runbooks`` (issue 13 item 5): owned and versioned, levels derived, others refused with exit 3."""

from __future__ import annotations

from tests.cli.support import Cli, PlanFile, ok_json

RM = "name: cleanup\nsteps:\n  - {name: wipe, action: shell, target: localhost, params: {command: [rm, -rf, /tmp/x]}}\n"
NOOP = "name: n\nsteps:\n  - {name: a, action: noop, target: localhost}\n"


def test_save_list_versions_and_delete_by_owner_and_admin(sqlite_db: str, cli: Cli, plan_file: PlanFile) -> None:
    saved = cli("runbooks", "save", "cleanup", plan_file(RM), "--description", "read, no approval", "--as", "alice")
    assert saved.exit_code == 0, saved.stderr
    assert "version 1, level 1 (modify), owner alice" in saved.stdout  # derived, not the description's claim
    listed = {r["name"]: r for r in ok_json(cli("runbooks", "list", "--as", "dave", "--json"))["runbooks"]}
    assert (listed["cleanup"]["approval_level"], listed["cleanup"]["owner"]) == (1, "alice")
    assert cli("runbooks", "save", "cleanup", plan_file(NOOP), "--as", "admin", "--tenant", "demo").exit_code == 0
    versions = ok_json(cli("runbooks", "versions", "cleanup", "--as", "alice", "--json"))["versions"]
    assert [(v["version"], v["created_by"]) for v in versions] == [(2, "admin"), (1, "alice")]
    assert cli("runbooks", "delete", "cleanup", "--as", "alice").exit_code == 0
    assert "cleanup" not in cli("runbooks", "list", "--as", "alice").stdout


def test_changing_someone_elses_runbook_exits_3(sqlite_db: str, cli: Cli, plan_file: PlanFile) -> None:
    refused = cli("runbooks", "save", "Failing check", plan_file(RM), "--as", "alice")  # the shared demo library
    assert refused.exit_code == 3
    assert "only its owner or a tenant admin" in refused.stderr + refused.stdout
    assert cli("runbooks", "delete", "Disk usage", "--as", "alice").exit_code == 3  # published: admins only
    assert cli("runbooks", "versions", "never-was", "--as", "alice").exit_code == 4
    assert cli("runbooks", "save", "bad/name", plan_file(NOOP), "--as", "alice").exit_code == 2
