"""Plans (DESIGN §5): parse, validate with path-precise errors, canonicalise, hash, derive.

Pure functions: nothing here touches the database. Target names are resolved to asset ids by the
caller (core/usecases/submission.py), which passes the mapping to ``canonical_plan``.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from itertools import accumulate
from typing import Annotated, Any, Protocol

import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from core import plan_inputs
from core.actions import registry
from core.approval_levels import APPROVAL_FLOOR
from core.errors import InvalidInput
from core.plan_hash import canonical_json as canonical_json  # re-exported: the hash is part of what plans are
from core.plan_hash import plan_hash as plan_hash
from core.policy_limits import DEFAULT_POLICIES, effective_step_s
from core.risk import UNTRUSTED, Trust
from core.safety.credentials import find_literal_credentials, find_malformed_refs, secret_refs
from core.schemas import PlanInputView
from db.enums import ActionClass, ExecutionMode, SlaClass, StepPhase

MAX_STEPS = 200
WIDE_FANOUT_MAX_LEVEL = 2  # a wide fan-out never asks for level 3 (its per-step gates do not fan out)
MAX_BYTES = 256 * 1024


class Caps(Protocol):
    """The two numbers of a policy row that bound a run: a step's limit and the execution's."""

    @property
    def step_s(self) -> int: ...

    @property
    def execution_s(self) -> int: ...


# The policy rows by (sla class, action class): the server passes the current rows (``policy_table`` of
# core/usecases/intake.py); without them a plan is judged by the seeded numbers, a guess the server
# derives again.
PolicyTable = Mapping[tuple[SlaClass, ActionClass], Caps]


class TargetSelector(BaseModel):
    """A fan-out step's assets (DESIGN §14): those carrying every tag of ``tags``, and those named in ``names``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    tags: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(default_factory=list, max_length=20)
    names: list[Annotated[str, Field(min_length=1, max_length=128)]] = Field(default_factory=list, max_length=500)


class StepSpec(BaseModel):
    """One step as written in the plan: one ``target``, or a fan-out over ``targets`` (core/plan_fanout.py).

    Which of the two is given, and the fan-out limits (a count, or a percentage of the targets: ``"25%"``),
    are checked by ``_plan`` and core/plan_fanout.py, where the messages can name their paths.
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=200)
    action: str = Field(min_length=1, max_length=64)
    target: str | None = Field(default=None, min_length=1, max_length=128)
    targets: TargetSelector | None = None
    max_concurrency: StrictInt | str | None = None
    max_errors: StrictInt | str | None = None
    action_class: ActionClass | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    timeout_s: int | None = Field(default=None, gt=0, le=86400)

    @property
    def asset(self) -> str:
        """The step's one asset (a fan-out step has one per target once expanded: core/plan_fanout.py)."""
        assert self.target is not None, "a fan-out step is expanded before its target is read"
        return self.target


class PlanSpec(BaseModel):
    """A plan as written (YAML or JSON)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=4000)
    approval_level: int | None = Field(default=None, ge=0, le=3)
    continue_on_error: bool = False
    # Requested priority (DESIGN §14, core/priority.py), up to the tenant's cap: added to the SLA class's base.
    priority: int = Field(default=0, ge=0, le=9)
    steps: list[StepSpec] = Field(min_length=1)
    # Rollback (DESIGN §14): run, on the same safety path, when a main step fails for good or times out, or
    # when the execution is cancelled (core/engine/rollback.py). Covered by the hash like ``steps``.
    on_failure: list[StepSpec] = Field(default_factory=list)
    on_cancel: list[StepSpec] = Field(default_factory=list)


@dataclass(frozen=True)
class FanOut:
    """Where a step expanded from a fan-out sits in it (core/plan_fanout.py): the written step's name, this
    target's place among its ``of`` targets, and the limits resolved to counts. In the canonical plan (hashed)."""

    step: str
    position: int
    of: int
    max_concurrency: int
    max_errors: int

    def canonical(self) -> dict[str, Any]:
        """The form kept in the hashed plan (and read back by core/plan_phases.py)."""
        return {
            "step": self.step,
            "position": self.position,
            "of": self.of,
            "max_concurrency": self.max_concurrency,
            "max_errors": self.max_errors,
        }


@dataclass(frozen=True)
class PlannedStep:
    """A validated step: its spec, the action's normalised params, and its effective action class."""

    index: int
    spec: StepSpec
    params: dict[str, Any]
    action_class: ActionClass
    estimate_s: float
    # The validated params model: deriving the class again under the tenant's trust (``reclassify``) needs
    # it, and keeping it spares a second validation of the params.
    model: BaseModel | None = field(default=None, repr=False, compare=False)
    # Which list it is in, and its place there: a rollback step's ``index`` follows the main steps
    # (core/plan_phases.py), its errors name its own list (``on_failure[0].target``).
    phase: StepPhase = StepPhase.MAIN
    position: int | None = None
    # Set on each step a fan-out step was expanded into, one per target (core/plan_fanout.py).
    fanout: FanOut | None = None

    @property
    def path(self) -> str:
        """Where the step is written in the plan: ``steps[2]``, ``on_failure[0]``."""
        key = "steps" if self.phase is StepPhase.MAIN else self.phase.value
        return f"{key}[{self.index if self.position is None else self.position}]"


@dataclass(frozen=True)
class Plan:
    """A validated plan and what the server derives from it (action class, level, SLA class)."""

    spec: PlanSpec
    steps: tuple[PlannedStep, ...]
    secret_names: frozenset[str]
    limits: PolicyTable = field(default_factory=lambda: DEFAULT_POLICIES, repr=False)
    # Declared inputs (core/plan_inputs.py): the values bound (None: the plan declares none), the asset inputs
    # for the submit to check in the tenant's inventory, and the steps that referenced an input.
    inputs: Mapping[str, Any] | None = None
    input_assets: tuple[tuple[str, str], ...] = ()
    templated: frozenset[int] = frozenset()
    # The ``on_failure`` then ``on_cancel`` steps, their indices after the main steps'.
    rollback: tuple[PlannedStep, ...] = ()
    # A fan-out to at least the tenant's threshold of assets: its level rises by one (core/plan_fanout.py).
    wide: bool = False

    @property
    def all_steps(self) -> tuple[PlannedStep, ...]:
        """Every step, rollback included, in step_index order."""
        return self.steps + self.rollback

    def phase_steps(self, phase: StepPhase) -> tuple[PlannedStep, ...]:
        """The steps of one phase."""
        return tuple(s for s in self.all_steps if s.phase is phase)

    @property
    def action_class(self) -> ActionClass:
        """The highest action class of any step, rollback steps included (they run under the same approval)."""
        return max((s.action_class for s in self.all_steps), key=lambda c: c.rank)

    @property
    def approval_level(self) -> int:
        """max(requested, floor of the plan's action class): a plan may raise its level, never lower it. A wide
        fan-out raises the floor by one, up to 2 (DESIGN §14: the level rises with the number of targets)."""
        floor = APPROVAL_FLOOR[self.action_class]
        if self.wide:
            floor = min(WIDE_FANOUT_MAX_LEVEL, floor + 1)
        return max(self.spec.approval_level or 0, floor)

    @property
    def estimated_s(self) -> float:
        """Sum of the main steps' timeouts, or the actions' estimates where a step gives none (a rollback has
        its own time, added when it starts: core/engine/rollback.py). A fan-out's targets run
        ``max_concurrency`` at a time: they count as that many waves of its step."""
        total = 0.0
        for step in self.steps:
            fan = step.fanout
            if fan is None:
                total += step.estimate_s
            elif fan.position == 0:
                total += step.estimate_s * -(-fan.of // max(1, fan.max_concurrency))
        return total

    @property
    def sla_class(self) -> SlaClass:
        """The smallest SLA class whose limits hold the plan (DESIGN §5), under ``limits``:

        every step's timeout (or estimate) within the step limit for its action class, and the plan's
        estimate below the execution limit for the plan's class. If none holds it all, the largest class
        that holds every declared timeout (one that none holds was refused: ``limit_issues``).
        """
        estimate, top = self.estimated_s, self.action_class
        for sla in SlaClass:
            steps_fit = all(s.estimate_s <= self.limits[(sla, s.action_class)].step_s for s in self.all_steps)
            if steps_fit and estimate < self.limits[(sla, top)].execution_s:
                return sla
        holding = [sla for sla in SlaClass if not _over_cap(self.all_steps, self.limits, sla)]
        return holding[-1] if holding else SlaClass.LONG

    def step_limit_s(self, step: PlannedStep) -> int:
        """The step's effective timeout in the plan's SLA class: its own, capped by the policy (as claims do)."""
        return effective_step_s(step.spec.timeout_s, self.limits[(self.sla_class, step.action_class)].step_s)

    @property
    def execution_limit_s(self) -> int:
        """The execution's limit of running time in the plan's SLA class."""
        return self.limits[(self.sla_class, self.action_class)].execution_s

    def execution_mode(self, *, background: bool = False) -> ExecutionMode:
        """``immediate`` only for fast level-0 plans, and only if the caller did not ask for background."""
        if not background and self.sla_class is SlaClass.FAST and self.approval_level == 0:
            return ExecutionMode.IMMEDIATE
        return ExecutionMode.BACKGROUND


def parse_plan(
    source: str | bytes | Mapping[str, Any],
    *,
    max_steps: int = MAX_STEPS,
    max_bytes: int = MAX_BYTES,
    trust: Trust = UNTRUSTED,
    inputs: Mapping[str, Any] | None = None,
    template: bool = False,
) -> Plan:
    """Parse and validate a plan from YAML/JSON text or an already-decoded mapping.

    Step classes are derived under ``trust``, the tenant's declarations (core/risk.py); without it no step
    of an action like ``shell`` is ``read``. The server re-derives under the tenant's trust (``reclassify``).

    Args:
        inputs: values for the plan's declared ``inputs:``, substituted before validation (core/plan_inputs.py).
        template: a runbook being saved or listed: inputs without a value take a sample (never submitted).

    Raises:
        InvalidInput: with one (path, message) per problem, e.g. ``steps[2].params.command: required``,
            ``inputs.port: must be an integer``.
    """
    data = _decode(source, max_bytes)
    bound = None
    if "inputs" in data or inputs:  # plans without inputs pay for this test only
        data, bound = plan_inputs.bind(data, inputs, template=template, max_bytes=max_bytes)
    count = sum(len(v) for k in ("steps", "on_failure", "on_cancel") if isinstance(v := data.get(k), list))
    if count > max_steps:
        raise InvalidInput(f"{count} steps (rollback included); a plan may have at most {max_steps}", path="steps")
    try:
        spec = PlanSpec.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(_issues(exc, prefix="")) from None
    plan = _plan(spec, trust)
    if bound is None:
        return plan
    return replace(plan, inputs=bound.values, input_assets=bound.assets, templated=bound.templated)


def reclassify(plan: Plan, trust: Trust, limits: PolicyTable | None = None) -> Plan:
    """The same plan with its step classes derived under ``trust`` (the tenant's declarations).

    With ``limits`` (the current policy rows, ``policy_table``) its SLA class is derived from them, and a
    declared timeout that no class can hold is refused (``limit_issues``).

    Raises:
        InvalidInput: ``steps[1].timeout_s: 400 exceeds the longest step limit for modify (120 s)``.
    """
    planned = _reclassified(plan, trust)
    if limits is None:
        return planned
    issues = limit_issues(planned.all_steps, limits)
    if issues:
        raise InvalidInput(issues)
    return replace(planned, limits=limits)


def _reclassified(plan: Plan, trust: Trust) -> Plan:
    """``plan`` with each step's class derived under ``trust`` from its kept params model (no re-validation)."""
    steps: list[PlannedStep] = []
    for step in plan.all_steps:
        action = registry.get_action(step.spec.action)
        if step.model is None or action is None:  # a plan built by hand: validate it from its spec
            fresh = _plan(plan.spec, trust)
            return replace(
                plan,
                steps=fresh.steps,
                rollback=fresh.rollback,
                secret_names=fresh.secret_names,
                limits=DEFAULT_POLICIES,
            )
        cls = step_class(action, step.model, step.params, step.spec, trust)
        steps.append(replace(step, action_class=cls))
    main = len(plan.steps)
    return replace(plan, steps=tuple(steps[:main]), rollback=tuple(steps[main:]), limits=DEFAULT_POLICIES)


def limit_issues(steps: tuple[PlannedStep, ...], limits: PolicyTable) -> list[tuple[str, str]]:
    """(path, message) for each declared timeout no SLA class can hold, naming the longest limit there is."""
    issues: list[tuple[str, str]] = []
    for step in steps:
        longest = max(limits[(sla, step.action_class)].step_s for sla in SlaClass)
        if step.spec.timeout_s is not None and step.spec.timeout_s > longest:
            message = f"{step.spec.timeout_s} exceeds the longest step limit for {step.action_class} ({longest} s)"
            issues.append((f"{step.path}.timeout_s", message))
    if not issues and all(_over_cap(steps, limits, sla) for sla in SlaClass):
        # Each fits some class, but no one class holds them all (policy rows that shrink as the class grows).
        issues.append(("steps", "no SLA class holds every declared timeout_s under the current policies"))
    return issues


def _over_cap(steps: tuple[PlannedStep, ...], limits: PolicyTable, sla: SlaClass) -> bool:
    """True if a declared timeout is above ``sla``'s step limit for its step's class."""
    return any(s.spec.timeout_s is not None and s.spec.timeout_s > limits[(sla, s.action_class)].step_s for s in steps)


def _decode(source: str | bytes | Mapping[str, Any], max_bytes: int) -> dict[str, Any]:
    if isinstance(source, Mapping):
        _check_tree(source, max_bytes)  # before json.dumps, which recurses and follows cycles
        size = len(json.dumps(source, default=str).encode())
        if size > max_bytes:
            raise InvalidInput(f"plan is {size} bytes; the limit is {max_bytes}")
        return dict(source)
    raw = source.encode() if isinstance(source, str) else source
    if len(raw) > max_bytes:
        raise InvalidInput(f"plan is {len(raw)} bytes; the limit is {max_bytes}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("plan is not UTF-8 text") from None
    if not text.strip():
        raise InvalidInput("plan is empty")
    try:
        # JSON is a subset of YAML 1.2 in practice; one loader keeps error messages uniform.
        data = _load_json(text) if text.lstrip().startswith("{") else _load_yaml(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise InvalidInput(f"invalid YAML{where}: {problem}") from None
    except ValueError as exc:  # a scalar the loaders cannot convert, e.g. an integer of over 4300 digits
        raise InvalidInput(f"invalid value: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidInput(f"a plan must be a mapping with name and steps, not {type(data).__name__}")
    _check_tree(data, max_bytes)
    return data


# Bounded parsing (issue 13): the byte limit holds only if the parsed tree cannot be larger than its text,
# so YAML aliases (a 441-byte "billion laughs" expanded to 3.7 MB) are refused, and nesting is capped
# before the recursive parts (PyYAML's composer, json's decoder, pydantic, the credential walk) see it.
MAX_DEPTH = 32
_JSON_TYPES = (str, int, float, bool, type(None))


def _load_json(text: str) -> Any:
    depth = max(
        accumulate(_JSON_NESTING.get(c, 0) for c in _JSON_BRACKETS.findall(_JSON_STRINGS.sub("", text))), default=0
    )
    if depth > MAX_DEPTH:
        raise InvalidInput(f"nested {depth} levels deep; a plan may nest at most {MAX_DEPTH}")
    return json.loads(text)


_JSON_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_JSON_BRACKETS = re.compile(r"[\[\]{}]")
_JSON_NESTING = {"[": 1, "{": 1, "]": -1, "}": -1}


def plan_yaml(plan: Mapping[str, Any]) -> str:
    """A plan mapping as YAML a submit reads back the same (keys in the plan's order; no anchors), to edit."""
    return yaml.safe_dump(dict(plan), sort_keys=False, allow_unicode=True, width=120)


def _load_yaml(text: str) -> Any:
    loader = _PlanLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


class _PlanLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses anchors and aliases and caps nesting, each with the path where it was.

    The cap is checked twice: by the scanner for flow collections (``[[[[…`` costs PyYAML time quadratic
    in the depth: 20 KB of ``[`` took a minute) and by the composer for every collection (its recursion).
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._segments: list[str] = []

    def fetch_flow_collection_start(self, token_class: Any) -> None:
        if self.flow_level >= MAX_DEPTH:  # the scanner runs ahead: the path is that of the enclosing node
            where = _where(self.get_mark())
            raise InvalidInput(f"{where}nested more than {MAX_DEPTH} levels deep", path=self._path())
        super().fetch_flow_collection_start(token_class)

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if isinstance(index, int):
            segment = f"[{index}]"
        elif isinstance(index, yaml.ScalarNode):
            segment = f".{index.value}"
        else:  # the document, or a mapping's key (a value's path is the key's)
            segment = "" if parent is None else ".<key>"
        self._segments.append(segment)
        try:
            event = self.peek_event()  # type: ignore[no-untyped-call]
            where = _where(event.start_mark)
            if isinstance(event, yaml.AliasEvent):
                raise InvalidInput(
                    f"{where}YAML aliases (*{event.anchor}) are not accepted: write the value out", path=self._path()
                )
            if getattr(event, "anchor", None) is not None:
                raise InvalidInput(f"{where}YAML anchors (&{event.anchor}) are not accepted", path=self._path())
            if isinstance(event, yaml.CollectionStartEvent) and len(self._segments) > MAX_DEPTH:
                raise InvalidInput(f"{where}nested more than {MAX_DEPTH} levels deep", path=self._path())
            return super().compose_node(parent, index)
        finally:
            self._segments.pop()

    def _path(self) -> str:
        return "".join(self._segments).lstrip(".")


def _where(mark: Any) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}: "


def _check_tree(data: Any, max_bytes: int) -> None:
    """Refuse a decoded plan that nests deeper than MAX_DEPTH, is not JSON-shaped, or has more nodes than bytes.

    Iterative (no recursion to exhaust); a cycle is infinitely deep, and shared sub-trees of a mapping
    passed in by a script count once per use, as they would when serialised.
    """
    stack: list[tuple[Any, str, int]] = [(data, "", 1)]
    nodes = 0
    while stack:
        value, path, depth = stack.pop()
        nodes += 1
        if nodes > max_bytes:
            raise InvalidInput(f"plan has more than {max_bytes} values; the limit is {max_bytes} bytes")
        if isinstance(value, Mapping):
            children = [(v, f"{path}.{k}" if path else str(k), k) for k, v in value.items()]
        elif isinstance(value, list | tuple):
            children = [(v, f"{path}[{i}]", i) for i, v in enumerate(value)]
        else:
            if not isinstance(value, _JSON_TYPES):
                kind = type(value).__name__
                raise InvalidInput(f"a {kind} value is not accepted here; quote it as a string", path=path)
            continue
        if depth > MAX_DEPTH:
            raise InvalidInput(f"nested more than {MAX_DEPTH} levels deep", path=path)
        for child, child_path, key in children:
            if isinstance(value, Mapping) and not isinstance(key, str):
                raise InvalidInput(f"keys must be strings, not {type(key).__name__}", path=child_path)
            stack.append((child, child_path, depth + 1))


def _plan(spec: PlanSpec, trust: Trust) -> Plan:
    issues: list[tuple[str, str]] = []
    seen: dict[str, str] = {}
    planned: list[PlannedStep] = []
    written = [
        (phase, key, position, step)
        for phase, key, steps in (
            (StepPhase.MAIN, "steps", spec.steps),
            (StepPhase.ON_FAILURE, "on_failure", spec.on_failure),
            (StepPhase.ON_CANCEL, "on_cancel", spec.on_cancel),
        )
        for position, step in enumerate(steps)
    ]
    for i, (phase, key, position, step) in enumerate(written):
        where = f"{key}[{position}]"
        if step.name in seen:  # unique across the lists: ``show`` and the trail name a step by it
            issues.append((f"{where}.name", f"duplicate of {seen[step.name]}.name ({step.name!r})"))
        seen.setdefault(step.name, where)
        issues.extend(_target_issues(step, where, phase))
        action = registry.get_action(step.action)
        if action is None:
            known = ", ".join(sorted(registry.known_actions()))
            issues.append((f"{where}.action", f"unknown action {step.action!r} (known: {known})"))
            continue
        literals = find_malformed_refs(step.params, f"{where}.params") + find_literal_credentials(
            step.params, f"{where}.params"
        )
        if literals:
            issues.extend(literals)
            continue
        try:
            params_model = action.params_model.model_validate(step.params)
        except ValidationError as exc:
            issues.extend(_issues(exc, prefix=f"{where}.params"))
            continue
        params = params_model.model_dump(mode="json")
        estimate = float(step.timeout_s) if step.timeout_s else action.estimate_s(params_model)
        cls = step_class(action, params_model, params, step, trust)
        planned.append(PlannedStep(i, step, params, cls, estimate, model=params_model, phase=phase, position=position))
    for label, text in (("name", spec.name), ("description", spec.description)):
        issues.extend(find_literal_credentials(text, label))
    if issues:
        raise InvalidInput(issues)
    names = frozenset(n for s in planned for n in secret_refs(s.params))
    main = tuple(s for s in planned if s.phase is StepPhase.MAIN)
    return Plan(spec=spec, steps=main, secret_names=names, rollback=tuple(planned[len(main) :]))


def _target_issues(step: StepSpec, where: str, phase: StepPhase) -> list[tuple[str, str]]:
    """(path, message) for a step that names no asset, both kinds, or fan-out limits without a fan-out."""
    if step.target is None and step.targets is None:
        return [(f"{where}.target", "required (one asset; or targets, for a fan-out)")]
    if step.target is not None and step.targets is not None:
        return [(f"{where}.targets", "give target (one asset) or targets (a fan-out), not both")]
    if step.targets is None:
        return [
            (f"{where}.{name}", "only for a fan-out step (targets)")
            for name in ("max_concurrency", "max_errors")
            if getattr(step, name) is not None
        ]
    if phase is not StepPhase.MAIN:
        return [(f"{where}.targets", "a rollback step runs on one target; fan out in steps")]
    if not step.targets.tags and not step.targets.names:
        return [(f"{where}.targets", "give tags, names or both")]
    return []


def step_class(
    action: type[registry.ActionType], model: BaseModel, params: dict[str, Any], step: StepSpec, trust: Trust
) -> ActionClass:
    """The effective class of one step (DESIGN §5, §13): the highest of

    - what the action's params imply, or ``read`` where an admin's declaration vouches for them;
    - the class a published runbook gives this very step (publication vouches for the step as written);
    - the class the step asks for (a plan may raise, never lower);
    - ``modify`` if the step references a secret (whatever a secret unlocks is not a read).
    """
    published = trust.published_class(step.action, params)
    vouched = action.declared_read(model, trust, published=published is not None)
    classes = [
        ActionClass.READ if vouched else action.action_class(model),
        published or ActionClass.READ,
        step.action_class or ActionClass.READ,
        ActionClass.MODIFY if secret_refs(params) else ActionClass.READ,
    ]
    return max(classes, key=lambda c: c.rank)


def _issues(exc: ValidationError, *, prefix: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for err in exc.errors(include_url=False, include_input=False):
        path = prefix
        for part in err["loc"]:
            if isinstance(part, int):
                path += f"[{part}]"
            elif part in {"str", "int", "list[str]"}:
                continue  # a union member's name, not a path segment
            else:
                path += f".{part}" if path else str(part)
        out.append((path, _message(err["type"], err["msg"])))
    return out


def _message(kind: str, msg: str) -> str:
    return {
        "missing": "required",
        "extra_forbidden": "unknown field",
    }.get(kind, msg[0].lower() + msg[1:] if msg else kind)


def canonical_plan(plan: Plan, asset_ids: Mapping[str, str]) -> dict[str, Any]:
    """The canonical form: defaults filled, classes made effective, targets as asset ids, no volatile fields.

    Two plans that mean the same thing (keys reordered, defaults spelt out) have the same canonical form.
    The input plan is not mutated. A plan that declares inputs records the values it was bound with
    (``inputs``; a secret_ref as its reference): the hash covers them as it covers the steps they filled.
    """
    canonical = {
        "name": plan.spec.name,
        "description": plan.spec.description,
        "approval_level": plan.approval_level,
        "continue_on_error": plan.spec.continue_on_error,
        "steps": [_canonical_step(s, asset_ids) for s in plan.steps],
    }
    for phase in (StepPhase.ON_FAILURE, StepPhase.ON_CANCEL):
        # Only when declared: a plan without rollback keeps the canonical form (and hash) it always had.
        if steps := plan.phase_steps(phase):
            canonical[phase.value] = [_canonical_step(s, asset_ids) for s in steps]
    if plan.spec.priority:  # only when requested: a plan without one keeps its canonical form (and hash)
        canonical["priority"] = plan.spec.priority
    if plan.inputs is not None:
        canonical["inputs"] = dict(plan.inputs)
    return canonical


def _canonical_step(step: PlannedStep, asset_ids: Mapping[str, str]) -> dict[str, Any]:
    return {
        "name": step.spec.name,
        "action": step.spec.action,
        "target": asset_ids[step.spec.asset],
        "action_class": step.action_class.value,
        "params": copy.deepcopy(step.params),
        "timeout_s": step.spec.timeout_s,
    } | ({"fanout": step.fanout.canonical()} if step.fanout is not None else {})


def declared_inputs(source: str | bytes | Mapping[str, Any], *, max_bytes: int = MAX_BYTES) -> list[PlanInputView]:
    """The inputs a plan (YAML/JSON text or a mapping) declares, for a form to ask for; [] when it declares none.

    Only the declaration is validated (the steps are, when the plan is submitted or previewed with values).

    Raises:
        InvalidInput: the text does not decode, or the declaration is wrong (``inputs[0].type: …``).
    """
    data = _decode(source, max_bytes)
    return [PlanInputView.model_validate(spec.model_dump(mode="json")) for spec in plan_inputs.declared(data)]


def load_input_values(source: str | bytes, *, max_bytes: int = 64 * 1024) -> dict[str, Any]:
    """Input values from a YAML or JSON mapping (``--inputs-file``), parsed as plans are (no aliases, bounded).

    Raises:
        InvalidInput: not UTF-8, not YAML/JSON, not a mapping of names to strings, numbers or booleans.
    """
    raw = source.encode() if isinstance(source, str) else source
    if len(raw) > max_bytes:
        raise InvalidInput(f"{len(raw)} bytes; the limit is {max_bytes}", path="inputs")
    try:
        text = raw.decode("utf-8")
        data = _load_json(text) if text.lstrip().startswith("{") else _load_yaml(text)
    except UnicodeDecodeError:
        raise InvalidInput("not UTF-8 text", path="inputs") from None
    except (json.JSONDecodeError, yaml.YAMLError, ValueError):
        raise InvalidInput("not a YAML or JSON mapping", path="inputs") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InvalidInput(f"a mapping of input names to values, not {type(data).__name__}", path="inputs")
    issues = [
        (f"inputs.{k}", "must be a string, an integer or true/false (quote other values)")
        for k, v in data.items()
        if not isinstance(v, str | int | bool) or isinstance(v, float)
    ]
    issues += [("inputs", f"names are strings, not {type(k).__name__}") for k in data if not isinstance(k, str)]
    if issues:
        raise InvalidInput(issues)
    return data
