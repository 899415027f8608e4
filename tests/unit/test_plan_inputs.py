"""Plan inputs (DESIGN §14): declarations and values checked with paths, substitution before the hash, and
what an attacker typing a value cannot do (extra argv words, a shell, a secret reference, a credential).

Pure: no database. Asset inputs are only recorded here; the submit checks them (integration tests).
"""

from __future__ import annotations

import copy
import datetime as dt
import os
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.actions.shell import ShellParams, argv_for
from core.errors import InvalidInput
from core.plan_hash import plan_hash
from core.plan_inputs import MAX_INPUTS, MAX_VALUE_CHARS
from core.plans import canonical_plan, declared_inputs, load_input_values, parse_plan

RESTART = """\
name: restart {{ input:service }}
description: Restart a service on a host
inputs:
  - name: service
    type: choice
    choices: [nginx, cron, ssh]
    default: nginx
    description: The unit to restart
  - {name: host, type: asset, default: localhost}
  - {name: port, type: int, required: false, default: 80}
  - {name: verbose, type: bool, required: false, default: false}
  - {name: note, type: string, pattern: "[a-z0-9 ;$()/-]*", default: ok}
  - {name: token, type: secret_ref, required: false, default: demo_token}
steps:
  - name: restart
    action: shell
    target: "{{ input:host }}"
    params:
      command: [systemctl, restart, "{{ input:service }}.service"]
  - name: say
    action: noop
    target: "{{ input:host }}"
  - name: call
    action: shell
    target: localhost
    params:
      command: "echo port={{ input:port }} '{{ input:note }}' verbose={{ input:verbose }}"
      env: {API_TOKEN: "{{ input:token }}"}
"""


def issues(source: Any, **kwargs: Any) -> list[tuple[str, str]]:
    with pytest.raises(InvalidInput) as caught:
        parse_plan(source, **kwargs)
    return caught.value.issues


def with_note(note: str) -> list[str]:
    """The argv the third step runs with ``note`` given."""
    plan = parse_plan(RESTART, inputs={"note": note})
    return argv_for(ShellParams.model_validate(plan.steps[2].params))


def test_values_are_substituted_and_typed() -> None:
    """Defaults fill what is not given; a whole-value reference in target; text inside one argv element."""
    plan = parse_plan(RESTART, inputs={"service": "cron", "port": "8080", "verbose": "yes"})
    assert plan.spec.name == "restart cron"
    assert [s.spec.target for s in plan.steps] == ["localhost"] * 3
    assert plan.steps[0].params["command"] == ["systemctl", "restart", "cron.service"]
    assert plan.steps[2].params["command"] == ["echo", "port=8080", "ok", "verbose=true"]
    assert plan.steps[2].params["env"] == {"API_TOKEN": "{{ secret:demo_token }}"}
    assert plan.inputs == {
        "service": "cron",
        "host": "localhost",
        "port": 8080,
        "verbose": True,
        "note": "ok",
        "token": "{{ secret:demo_token }}",
    }
    assert plan.input_assets == (("inputs.host", "localhost"),)
    assert plan.templated == frozenset({0, 1, 2})


def test_a_typed_whole_value_keeps_its_type() -> None:
    """``timeout_s: "{{ input:n }}"`` is not a place for inputs, but a param that is one reference gets the int."""
    plan = parse_plan(
        {
            "name": "p",
            "inputs": [{"name": "n", "type": "int"}],
            "steps": [{"name": "s", "action": "sleep", "target": "localhost", "params": {"seconds": "{{ input:n }}"}}],
        },
        inputs={"n": 2},
    )
    assert plan.steps[0].params["seconds"] == 2


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"port": "eighty"}, ("inputs.port", "must be an integer")),
        ({"port": True}, ("inputs.port", "must be an integer")),
        ({"verbose": "maybe"}, ("inputs.verbose", "must be true or false")),
        ({"service": "sshd"}, ("inputs.service", "must be one of nginx, cron, ssh")),
        ({"service": True}, ("inputs.service", "must be one of nginx, cron, ssh")),
        ({"note": "UPPER"}, ("inputs.note", "does not match the pattern [a-z0-9 ;$()/-]*")),
        ({"colour": "red"}, ("inputs.colour", "unknown input (declared: host, note, port, service, token, verbose)")),
        ({"token": "not a name"}, ("inputs.token", "must be a secret's name (letters, digits, _ . -)")),
        ({"host": ""}, ("inputs.host", "must name an asset")),
        ({"note": ["a"]}, ("inputs.note", "must be a string")),
        ({"note": 1.5}, ("inputs.note", "must be a string")),
    ],
)
def test_bad_values_are_refused_with_their_path(given: dict[str, Any], expected: tuple[str, str]) -> None:
    assert issues(RESTART, inputs=given) == [expected]


def test_a_required_input_without_a_default_must_be_given() -> None:
    plan = {
        "name": "p",
        "inputs": [{"name": "who", "type": "string"}],
        "steps": [{"name": "s", "action": "shell", "target": "h", "params": {"command": ["echo", "{{ input:who }}"]}}],
    }
    assert issues(plan) == [("inputs.who", "required")]
    assert issues(plan, inputs={"who": "a", "other": "b"}) == [("inputs.other", "unknown input (declared: who)")]


def test_a_plan_without_inputs_refuses_values_and_stray_references() -> None:
    plan = {"name": "p", "steps": [{"name": "s", "action": "noop", "target": "h"}]}
    assert issues(plan, inputs={"x": "1"}) == [("inputs.x", "unknown input (declared: the plan declares none)")]
    plan["steps"][0] = {"name": "s", "action": "shell", "target": "h", "params": {"command": ["echo", "{{ input:x }}"]}}
    [(path, message)] = issues(plan)
    assert path == "steps[0].params.command[1]"
    assert "declares no such input" in message


@pytest.mark.parametrize(
    ("declaration", "expected"),
    [
        ({"name": "x", "type": "float"}, "inputs[0].type"),
        ({"name": "1x"}, "inputs[0].name"),
        ({"name": "x", "type": "choice"}, "inputs[0].choices"),
        ({"name": "x", "choices": ["a"]}, "inputs[0].choices"),
        ({"name": "x", "pattern": "("}, "inputs[0].pattern"),
        ({"name": "x", "type": "int", "pattern": "[0-9]+"}, "inputs[0].pattern"),
        ({"name": "x", "type": "int", "required": False}, "inputs[0].default"),
        ({"name": "x", "type": "int", "default": "ten"}, "inputs[0].default"),
        ({"name": "x", "type": "choice", "choices": ["a"], "default": "b"}, "inputs[0].default"),
        ({"name": "x", "colour": "red"}, "inputs[0].colour"),
    ],
)
def test_bad_declarations_name_their_path(declaration: dict[str, Any], expected: str) -> None:
    plan = {"name": "p", "inputs": [declaration], "steps": [{"name": "s", "action": "noop", "target": "h"}]}
    assert [path for path, _message in issues(plan, template=True)] == [expected]


def test_duplicate_input_names_are_refused() -> None:
    plan = {
        "name": "p",
        "inputs": [{"name": "a"}, {"name": "a"}],
        "steps": [{"name": "s", "action": "noop", "target": "h"}],
    }
    assert issues(plan, template=True) == [("inputs[1].name", "duplicate of inputs[0].name ('a')")]


def test_inputs_go_only_into_params_target_name_and_description() -> None:
    plan = {
        "name": "p",
        "inputs": [{"name": "a", "default": "x"}],
        "steps": [{"name": "s-{{ input:a }}", "action": "noop", "target": "h", "params": {"{{ input:a }}": "v"}}],
    }
    paths = sorted(path for path, _message in issues(plan))
    assert paths == ["steps[0].name", "steps[0].params.{{ input:a }}"]


# The attacker's side: a submitter typing a value into a runbook's input.


@pytest.mark.parametrize("value", ["; rm -rf /", "$(cat /etc/shadow)", "`id`", "a b c", "x' 'y", '" && reboot "'])
def test_a_value_stays_inside_its_one_argv_element(value: str) -> None:
    """Substituted into a word of a string command (split before substitution) or a list: never more words."""
    plan = {
        "name": "p",
        "inputs": [{"name": "v"}],
        "steps": [
            {"name": "list", "action": "shell", "target": "h", "params": {"command": ["echo", "[{{ input:v }}]"]}},
            {"name": "text", "action": "shell", "target": "h", "params": {"command": "echo '[{{ input:v }}]' done"}},
        ],
    }
    parsed = parse_plan(plan, inputs={"v": value})
    assert argv_for(ShellParams.model_validate(parsed.steps[0].params)) == ["echo", f"[{value}]"]
    assert argv_for(ShellParams.model_validate(parsed.steps[1].params)) == ["echo", f"[{value}]", "done"]


def test_a_value_with_spaces_in_the_restart_runbook_is_one_word() -> None:
    assert with_note("a; rm -rf /") == ["echo", "port=80", "a; rm -rf /", "verbose=false"]


@pytest.mark.parametrize(
    "value", ["a\nrm -rf /", "a\rb", "a\x00b", "tab\there", "a\x85b", "a\x9b2Jb", "a\u2028b", "a\u2029b"]
)
def test_a_value_with_a_newline_or_control_character_is_refused(value: str) -> None:
    assert issues(RESTART, inputs={"note": value}) == [("inputs.note", "must be one line without control characters")]


@pytest.mark.parametrize("value", ["{{ secret:demo_token }}", "{{secret:root_key}}", "x }} {{ input:service }}"])
def test_a_value_never_becomes_a_reference(value: str) -> None:
    """``{{ secret:x }}`` typed as a value is refused: it would otherwise be resolved by the worker."""
    plan = {
        "name": "p",
        "inputs": [{"name": "v"}],
        "steps": [{"name": "s", "action": "shell", "target": "h", "params": {"command": ["echo", "{{ input:v }}"]}}],
    }
    [(path, message)] = issues(plan, inputs={"v": value})
    assert path == "inputs.v"
    assert "never a reference" in message


def test_only_a_secret_ref_input_makes_a_reference_and_it_is_never_resolved() -> None:
    """Its value names a secret; the plan holds ``{{ secret:NAME }}`` (checked by the submit like any reference)."""
    plan = parse_plan(RESTART, inputs={"token": "{{ secret:other_token }}"})
    assert plan.steps[2].params["env"] == {"API_TOKEN": "{{ secret:other_token }}"}
    assert plan.secret_names == frozenset({"other_token"})
    assert plan.inputs is not None and plan.inputs["token"] == "{{ secret:other_token }}"


@pytest.mark.parametrize(
    "value", ["AKIAABCDEFGHIJKLMNOP", "password=hunter2", "https://bob:pw@example.org/", "ghp_" + "a" * 36]
)
def test_a_value_that_looks_like_a_credential_is_refused(value: str) -> None:
    [(path, message)] = issues(_free_text(), inputs={"v": value})
    assert path == "inputs.v"
    assert "literal credential" in message
    assert value not in message


def _free_text() -> dict[str, Any]:
    return {
        "name": "p",
        "inputs": [{"name": "v"}],
        "steps": [{"name": "s", "action": "shell", "target": "h", "params": {"command": ["echo", "{{ input:v }}"]}}],
    }


def test_a_string_input_under_a_sensitive_key_is_a_literal() -> None:
    """A plain string input into ``env.DB_PASSWORD`` is refused like a typed literal: use a secret_ref input."""
    plan = _free_text()
    plan["steps"][0]["params"]["env"] = {"DB_PASSWORD": "{{ input:v }}"}
    [(path, _message)] = issues(plan, inputs={"v": "hunter2"})
    assert path == "steps[0].params.env.DB_PASSWORD"


def test_a_command_a_shell_reads_takes_no_input() -> None:
    """``shell: true`` with a string, ssh with a string, and stdin: refused (a list is quoted word by word)."""
    plan = _free_text()
    plan["steps"][0]["params"] = {"command": "echo {{ input:v }}", "shell": True}
    assert [p for p, _m in issues(plan, inputs={"v": "x"})] == ["steps[0].params.command"]
    plan["steps"][0]["params"] = {"command": ["echo", "{{ input:v }}"], "shell": True}
    parsed = parse_plan(plan, inputs={"v": "; reboot"})
    assert argv_for(ShellParams.model_validate(parsed.steps[0].params)) == ["/bin/sh", "-c", "echo '; reboot'"]
    plan["steps"][0] = {"name": "s", "action": "ssh", "target": "h", "params": {"command": "ls {{ input:v }}"}}
    plan["steps"][0]["params"]["username"] = "ops"
    assert [p for p, _m in issues(plan, inputs={"v": "x"})] == ["steps[0].params.command"]
    plan["steps"][0]["params"] = {"command": ["sh"], "stdin": "echo {{ input:v }}"}
    plan["steps"][0]["action"] = "shell"
    assert [p for p, _m in issues(plan, inputs={"v": "x"})] == ["steps[0].params.stdin"]


def test_a_malformed_reference_in_a_string_command_is_refused_not_split() -> None:
    plan = _free_text()
    plan["steps"][0]["params"] = {"command": "echo {{ input: v w }}"}
    [(path, message)] = issues(plan, inputs={"v": "x"})
    assert path == "steps[0].params.command"
    assert "malformed input reference" in message


def test_changing_an_input_changes_the_canonical_plan_and_its_hash() -> None:
    def hashed(given: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        canonical = canonical_plan(parse_plan(RESTART, inputs=given), {"localhost": "asset-1"})
        return plan_hash(canonical), canonical

    first, canonical = hashed({"service": "nginx"})
    assert hashed({"service": "nginx"})[0] == first  # deterministic
    assert hashed({"service": "cron"})[0] != first
    assert canonical["inputs"]["service"] == "nginx"
    assert "{{ input:" not in str(canonical)  # the stored plan is concrete


def test_a_plan_without_inputs_keeps_its_canonical_form() -> None:
    """No ``inputs`` key is added: hashes of plans written before inputs existed do not change."""
    plan = {"name": "p", "steps": [{"name": "s", "action": "noop", "target": "h"}]}
    assert "inputs" not in canonical_plan(parse_plan(plan), {"h": "a"})


def test_the_source_mapping_is_not_mutated() -> None:
    plan = _free_text()
    before = copy.deepcopy(plan)
    parse_plan(plan, inputs={"v": "x"})
    assert plan == before


def test_a_template_validates_with_samples_and_vouches_for_nothing_it_fills() -> None:
    plan = parse_plan(_free_text(), template=True)
    assert plan.templated == frozenset({0})
    assert plan.input_assets == ()


def test_declared_inputs_for_a_form() -> None:
    views = declared_inputs(RESTART)
    assert [(v.name, v.type, v.required) for v in views][:3] == [
        ("service", "choice", True),
        ("host", "asset", True),
        ("port", "int", False),
    ]
    assert views[0].choices == ["nginx", "cron", "ssh"]
    assert views[0].description == "The unit to restart"
    assert declared_inputs({"name": "p", "steps": []}) == []


def test_input_values_from_a_file() -> None:
    assert load_input_values("service: cron\nport: 8080\nverbose: true\n") == {
        "service": "cron",
        "port": 8080,
        "verbose": True,
    }
    assert load_input_values('{"service": "cron"}') == {"service": "cron"}
    with pytest.raises(InvalidInput) as caught:
        load_input_values("- a\n- b\n")
    assert caught.value.path == "inputs"
    with pytest.raises(InvalidInput) as caught:
        load_input_values("a: [1, 2]\n")
    assert caught.value.path == "inputs.a"
    with pytest.raises(InvalidInput):
        load_input_values("a: &x 1\nb: *x\n")  # no aliases, as in plans


def test_values_cannot_blow_a_plan_up() -> None:
    """A long value used many times is bounded by the plan's byte limit, as the plan's own text is."""
    plan = _free_text()
    plan["steps"][0]["params"]["command"] = ["echo"] + ["{{ input:v }}"] * 100
    parse_plan(plan, inputs={"v": "x" * 1000}, max_bytes=200_000)
    [(path, message)] = issues(plan, inputs={"v": "x" * 1000}, max_bytes=50_000)
    assert path == "inputs"
    assert message == "the values add 98700 characters to the plan; the limit is 50000"  # 100 x (1000 - 13)


def test_the_automation_command_takes_no_input() -> None:
    """The automation service runs its command text as it likes: an input there could be a shell's."""
    plan = _free_text()
    plan["steps"][0] = {
        "name": "s",
        "action": "automation",
        "target": "h",
        "params": {"command": "restart {{ input:v }}"},
    }
    assert [p for p, _m in issues(plan, inputs={"v": "x"})] == ["steps[0].params.command"]


def test_an_integer_from_a_file_is_text_for_a_string_input() -> None:
    plan = parse_plan(_free_text(), inputs={"v": 12})
    assert plan.steps[0].params["command"] == ["echo", "12"]


# Property: whatever a submitter types, the value lands inside its one argv element, or is refused at its path.

FUZZ = settings(
    max_examples=int(os.environ.get("OPSC_FUZZ_EXAMPLES", "100")),
    deadline=dt.timedelta(seconds=5),
    suppress_health_check=[HealthCheck.too_slow],
)


@FUZZ
@given(value=st.text(max_size=200))
def test_any_value_is_one_argv_element_or_refused_at_its_path(value: str) -> None:
    plan = {
        "name": "p",
        "inputs": [{"name": "v"}],
        "steps": [
            {"name": "a", "action": "shell", "target": "h", "params": {"command": ["echo", "<{{ input:v }}>"]}},
            {"name": "b", "action": "shell", "target": "h", "params": {"command": "echo '<{{ input:v }}>' end"}},
        ],
    }
    try:
        parsed = parse_plan(plan, inputs={"v": value})
    except InvalidInput as exc:
        assert all(path.startswith(("inputs.v", "steps[")) for path, _message in exc.issues), exc.issues
        assert all(value not in message for _path, message in exc.issues if len(value) > 3)
        return
    assert argv_for(ShellParams.model_validate(parsed.steps[0].params)) == ["echo", f"<{value}>"]
    assert argv_for(ShellParams.model_validate(parsed.steps[1].params)) == ["echo", f"<{value}>", "end"]
    assert parsed.secret_names == frozenset()  # no value ever makes a reference


@pytest.mark.parametrize("field", ["default", "description"])
def test_a_declaration_holding_a_credential_is_refused(field: str) -> None:
    """The declaration is not part of the validated plan: its literals are checked on their own."""
    plan = _free_text()
    plan["inputs"] = [{"name": "v", field: "AKIAABCDEFGHIJKLMNOP"}]
    paths = [path for path, _message in issues(plan, template=True)]
    assert paths == [f"inputs[0].{field}"]


REDOS = {
    "name": "p",
    "inputs": [{"name": "v", "pattern": "(a+)+$"}],
    "steps": [{"name": "s", "action": "noop", "target": "h", "params": {"x": "{{ input:v }}"}}],
}


@pytest.mark.parametrize("length", [28, MAX_VALUE_CHARS])
def test_a_catastrophic_pattern_is_matched_in_bounded_time(length: int) -> None:
    """``(a+)+$`` backtracks exponentially under Python's ``re`` (28 characters: seconds; 1024: never ends)."""
    started = time.process_time()
    assert issues(REDOS, inputs={"v": "a" * (length - 1) + "!"}) == [("inputs.v", "does not match the pattern (a+)+$")]
    assert time.process_time() - started < 0.5
    assert parse_plan(REDOS, inputs={"v": "a" * length}).inputs == {"v": "a" * length}


@pytest.mark.parametrize("pattern", [r"(a)\1", r"(?=a)a", r"(?<!b)a", "(x{1000}){1000}"])
def test_a_pattern_that_cannot_match_in_linear_time_is_refused_where_declared(pattern: str) -> None:
    plan = {**REDOS, "inputs": [{"name": "v", "pattern": pattern}]}
    found = issues(plan, template=True)
    assert [path for path, _message in found] == ["inputs[0].pattern"]
    assert "without backreferences or lookaround" in found[0][1]


@pytest.mark.parametrize("value", ["\u202eevil", "rm\u2066x\u2069", "ngin\u200bx", "\ufeffx", "a\u061cb", "a\u2060b"])
def test_a_value_with_an_invisible_or_reordering_character_is_refused(value: str) -> None:
    """What the approver reads is what runs: no bidi override, isolate, mark or zero-width character in a value."""
    found = issues(RESTART, inputs={"note": value})
    assert [path for path, _message in found] == ["inputs.note"]
    assert found[0][1].startswith("must not contain invisible or reordering characters (U+")


def test_a_value_in_another_script_is_accepted() -> None:
    plan = {**REDOS, "inputs": [{"name": "v"}]}
    assert parse_plan(plan, inputs={"v": "Grüße 日本 שלום"}).inputs == {"v": "Grüße 日本 שלום"}


def test_a_flood_of_values_is_one_short_issue() -> None:
    """More values than a plan may declare: one issue, not one per name (each listing the declared inputs)."""
    flood = {f"k{i}": "x" for i in range(MAX_INPUTS + 1)}
    assert issues(RESTART, inputs=flood) == [
        ("inputs", f"{MAX_INPUTS + 1} values given; a plan declares at most 50 inputs")
    ]
    [(path, _message)] = issues(RESTART, inputs={"n" * 100_000: "x"})
    assert path == f"inputs.{'n' * 64}…"


def test_a_bool_is_no_integer_choice() -> None:
    """``True == 1`` in Python: a ``yes`` from an inputs file must not pick the choice 1."""
    plan = {**REDOS, "inputs": [{"name": "v", "type": "choice", "choices": [1, 2]}]}
    assert issues(plan, inputs={"v": True}) == [("inputs.v", "must be one of 1, 2")]
    assert parse_plan(plan, inputs={"v": "1"}).inputs == {"v": 1}


@pytest.mark.parametrize("field", ["name", "description"])
def test_a_secret_ref_input_goes_only_into_params(field: str) -> None:
    """In the name or description a reference would be checked by nothing (any tenant's secret name would do)."""
    plan = {
        "name": "p",
        "inputs": [{"name": "tok", "type": "secret_ref"}],
        "steps": [{"name": "s", "action": "noop", "target": "h"}],
        field: "run {{ input:tok }}",
    }
    assert issues(plan, inputs={"tok": "another_tenants_secret"}) == [
        (field, "a secret_ref input goes only into a step's params")
    ]
