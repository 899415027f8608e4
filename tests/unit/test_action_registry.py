"""The action registry and the built-in action types (DESIGN §8): names, classes, params, estimates, plugins."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

from core.actions import registry
from core.actions.noop import Noop, NoopParams
from core.actions.registry import ActionType, get_action, known_actions, load_plugins, register
from core.actions.shell import Shell, ShellParams
from core.actions.sleep import Sleep, SleepParams
from core.errors import InvalidInput
from core.plans import parse_plan
from core.risk import UNTRUSTED, Trust
from db.enums import ActionClass, Connection


@pytest.fixture
def cleanup_registry() -> Iterator[list[str]]:
    """Names appended to the yielded list are removed from the registry after the test."""
    names: list[str] = []
    yield names
    for name in names:
        registry._registry.pop(name, None)


def one_step_plan(action: str, params: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    return {"name": "p", "steps": [{"name": "s", "action": action, "target": "t", "params": params or {}, **fields}]}


def refused(source: Any, **kwargs: Any) -> InvalidInput:
    """The InvalidInput that parsing ``source`` raises (fails the test if it parses)."""
    with pytest.raises(InvalidInput) as info:
        parse_plan(source, **kwargs)
    return info.value


# --- Built-ins ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "cls", "default_class", "idempotent"),
    [
        ("noop", Noop, ActionClass.READ, True),
        ("sleep", Sleep, ActionClass.READ, True),
        ("shell", Shell, ActionClass.MODIFY, False),
    ],
)
def test_builtins_are_registered_with_class_and_idempotence(
    name: str, cls: type[ActionType], default_class: ActionClass, idempotent: bool
) -> None:
    assert get_action(name) is cls
    assert cls.name == name
    assert cls.default_class is default_class
    assert cls.idempotent is idempotent
    assert name in known_actions()


def test_shell_runs_only_on_local_assets_and_diagnostics_anywhere() -> None:
    assert Shell.connections == frozenset({Connection.LOCAL})
    assert Noop.connections is None
    assert Sleep.connections is None


@pytest.mark.parametrize("name", ["nope", "", "Shell", "shell "])
def test_unknown_action_name_is_none(name: str) -> None:
    assert get_action(name) is None


def test_known_actions_is_a_copy() -> None:
    snapshot = known_actions()
    snapshot.pop("noop")  # type: ignore[attr-defined]
    assert get_action("noop") is Noop


# --- register -----------------------------------------------------------------------------------------------


class RebootParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    delay_s: int = 0


class Reboot(ActionType):
    name = "test_reboot"
    params_model = RebootParams
    default_class = ActionClass.MODIFY
    default_estimate_s = 42.0


def test_register_makes_a_custom_action_usable_in_a_plan(cleanup_registry: list[str]) -> None:
    with pytest.raises(InvalidInput) as before:
        parse_plan(one_step_plan("test_reboot"))
    assert before.value.path == "steps[0].action"

    cleanup_registry.append("test_reboot")
    assert register(Reboot) is Reboot
    assert get_action("test_reboot") is Reboot

    parsed = parse_plan(one_step_plan("test_reboot", {"delay_s": 3}))
    step = parsed.steps[0]
    assert step.params == {"delay_s": 3}
    assert step.action_class is ActionClass.MODIFY
    assert step.estimate_s == 42.0
    assert parsed.approval_level == 1


def test_a_custom_actions_params_schema_is_enforced(cleanup_registry: list[str]) -> None:
    cleanup_registry.append("test_reboot")
    register(Reboot)
    exc = refused(one_step_plan("test_reboot", {"delay_s": "soon", "force": True}))
    assert {p for p, _m in exc.issues} == {"steps[0].params.delay_s", "steps[0].params.force"}


def test_registered_action_appears_in_unknown_action_messages(cleanup_registry: list[str]) -> None:
    cleanup_registry.append("test_reboot")
    register(Reboot)
    exc = refused(one_step_plan("telnet"))
    assert "test_reboot" in str(exc)


def test_register_works_as_a_class_decorator_and_cleanup_removes_it(cleanup_registry: list[str]) -> None:
    cleanup_registry.append("test_decorated")

    @register
    class Decorated(ActionType):
        name = "test_decorated"

    assert get_action("test_decorated") is Decorated


def test_an_action_that_declares_no_class_is_deploy_with_no_params(cleanup_registry: list[str]) -> None:
    """DESIGN §5: an unknown class is treated as deploy, the highest."""
    cleanup_registry.append("test_bare")

    @register
    class Bare(ActionType):
        name = "test_bare"

    assert Bare.default_class is ActionClass.DEPLOY
    assert Bare.idempotent is False
    parsed = parse_plan(one_step_plan("test_bare"))
    assert parsed.action_class is ActionClass.DEPLOY
    assert parsed.approval_level == 2
    assert parsed.steps[0].estimate_s == 5.0
    exc = refused(one_step_plan("test_bare", {"x": 1}))
    assert exc.issues == [("steps[0].params.x", "unknown field")]


# --- load_plugins ---------------------------------------------------------------------------------------------


def test_load_plugins_without_entry_points_registers_nothing() -> None:
    before = known_actions()
    assert load_plugins("opsconductor.actions.none-installed-for-tests") == []
    assert known_actions() == before


def test_load_plugins_default_group_in_this_environment_registers_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []

    def no_entry_points(*, group: str) -> list[Any]:
        seen.append(group)
        return []

    monkeypatch.setattr(registry, "entry_points", no_entry_points)
    before = known_actions()
    assert load_plugins() == []
    assert seen == ["opsconductor.actions"]
    assert known_actions() == before


def test_load_plugins_registers_each_entry_point(monkeypatch: pytest.MonkeyPatch, cleanup_registry: list[str]) -> None:
    class FakeEntryPoint:
        def load(self) -> type[ActionType]:
            return Reboot

    monkeypatch.setattr(registry, "entry_points", lambda *, group: [FakeEntryPoint()])
    cleanup_registry.append("test_reboot")
    assert load_plugins() == ["test_reboot"]
    assert get_action("test_reboot") is Reboot


# --- shell params ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["", "   ", "\t\n"])
def test_shell_empty_command_is_refused(command: str) -> None:
    with pytest.raises(ValidationError, match="must not be empty"):
        ShellParams.model_validate({"command": command})


@pytest.mark.parametrize("command", ["echo 'unterminated", 'echo "half', "echo 'a' \"b"])
def test_shell_unbalanced_quotes_are_refused(command: str) -> None:
    with pytest.raises(ValidationError, match="No closing quotation"):
        ShellParams.model_validate({"command": command})


def test_shell_balanced_quotes_are_accepted() -> None:
    assert ShellParams.model_validate({"command": "echo 'a b' \"c d\""}).command == "echo 'a b' \"c d\""


def test_shell_list_command_is_accepted_as_is() -> None:
    params = ShellParams.model_validate({"command": ["echo", "it's", "fine; rm -rf /"]})
    assert params.command == ["echo", "it's", "fine; rm -rf /"]
    assert params.shell is False


@pytest.mark.parametrize("command", [[], [""], ["echo", ""]])
def test_shell_empty_list_or_empty_argument_is_refused(command: list[str]) -> None:
    with pytest.raises(ValidationError, match="non-empty list of non-empty strings"):
        ShellParams.model_validate({"command": command})


@pytest.mark.parametrize("command", ["echo a\x00b", ["echo", "a\x00b"]])
def test_shell_nul_is_refused_in_text_and_in_list_commands(command: str | list[str]) -> None:
    with pytest.raises(ValidationError, match="must not contain NUL"):
        ShellParams.model_validate({"command": command})


def test_shell_param_errors_carry_the_step_path_in_a_plan() -> None:
    exc = refused(one_step_plan("shell", {"command": "echo 'x"}))
    assert exc.path == "steps[0].params.command"


def test_shell_class_is_modify_unless_an_admin_vouches_and_never_read_with_shell_true() -> None:
    """DESIGN §13: on its own every command is `modify`; a declared prefix or a publication makes it `read`,
    except with `shell: true` (a shell interprets its input)."""
    trust = Trust.of([["ls"]])
    assert Shell.action_class(ShellParams(command="ls")) is ActionClass.MODIFY
    assert Shell.declared_read(ShellParams(command="ls -la"), trust, published=False)
    assert not Shell.declared_read(ShellParams(command="ls"), UNTRUSTED, published=False)
    piped = ShellParams.model_validate({"command": "ls | wc -l", "shell": True})
    assert Shell.action_class(piped) is ActionClass.MODIFY
    assert not Shell.declared_read(piped, trust, published=False)
    assert not Shell.declared_read(piped, trust, published=True)


def test_shell_defaults() -> None:
    params = ShellParams(command="ls")
    assert (params.shell, params.env, params.cwd, params.stdin) == (False, {}, None, None)
    assert Shell.estimate_s(params) == 5.0


# --- sleep and noop ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seconds", [0, 0.25, 7.5, 86400])
def test_sleep_estimate_is_its_seconds(seconds: float) -> None:
    assert Sleep.estimate_s(SleepParams(seconds=seconds)) == seconds


@pytest.mark.parametrize(
    "params", [{}, {"seconds": -1}, {"seconds": 86401}, {"seconds": "x"}, {"seconds": 1, "extra": 2}]
)
def test_sleep_bad_params_are_refused(params: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        SleepParams.model_validate(params)


def test_sleep_class_is_read() -> None:
    assert Sleep.action_class(SleepParams(seconds=1)) is ActionClass.READ


def test_noop_accepts_any_params_and_keeps_them() -> None:
    params = NoopParams.model_validate({"a": 1, "b": {"c": [1, 2]}})
    assert params.model_dump() == {"a": 1, "b": {"c": [1, 2]}}
    assert Noop.action_class(params) is ActionClass.READ
    assert Noop.estimate_s(params) == pytest.approx(0.1)
