"""``submit --input NAME=VALUE`` and ``--inputs-file`` (DESIGN §11, §14): values reach the plan before its hash;
bad ones exit 2 with the input's path on stderr, and nothing is submitted."""

from __future__ import annotations

from pathlib import Path

from tests.cli.support import Cli, PlanFile, execution_ids, ok_json, submit_json

PLAN = """
name: restart {{ input:service }}
inputs:
  - {name: service, type: choice, choices: [nginx, cron]}
  - {name: port, type: int, default: 80}
  - {name: note, type: string, default: none}
steps:
  - name: say
    action: shell
    target: localhost
    action_class: modify
    params: {command: [echo, "{{ input:service }}:{{ input:port }}", "{{ input:note }}"]}
"""


def test_input_values_from_flags_and_a_file(db: str, cli: Cli, plan_file: PlanFile, tmp_path: Path) -> None:
    """--input wins over --inputs-file; the values are in the plan (its name) and its hash."""
    path = plan_file(PLAN)
    values = tmp_path / "values.yaml"
    values.write_text("service: cron\nport: 8080\n")
    from_file = submit_json(cli, path, "alice", "--inputs-file", str(values))
    assert from_file["name"] == "restart cron"
    overridden = submit_json(cli, path, "alice", "--inputs-file", str(values), "--input", "service=nginx")
    assert overridden["name"] == "restart nginx"
    flags = submit_json(cli, path, "alice", "--input", "service=nginx", "--input", "port=8080")
    assert flags["execution_id"] == overridden["execution_id"]  # the same values: the same plan, the same hash
    with_note = submit_json(cli, path, "alice", "--input", "service=nginx", "--input", "note=; rm -rf /")
    assert with_note["plan_hash"] != flags["plan_hash"]
    json_values = tmp_path / "values.json"
    json_values.write_text('{"service": "cron", "port": 8080}')
    assert (
        submit_json(cli, path, "alice", "--inputs-file", str(json_values))["execution_id"] == from_file["execution_id"]
    )


def test_bad_inputs_exit_2_with_their_path(db: str, cli: Cli, plan_file: PlanFile, tmp_path: Path) -> None:
    path = plan_file(PLAN)
    cases = [
        ((), "error: inputs.service: required"),
        (("--input", "service=nginx", "--input", "port=eighty"), "error: inputs.port: must be an integer"),
        (("--input", "service=sshd"), "error: inputs.service: must be one of nginx, cron"),
        (("--input", "service=nginx", "--input", "colour=red"), "error: inputs.colour: unknown input"),
        (("--input", "service"), "error: --input: 'service': write NAME=VALUE"),
        (("--input", "service=nginx", "--input", "service=cron"), "error: --input: input 'service' given twice"),
        (("--input", "service=nginx", "--input", "note={{ secret:demo_token }}"), "error: inputs.note: must not"),
        (("--inputs-file", str(tmp_path / "missing.yaml")), "error: --inputs-file: cannot read"),
    ]
    for extra, expected in cases:
        result = cli("submit", path, "--as", "alice", *extra)
        assert result.exit_code == 2, (extra, result.stderr)
        assert expected in result.stderr, (extra, result.stderr)
        assert "Traceback" not in result.stderr
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n")
    result = cli("submit", path, "--as", "alice", "--inputs-file", str(listed))
    assert result.exit_code == 2 and f"error: {listed}: inputs: a mapping of input names" in result.stderr
    two = cli("submit", path, path, "--as", "alice", "--input", "service=nginx")
    assert two.exit_code == 2 and "error: --input: inputs are given for one plan" in two.stderr
    assert execution_ids(cli) == []  # nothing was submitted


def test_show_lists_the_values(db: str, cli: Cli, plan_file: PlanFile) -> None:
    """``show --json`` carries ``inputs`` from the hashed plan; the text form prints them on one line (by name)."""
    submitted = submit_json(cli, plan_file(PLAN), "alice", "--input", "service=cron", "--input", "note=a b")
    shown = ok_json(cli("show", submitted["execution_id"], "--as", "bob", "--json"))
    assert shown["inputs"] == {"service": "cron", "port": 80, "note": "a b"}
    assert shown["steps"][0]["params"]["command"] == ["echo", "cron:80", "a b"]
    text = cli("show", submitted["execution_id"], "--as", "bob")
    assert text.exit_code == 0 and 'inputs     note="a b", port=80, service="cron"' in text.stdout


def test_an_endless_plan_or_inputs_file_is_refused_not_read_whole(db: str, cli: Cli, plan_file: PlanFile) -> None:
    """/dev/zero as the plan, the inputs file or a runbook's text: exit 2 after a bounded read (it was read
    whole: a MemoryError, an internal error)."""
    path = plan_file(PLAN)
    cases = [
        (("submit", "/dev/zero", "--as", "alice"), "error: plan file /dev/zero is larger than 1048576 bytes"),
        (("submit", path, "--as", "alice", "--inputs-file", "/dev/zero"), "error: /dev/zero is larger than"),
        (("runbooks", "save", "zero", "/dev/zero", "--as", "admin"), "error: /dev/zero is larger than"),
    ]
    for args, expected in cases:
        result = cli(*args)
        assert result.exit_code == 2, (args, result.stderr)
        assert expected in result.stderr and "Traceback" not in result.stderr, (args, result.stderr)
    assert execution_ids(cli) == []
