"""``opsconductor commands`` (read-only prefixes), and the asset and secret options of DESIGN §13."""

from __future__ import annotations

from core import list_assets, list_secrets, principal, submit
from tests.cli.support import Cli, ok_json

SHELL_PLAN = (
    "name: p\nsteps:\n  - {name: s, action: shell, target: localhost, params: {command: [systemctl, status]}}\n"
)


def test_commands_allow_list_remove(sqlite_db: str, cli: Cli) -> None:
    """Words like `-h` after `--` are the prefix's; the step is read while declared, modify after removal."""
    added = cli("commands", "allow", "--as", "admin", "--tenant", "demo", "--", "systemctl", "status")
    assert added.exit_code == 0, added.stderr
    assert "read-only: systemctl status" in added.stdout
    flagged = cli("commands", "allow", "--as", "admin", "--tenant", "demo", "--", "ls", "-la")
    assert flagged.exit_code == 0, flagged.stderr
    listed = ok_json(cli("commands", "list", "--as", "alice", "--json"))
    assert [c["argv"] for c in listed["commands"]][-2:] == [["systemctl", "status"], ["ls", "-la"]]
    alice = principal("alice", "demo")
    assert submit(alice, SHELL_PLAN, background=True).execution.action_class == "read"
    command_id = listed["commands"][-2]["id"]
    removed = cli("commands", "remove", command_id, "--as", "admin", "--tenant", "demo")
    assert removed.exit_code == 0 and "no longer read-only: systemctl status" in removed.stdout
    assert submit(alice, SHELL_PLAN.replace("p\n", "q\n", 1), background=True).execution.action_class == "modify"
    assert "systemctl" not in cli("commands", "list", "--as", "alice").stdout


def test_commands_errors_map_to_exit_codes(sqlite_db: str, cli: Cli) -> None:
    assert cli("commands", "allow", "--as", "alice", "--", "rm").exit_code == 3
    assert cli("commands", "allow", "--as", "admin", "--tenant", "demo", "--", "df").exit_code == 5  # already declared
    assert cli("commands", "remove", "nope", "--as", "admin", "--tenant", "demo").exit_code == 4
    assert cli("commands", "allow", "--as", "admin", "--tenant", "demo").exit_code == 2


def test_assets_add_takes_a_known_host_key_or_the_lab_switch(sqlite_db: str, cli: Cli) -> None:
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
    checked = cli("assets", "add", "web-01", "--connection", "ssh", "--host", "h", "--known-host-key", key,
                  "--as", "admin", "--tenant", "demo")  # fmt: skip
    assert checked.exit_code == 0, checked.stderr
    lab = cli(
        "assets",
        "add",
        "lab-01",
        "--connection",
        "ssh",
        "--host",
        "h",
        "--skip-host-key",
        "--as",
        "admin",
        "--tenant",
        "demo",
    )
    assert lab.exit_code == 0 and "will not check the host key" in lab.stderr
    assets = {a.name: a for a in list_assets(principal("admin", "demo"))}
    assert (assets["web-01"].known_host_key, assets["web-01"].skip_host_key) == (key, False)
    assert (assets["lab-01"].has_known_host_key, assets["lab-01"].skip_host_key) == (False, True)
    refused = cli(
        "assets", "add", "box", "--connection", "local", "--skip-host-key", "--as", "admin", "--tenant", "demo"
    )
    assert refused.exit_code == 2


def test_secrets_set_with_assets_and_limit(sqlite_db: str, cli: Cli) -> None:
    made = cli(
        "secrets",
        "set",
        "db_pw",
        "--asset",
        "localhost",
        "--as",
        "admin",
        "--tenant",
        "demo",
        input="v4lue-from-stdin\n",
    )
    assert made.exit_code == 0, made.stderr
    assert "only on localhost" in made.stdout
    assert cli("secrets", "list", "--as", "admin", "--tenant", "demo").stdout.count("localhost") == 1
    assert (
        cli("secrets", "limit", "db_pw", "--as", "admin", "--tenant", "demo").exit_code == 2
    )  # neither --asset nor --any
    lifted = cli("secrets", "limit", "db_pw", "--any", "--as", "admin", "--tenant", "demo")
    assert lifted.exit_code == 0 and "any asset" in lifted.stdout
    info = next(s for s in list_secrets(principal("admin", "demo")) if s.name == "db_pw")
    assert info.allowed_assets is None
    assert cli("secrets", "limit", "db_pw", "--asset", "nowhere", "--as", "admin", "--tenant", "demo").exit_code == 2
