"""Plans (DESIGN §5): parsing with path-precise errors, secret references, literal refusal, derivations.

Pure: no database, no services. Targets stay plain names here; nothing is resolved.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from core.errors import InvalidInput
from core.plans import Plan, parse_plan, reclassify
from core.policies import DEFAULT_POLICIES, PolicyValues
from core.risk import UNTRUSTED, Trust
from db.enums import ActionClass, ExecutionMode, SlaClass

# DESIGN §5's example, verbatim (comments included).
EXAMPLE_YAML = """\
name: restart-nginx                 # required
description: Restart nginx on web-01
approval_level: 1                   # optional: may raise, never lower, the derived level
continue_on_error: false
steps:
  - name: check                     # required, unique in the plan
    action: shell                   # a registered action type (§8)
    target: web-01                  # asset name in the tenant's inventory
    action_class: read              # optional read|modify|deploy: may raise, never lower the action's default
    params: {command: "systemctl status nginx"}
    timeout_s: 5                    # optional, capped by the policy's step timeout
  - name: restart
    action: shell
    target: web-01
    action_class: modify
    params: {command: "systemctl restart nginx", env: {TOKEN: "{{ secret:nginx_token }}"}}
"""


def step(name: str = "s", action: str = "noop", target: str = "web-01", **fields: Any) -> dict[str, Any]:
    """A step mapping with sensible defaults."""
    return {"name": name, "action": action, "target": target, **fields}


def plan(*steps: dict[str, Any], **top: Any) -> dict[str, Any]:
    """A plan mapping; one noop step when none is given."""
    return {"name": "p", **top, "steps": list(steps) or [step()]}


def shell(name: str = "s", command: Any = "ls -la /tmp", **fields: Any) -> dict[str, Any]:
    params = {"command": command, **fields.pop("params", {})}
    return step(name, "shell", params=params, **fields)


def refused(source: Any, **kwargs: Any) -> InvalidInput:
    """The InvalidInput that parsing ``source`` raises (fails the test if it parses)."""
    with pytest.raises(InvalidInput) as info:
        parse_plan(source, **kwargs)
    return info.value


def issues_of(source: Any, **kwargs: Any) -> list[tuple[str, str]]:
    return refused(source, **kwargs).issues


def paths_of(source: Any, **kwargs: Any) -> list[str]:
    return [p for p, _m in issues_of(source, **kwargs)]


# --- Parsing: accepted inputs ------------------------------------------------------------------------


def test_example_plan_from_design_parses_with_names_unresolved() -> None:
    """Its `check` step is `read` where an admin declared `systemctl status` read-only (DESIGN §13)."""
    parsed = parse_plan(EXAMPLE_YAML, trust=Trust.of([["systemctl", "status"]]))
    assert parsed.spec.name == "restart-nginx"
    assert parsed.spec.description == "Restart nginx on web-01"
    assert [s.spec.name for s in parsed.steps] == ["check", "restart"]
    assert [s.spec.target for s in parsed.steps] == ["web-01", "web-01"]
    assert [s.action_class for s in parsed.steps] == [ActionClass.READ, ActionClass.MODIFY]
    assert parsed.steps[0].params["command"] == "systemctl status nginx"
    assert parsed.steps[1].params["env"] == {"TOKEN": "{{ secret:nginx_token }}"}
    assert parsed.secret_names == frozenset({"nginx_token"})


def test_example_plan_derivations() -> None:
    """modify → level 1; 5 s timeout + shell's 5 s estimate = 10 s: each step within fast's limits (read 5 s,
    modify 8 s) and 10 s below fast modify's 15 s execution limit → fast; level 1 → background."""
    parsed = parse_plan(EXAMPLE_YAML)
    assert parsed.action_class is ActionClass.MODIFY
    assert parsed.approval_level == 1
    assert parsed.estimated_s == 10.0
    assert parsed.sla_class is SlaClass.FAST
    assert [parsed.step_limit_s(s) for s in parsed.steps] == [5, 8]
    assert parsed.execution_limit_s == 15
    assert parsed.execution_mode() is ExecutionMode.BACKGROUND


def test_yaml_json_text_bytes_and_mapping_give_the_same_plan() -> None:
    data = yaml.safe_load(EXAMPLE_YAML)
    forms: list[Any] = [
        EXAMPLE_YAML,
        EXAMPLE_YAML.encode(),
        json.dumps(data, indent=2),
        json.dumps(data).encode(),
        data,
    ]
    parsed = [parse_plan(f) for f in forms]
    assert all(p.spec == parsed[0].spec for p in parsed)
    assert all(p.steps == parsed[0].steps for p in parsed)


def test_json_text_with_leading_whitespace_is_accepted() -> None:
    assert parse_plan("\n   " + json.dumps(plan())).spec.name == "p"


def test_parsing_a_mapping_leaves_it_untouched() -> None:
    """No defaults or normalised values are written back into the caller's mapping."""
    data = plan(step(params={"x": 1}))
    before = json.dumps(data, sort_keys=True)
    parse_plan(data)
    assert json.dumps(data, sort_keys=True) == before


# --- Parsing: refused inputs -------------------------------------------------------------------------


def test_malformed_yaml_names_line_and_column() -> None:
    exc = refused("name: ok\n  steps: x\n")
    assert exc.path == ""
    assert "invalid YAML at line 2, column 8" in str(exc)


def test_malformed_yaml_at_end_of_stream_names_the_line() -> None:
    exc = refused("name: ok\nsteps:\n  - name: s\n    action: [noop\n")
    assert "invalid YAML at line 5, column 1" in str(exc)


def test_malformed_json_names_line_and_column() -> None:
    exc = refused('{\n  "name": "a",\n  "steps": [,]\n}')
    assert "invalid JSON at line 3, column 13" in str(exc)


@pytest.mark.parametrize(
    ("text", "kind"),
    [("- a\n- b\n", "list"), ("just a string\n", "str"), ("42\n", "int"), ("# only a comment\n", "NoneType")],
)
def test_non_mapping_top_level_is_refused(text: str, kind: str) -> None:
    exc = refused(text)
    assert "must be a mapping" in str(exc) and kind in str(exc)


@pytest.mark.parametrize("text", ["", "   \n\t\n", b""])
def test_empty_text_is_refused(text: str | bytes) -> None:
    assert str(refused(text)) == "plan is empty"


def test_non_utf8_bytes_are_refused() -> None:
    exc = refused(b"name: caf\xe9\nsteps: []\n")
    assert "not UTF-8" in str(exc)


def test_text_over_max_bytes_is_refused_before_parsing() -> None:
    text = yaml.safe_dump(plan(step(params={"blob": "x" * 200})))
    size = len(text.encode())
    exc = refused(text, max_bytes=size - 1)
    assert f"{size} bytes" in str(exc) and f"limit is {size - 1}" in str(exc)
    assert parse_plan(text, max_bytes=size).spec.name == "p"


def test_mapping_over_max_bytes_is_refused() -> None:
    exc = refused(plan(step(params={"blob": "x" * 500})), max_bytes=300)
    assert "limit is 300" in str(exc)


def test_default_byte_limit_refuses_a_huge_plan() -> None:
    assert "bytes; the limit is" in str(refused("#" * (300 * 1024)))


def test_too_many_steps_names_the_limit_at_path_steps() -> None:
    data = plan(*(step(f"s{i}") for i in range(4)))
    exc = refused(data, max_steps=3)
    assert exc.path == "steps"
    assert "at most 3" in exc.issues[0][1]
    assert len(parse_plan(data, max_steps=4).steps) == 4


def test_default_step_limit_is_200() -> None:
    assert len(parse_plan(plan(*(step(f"s{i}") for i in range(200)))).steps) == 200
    exc = refused(plan(*(step(f"s{i}") for i in range(201))))
    assert exc.path == "steps" and "at most 200" in str(exc)


def test_missing_name_is_required() -> None:
    data = plan()
    del data["name"]
    assert issues_of(data) == [("name", "required")]


def test_blank_name_is_refused() -> None:
    assert paths_of(plan(name="   ")) == ["name"]


def test_missing_steps_is_required() -> None:
    assert issues_of({"name": "p"}) == [("steps", "required")]


def test_empty_steps_list_is_refused_at_path_steps() -> None:
    assert paths_of({"name": "p", "steps": []}) == ["steps"]


def test_unknown_top_level_field_is_refused() -> None:
    assert issues_of(plan(owner="bob")) == [("owner", "unknown field")]


def test_unknown_step_field_is_refused_with_its_path() -> None:
    assert issues_of(plan(step("a"), step("b", retries=3))) == [("steps[1].retries", "unknown field")]


@pytest.mark.parametrize("missing", ["name", "action", "target"])
def test_missing_step_field_is_required(missing: str) -> None:
    s = step()
    del s[missing]
    required = "required (one asset; or targets, for a fan-out)" if missing == "target" else "required"
    assert issues_of(plan(s)) == [(f"steps[0].{missing}", required)]


def test_duplicate_step_name_points_at_the_first() -> None:
    issues = issues_of(plan(step("check"), step("check")))
    assert len(issues) == 1
    path, message = issues[0]
    assert path == "steps[1].name"
    assert "steps[0]" in message and "check" in message


def test_unknown_action_lists_the_known_actions() -> None:
    issues = issues_of(plan(step("a"), step("b", action="telnet")))
    assert len(issues) == 1
    path, message = issues[0]
    assert path == "steps[1].action"
    assert "telnet" in message
    for known in ("noop", "shell", "sleep"):
        assert known in message


def test_missing_required_param_is_exactly_path_required() -> None:
    """The DESIGN's own example: ``steps[2].params.command: required``."""
    data = plan(shell("a"), shell("b"), step("c", action="shell", params={"env": {}}))
    exc = refused(data)
    assert ("steps[2].params.command", "required") in exc.issues
    assert exc.issues == [("steps[2].params.command", "required")]
    assert str(exc) == "steps[2].params.command: required"
    assert exc.exit_code == 2


@pytest.mark.parametrize(
    ("params", "path"),
    [
        ({"seconds": "soon"}, "steps[0].params.seconds"),
        ({"seconds": [1]}, "steps[0].params.seconds"),
    ],
)
def test_wrong_sleep_param_type_is_refused_with_its_path(params: dict[str, Any], path: str) -> None:
    assert paths_of(plan(step(action="sleep", params=params))) == [path]


def test_wrong_shell_param_types_are_refused_with_their_paths() -> None:
    paths = paths_of(plan(shell(command=5), shell("t", params={"env": "A=1"})))
    assert set(paths) == {"steps[0].params.command", "steps[1].params.env"}


def test_unknown_param_of_a_strict_action_is_refused() -> None:
    assert issues_of(plan(shell(params={"sudo": True}))) == [("steps[0].params.sudo", "unknown field")]


def test_params_must_be_a_mapping() -> None:
    assert paths_of(plan(step(params=["a"]))) == ["steps[0].params"]


@pytest.mark.parametrize("timeout", [0, -1, -30])
def test_non_positive_timeout_is_refused(timeout: int) -> None:
    assert paths_of(plan(step(timeout_s=timeout))) == ["steps[0].timeout_s"]


def test_positive_timeout_is_accepted() -> None:
    assert parse_plan(plan(step(timeout_s=1))).steps[0].spec.timeout_s == 1


@pytest.mark.parametrize("level", [-1, 4, 10])
def test_approval_level_outside_0_to_3_is_refused(level: int) -> None:
    assert paths_of(plan(approval_level=level)) == ["approval_level"]


@pytest.mark.parametrize("level", [0, 1, 2, 3])
def test_approval_level_0_to_3_is_accepted(level: int) -> None:
    assert parse_plan(plan(approval_level=level)).approval_level == level


def test_unknown_action_class_is_refused() -> None:
    assert paths_of(plan(step(action_class="destroy"))) == ["steps[0].action_class"]


def test_several_problems_give_one_issue_each_with_its_path() -> None:
    data = plan(
        step("a", action="telnet"),
        step("a"),
        step("c", action="shell", params={}),
        step("d", action="sleep", params={"seconds": -1}),
        shell("e", params={"env": {"DB_PASSWORD": "hunter2"}}),
    )
    exc = refused(data)
    paths = [p for p, _m in exc.issues]
    assert paths == [
        "steps[0].action",
        "steps[1].name",
        "steps[2].params.command",
        "steps[3].params.seconds",
        "steps[4].params.env.DB_PASSWORD",
    ]
    for path in paths:
        assert path in str(exc)
    assert "hunter2" not in str(exc)


def test_several_top_level_problems_are_all_reported() -> None:
    assert set(paths_of({"steps": [step(timeout_s=0)], "approval_level": 9, "extra": 1})) == {
        "name",
        "steps[0].timeout_s",
        "approval_level",
        "extra",
    }


# --- Secrets -------------------------------------------------------------------------------------------


def test_secret_refs_are_collected_from_params() -> None:
    parsed = parse_plan(plan(shell(params={"env": {"A": "{{ secret:alpha }}", "B": "{{secret:beta}}"}})))
    assert parsed.secret_names == frozenset({"alpha", "beta"})


def test_secret_refs_nested_in_lists_and_dicts_are_collected() -> None:
    params = {"a": [1, {"b": ["x {{ secret:deep.one }} y", "{{  secret:two-2  }}"]}], "c": {"d": "{{secret:_three}}"}}
    assert parse_plan(plan(step(params=params))).secret_names == frozenset({"deep.one", "two-2", "_three"})


def test_secret_refs_across_steps_are_merged_and_deduplicated() -> None:
    data = plan(
        shell("a", command="echo {{ secret:x }}"),
        shell("b", command=["echo", "{{ secret:x }}", "{{ secret:y }}"]),
    )
    assert parse_plan(data).secret_names == frozenset({"x", "y"})


def test_a_plan_without_refs_has_no_secret_names() -> None:
    assert parse_plan(plan(shell())).secret_names == frozenset()


JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
GITHUB_TOKEN = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
BEARER = "Zx9QvR7mTb3LpK2wYs8Nd4Hc6Fj1Ge5A"

LITERALS = [
    # (id, step mapping, path of the issue, the secret that must not be echoed)
    (
        "env-db-password",
        shell(params={"env": {"DB_PASSWORD": "hunter2"}}),
        "steps[0].params.env.DB_PASSWORD",
        "hunter2",
    ),
    ("api_key", step(params={"api_key": "k3yv4lu3"}), "steps[0].params.api_key", "k3yv4lu3"),
    (
        "github-token-key",
        shell(params={"env": {"GITHUB_TOKEN": "tok-123456"}}),
        "steps[0].params.env.GITHUB_TOKEN",
        "tok-123456",
    ),
    ("numeric-password", step(params={"password": 918273}), "steps[0].params.password", "918273"),
    ("aws", shell(command="aws s3 ls --key AKIAIOSFODNN7EXAMPLE"), "steps[0].params.command", "AKIAIOSFODNN7EXAMPLE"),
    (
        "pem",
        step(
            params={
                "key_material": "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAq7s\n-----END RSA PRIVATE KEY-----"
            }
        ),
        "steps[0].params.key_material",
        "MIIEowIBAAKCAQEAq7s",
    ),
    (
        "bearer",
        shell(command=f'curl -H "Authorization: Bearer {BEARER}" https://api.example.com'),
        "steps[0].params.command",
        BEARER,
    ),
    (
        "url-userinfo",
        shell(command="curl https://admin:s3cr3tpw@example.com/api"),
        "steps[0].params.command",
        "s3cr3tpw",
    ),
    ("password=", shell(command="mysql -u root password=xyzzy1"), "steps[0].params.command", "xyzzy1"),
    ("--password", shell(command="mysqladmin --password xyzzy2 status"), "steps[0].params.command", "xyzzy2"),
    ("github-token", shell(command=["gh", "auth", GITHUB_TOKEN]), "steps[0].params.command[2]", GITHUB_TOKEN),
    ("jwt", step(params={"note": JWT}), "steps[0].params.note", JWT),
]


@pytest.mark.parametrize(("source", "path", "value"), [c[1:] for c in LITERALS], ids=[c[0] for c in LITERALS])
def test_literal_credential_is_refused_with_path_and_without_value(
    source: dict[str, Any], path: str, value: str
) -> None:
    exc = refused(plan(source))
    assert [p for p, _m in exc.issues] == [path]
    assert "secret:NAME" in exc.issues[0][1]
    assert value not in str(exc)
    assert value not in repr(exc.issues)


def test_literal_credential_in_yaml_text_is_refused_without_value() -> None:
    text = EXAMPLE_YAML.replace('"{{ secret:nginx_token }}"', "s3cr3t-literal")
    exc = refused(text)
    assert [p for p, _m in exc.issues] == ["steps[1].params.env.TOKEN"]
    assert "s3cr3t-literal" not in str(exc)


def test_literal_credential_in_plan_description_is_refused() -> None:
    exc = refused(plan(description="use password=hunter22 for db"))
    assert exc.path == "description" and "hunter22" not in str(exc)


@pytest.mark.parametrize(
    "source",
    [
        shell(params={"env": {"TOKEN": "{{ secret:nginx_token }}"}}),
        shell(command="mysql password={{ secret:db }}"),
        shell(command="mysqladmin --password {{ secret:db }} status"),
        shell(command="curl https://admin:{{ secret:pw }}@example.com/"),
        shell(params={"env": {"TOKEN": ""}}),
        shell(command="systemctl status nginx"),
        shell(command="ls -la /tmp"),
        step(params={"password_hint": "ask ops", "tokens": 3, "enabled": True}),
    ],
    ids=["env-ref", "password=ref", "--password ref", "url-ref", "empty", "systemctl", "ls", "innocent-keys"],
)
def test_references_and_ordinary_values_are_accepted(source: dict[str, Any]) -> None:
    assert isinstance(parse_plan(plan(source)), Plan)


# --- Derivations ---------------------------------------------------------------------------------------


def classes(*steps: dict[str, Any], trust: Trust = UNTRUSTED) -> list[ActionClass]:
    return [s.action_class for s in parse_plan(plan(*steps), trust=trust).steps]


LS_IS_READ = Trust.of([["ls"]])  # what an admin's `opsconductor commands allow ls` gives the plans below


def test_shell_defaults_to_modify() -> None:
    assert classes(shell()) == [ActionClass.MODIFY]


def test_shell_is_read_under_a_declared_prefix() -> None:
    assert classes(shell(), trust=LS_IS_READ) == [ActionClass.READ]


def test_shell_true_raises_to_modify() -> None:
    assert classes(shell(params={"shell": True})) == [ActionClass.MODIFY]


def test_requested_read_never_lowers_a_shell_true_step() -> None:
    assert classes(shell(params={"shell": True}, action_class="read")) == [ActionClass.MODIFY]


@pytest.mark.parametrize(("requested", "effective"), [("read", "read"), ("modify", "modify"), ("deploy", "deploy")])
def test_requested_class_may_raise_a_read_action(requested: str, effective: str) -> None:
    assert classes(shell(action_class=requested), trust=LS_IS_READ) == [ActionClass(effective)]
    assert classes(step(action_class=requested)) == [ActionClass(effective)]


def test_requested_deploy_raises_a_shell_true_step() -> None:
    assert classes(shell(params={"shell": True}, action_class="deploy")) == [ActionClass.DEPLOY]


def test_plan_action_class_is_the_highest_step_class() -> None:
    parsed = parse_plan(plan(step("a"), shell("b", action_class="deploy"), shell("c", params={"shell": True})))
    assert parsed.action_class is ActionClass.DEPLOY
    assert parse_plan(plan(step("a"), shell("c", params={"shell": True}))).action_class is ActionClass.MODIFY
    assert parse_plan(plan(step("a"), shell("b")), trust=LS_IS_READ).action_class is ActionClass.READ
    assert parse_plan(plan(step("a"), shell("b"))).action_class is ActionClass.MODIFY


@pytest.mark.parametrize(
    ("step_class", "requested", "level"),
    [
        ("read", None, 0),
        ("read", 0, 0),
        ("read", 2, 2),
        ("modify", None, 1),
        ("modify", 0, 1),
        ("modify", 3, 3),
        ("deploy", None, 2),
        ("deploy", 1, 2),
        ("deploy", 3, 3),
    ],
)
def test_approval_level_is_max_of_requested_and_class_floor(step_class: str, requested: int | None, level: int) -> None:
    top = {} if requested is None else {"approval_level": requested}
    assert parse_plan(plan(step(action_class=step_class), **top)).approval_level == level


def sla(*steps: dict[str, Any]) -> SlaClass:
    return parse_plan(plan(*steps)).sla_class


@pytest.mark.parametrize(
    ("timeout", "expected"),
    # read steps: fast holds up to 5 s, medium 15 s, long 60 s (the seeded step limits)
    [(1, SlaClass.FAST), (5, SlaClass.FAST), (6, SlaClass.MEDIUM), (9, SlaClass.MEDIUM), (15, SlaClass.MEDIUM),
     (16, SlaClass.LONG), (29, SlaClass.LONG), (60, SlaClass.LONG)],
)  # fmt: skip
def test_sla_class_holds_the_declared_timeout(timeout: int, expected: SlaClass) -> None:
    """The class is one whose step limit is at least the declared timeout: a declared 9 s is never cut to 5 s."""
    parsed = parse_plan(plan(step(timeout_s=timeout)))
    assert parsed.sla_class is expected
    assert parsed.step_limit_s(parsed.steps[0]) == timeout


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0, SlaClass.FAST),
        (5, SlaClass.FAST),
        (5.001, SlaClass.MEDIUM),
        (9.9, SlaClass.MEDIUM),
        (15, SlaClass.MEDIUM),
        (20, SlaClass.LONG),  # a 20 s sleep is never cut to medium's 15 s
        (29.99, SlaClass.LONG),
        (3600, SlaClass.LONG),  # no class holds it; not declared, so not refused: it runs with long's 60 s
    ],
)
def test_sla_class_from_sleep_estimate(seconds: float, expected: SlaClass) -> None:
    parsed = parse_plan(plan(step(action="sleep", params={"seconds": seconds})))
    assert parsed.estimated_s == seconds
    assert parsed.sla_class is expected


def test_sla_class_sums_the_steps_below_the_execution_limit() -> None:
    """The plan's estimate must be below the execution limit: fast read gives 10 s, medium read 30 s."""
    assert sla(step("a", timeout_s=4), step("b", timeout_s=5)) is SlaClass.FAST
    assert sla(step("a", timeout_s=5), step("b", timeout_s=5)) is SlaClass.MEDIUM
    assert sla(step("a", timeout_s=15), step("b", timeout_s=14)) is SlaClass.MEDIUM
    assert sla(step("a", timeout_s=15), step("b", timeout_s=15)) is SlaClass.LONG


def test_step_timeout_replaces_the_action_estimate() -> None:
    parsed = parse_plan(plan(step(action="sleep", params={"seconds": 100}, timeout_s=3)))
    assert parsed.steps[0].estimate_s == 3.0
    assert parsed.sla_class is SlaClass.FAST


def test_action_estimates_are_used_without_timeouts() -> None:
    """noop estimates 0.1 s and shell 5 s; an untrusted shell step is modify (fast: 8 s a step, 15 s in all)."""
    assert parse_plan(plan(step())).estimated_s == pytest.approx(0.1)
    assert sla(shell("a")) is SlaClass.FAST
    assert sla(shell("a"), shell("b")) is SlaClass.FAST
    assert sla(shell("a"), shell("b"), shell("c")) is SlaClass.MEDIUM


def _table(**changes: PolicyValues) -> dict[tuple[SlaClass, ActionClass], PolicyValues]:
    """The seeded policy rows, with ``fast_read=PolicyValues(...)``-style changes."""
    table = dict(DEFAULT_POLICIES)
    for key, values in changes.items():
        sla_name, cls_name = key.split("_")
        table[(SlaClass(sla_name), ActionClass(cls_name))] = values
    return table


def test_the_current_policy_rows_decide_not_the_seeded_numbers() -> None:
    """An admin who raised fast read's step limit to 9 s makes a declared 9 s fast; one who lowered it, medium."""
    parsed = parse_plan(plan(step(timeout_s=9)))
    raised = reclassify(parsed, UNTRUSTED, _table(fast_read=PolicyValues(9, 20, 30, 300, 3)))
    assert (raised.sla_class, raised.step_limit_s(raised.steps[0]), raised.execution_limit_s) == (SlaClass.FAST, 9, 20)
    five = reclassify(parse_plan(plan(step(timeout_s=5))), UNTRUSTED, _table(fast_read=PolicyValues(4, 10, 15, 300, 3)))
    assert five.sla_class is SlaClass.MEDIUM and five.step_limit_s(five.steps[0]) == 5


def test_a_declared_timeout_no_class_can_hold_is_refused_with_the_limit() -> None:
    parsed = parse_plan(plan(step("a"), shell("b", timeout_s=400)))
    with pytest.raises(InvalidInput) as info:
        reclassify(parsed, UNTRUSTED, DEFAULT_POLICIES)
    assert str(info.value) == "steps[1].timeout_s: 400 exceeds the longest step limit for modify (120 s)"
    longer = _table(long_modify=PolicyValues(400, 900, 960, 3600, 3))
    assert reclassify(parsed, UNTRUSTED, longer).sla_class is SlaClass.LONG  # the rows decide


def test_rows_no_single_class_satisfies_are_refused() -> None:
    """Policy rows that shrink as the class grows: each timeout fits some class, no class fits both."""
    odd = _table(fast_read=PolicyValues(50, 100, 100, 300, 3), long_read=PolicyValues(10, 300, 360, 1800, 3))
    parsed = parse_plan(plan(step("a", timeout_s=50), shell("b", timeout_s=100)))  # fast read only; long modify only
    with pytest.raises(InvalidInput, match="no SLA class holds every declared timeout_s"):
        reclassify(parsed, UNTRUSTED, odd)


def test_fast_level_0_plan_runs_immediately() -> None:
    parsed = parse_plan(plan(step()))
    assert (parsed.sla_class, parsed.approval_level) == (SlaClass.FAST, 0)
    assert parsed.execution_mode() is ExecutionMode.IMMEDIATE


def test_background_when_asked_even_for_a_fast_level_0_plan() -> None:
    assert parse_plan(plan(step())).execution_mode(background=True) is ExecutionMode.BACKGROUND


@pytest.mark.parametrize("level", [1, 2, 3])
def test_never_immediate_at_level_1_or_more(level: int) -> None:
    parsed = parse_plan(plan(step(), approval_level=level))
    assert parsed.sla_class is SlaClass.FAST
    assert parsed.execution_mode() is ExecutionMode.BACKGROUND


def test_never_immediate_for_a_fast_modify_plan() -> None:
    parsed = parse_plan(plan(shell(params={"shell": True}, timeout_s=1)))
    assert parsed.sla_class is SlaClass.FAST
    assert parsed.execution_mode() is ExecutionMode.BACKGROUND


@pytest.mark.parametrize("timeout", [10, 30])
def test_never_immediate_for_a_non_fast_plan(timeout: int) -> None:
    parsed = parse_plan(plan(step(timeout_s=timeout)))
    assert parsed.approval_level == 0
    assert parsed.execution_mode() is ExecutionMode.BACKGROUND
    assert parsed.execution_mode(background=True) is ExecutionMode.BACKGROUND
