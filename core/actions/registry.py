"""The action registry: name → ActionType. What a plan step may name in ``action``.

An ActionType declares what the planner needs before anything runs: its params schema, its default
action class, whether it is idempotent, and an estimate of its duration (for the SLA class). The
runners' ``run``/``dry_run`` join these classes with the job runner.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

from core.actions.context import ActionResult, StepContext
from db.enums import ActionClass, Connection

if TYPE_CHECKING:
    from core.risk import Trust

log = logging.getLogger(__name__)


class NoParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ActionType:
    """Base of every action type. Subclasses set the class attributes and may refine the hooks."""

    name: ClassVar[str]
    params_model: ClassVar[type[BaseModel]] = NoParams
    default_class: ClassVar[ActionClass] = ActionClass.DEPLOY
    idempotent: ClassVar[bool] = False
    default_estimate_s: ClassVar[float] = 5.0
    # Asset connections the action can run on; None = any (diagnostics like noop and sleep).
    connections: ClassVar[frozenset[Connection] | None] = None
    # The param holding a command line, if any: there an input is substituted inside one argv element, and a
    # string command is split into words before substitution (core/plan_inputs.py).
    command_param: ClassVar[str | None] = None

    @classmethod
    def shell_reads(cls, params: Mapping[str, Any]) -> bool:
        """Whether a string ``command_param`` in these raw params reaches a shell as text (no input may go in it).

        True unless the action says otherwise: splitting a string a shell reads would change what it means.
        """
        return True

    @classmethod
    def action_class(cls, params: BaseModel) -> ActionClass:
        """The action class these params imply on their own (a plan may raise it, never lower it)."""
        return cls.default_class

    @classmethod
    def declared_read(cls, params: BaseModel, trust: Trust, *, published: bool) -> bool:
        """Whether an admin's declaration makes these params ``read`` though ``action_class`` says more.

        ``trust`` holds the tenant's read-only argv prefixes; ``published`` is True when the step is, word for
        word, a step of a runbook an admin published. Never, by default: only an action whose risk its params
        spell out (``shell``'s argv) can be vouched for (DESIGN §13).
        """
        return False

    @classmethod
    def estimate_s(cls, params: BaseModel) -> float:
        """Expected duration in seconds when the step gives no ``timeout_s``."""
        return cls.default_estimate_s

    def run(self, ctx: StepContext) -> ActionResult:
        """Do the work. Must return promptly once ``ctx.should_stop()`` (cancel, timeout, shutdown)."""
        raise NotImplementedError(f"action {self.name!r} cannot run")

    def dry_run(self, ctx: StepContext) -> ActionResult:
        """Say precisely what ``run`` would do, touching nothing (secrets stay masked)."""
        ctx.output.write(
            f"would run {self.name} on {ctx.asset.name} with {ctx.shown(ctx.params)}\n"
        )  # masked, then repr'd
        return ActionResult(ok=True)


_registry: dict[str, type[ActionType]] = {}
_plugins_loaded = False
_plugins_lock = threading.Lock()
PLUGIN_GROUP = "opsconductor.actions"


def register(action: type[ActionType]) -> type[ActionType]:
    """Register an action type under its ``name`` (usable as a class decorator)."""
    _registry[action.name] = action
    return action


def get_action(name: str) -> type[ActionType] | None:
    """The action type called ``name``, or None. The first lookup loads the installed plugins."""
    _ensure_plugins()
    return _registry.get(name)


def known_actions() -> Mapping[str, type[ActionType]]:
    """Every registered action type by name (plugins included)."""
    _ensure_plugins()
    return dict(_registry)


def _ensure_plugins() -> None:
    # Lazily, once per process: every process that validates or runs plans (CLI, console, workers) gets
    # the same actions without a start-up hook in each, and importing core stays free of that work.
    global _plugins_loaded
    if _plugins_loaded:
        return
    with _plugins_lock:
        if not _plugins_loaded:
            _plugins_loaded = True
            load_plugins()


def load_plugins(group: str = PLUGIN_GROUP) -> list[str]:
    """Register third-party action types from entry points; returns the names loaded.

    A plugin that fails to import, is not an ActionType, or takes a built-in's name is skipped with a
    warning: one broken package must not take the engine down.
    """
    loaded: list[str] = []
    for ep in entry_points(group=group):
        try:
            action: Any = ep.load()
        except Exception as exc:  # noqa: BLE001  any import error of third-party code
            log.warning("action plugin %s could not be loaded: %s: %s", ep.name, type(exc).__name__, exc)
            continue
        if not (isinstance(action, type) and issubclass(action, ActionType) and getattr(action, "name", None)):
            log.warning("action plugin %s is not an ActionType subclass with a name; skipped", ep.name)
            continue
        if action.name in _registry and _registry[action.name] is not action:
            log.warning("action plugin %s wants the name %r, which is taken; skipped", ep.name, action.name)
            continue
        register(action)
        loaded.append(action.name)
    if loaded:
        log.info("action plugins loaded: %s", ", ".join(loaded))
    return loaded
