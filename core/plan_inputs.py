"""Plan inputs (DESIGN §14): declared ``inputs:``, the values given, and their substitution into the steps.

A plan (or a runbook) declares typed inputs; its steps say ``{{ input:NAME }}`` in ``params`` or ``target``
(and its ``name`` or ``description`` may). ``bind`` checks the values given against the declaration (paths
``inputs.NAME``) and returns the plan's mapping with every reference replaced, *before* the plan is validated
and canonicalised: the hash, the approval and the worker all see the concrete plan.

What an input can never do:
- inject a secret value: a value that looks like a credential is refused as a literal in a plan is, and a
  value holding ``{{`` or ``}}`` is refused (``{{ secret:x }}`` typed as a value never becomes a reference);
  only a ``secret_ref`` input makes a reference, to a secret named by its value, checked like any other;
- inject a shell, or extra words: in a command list an input is substituted inside its one element; a string
  command is split into words (shlex, as the action would split it) before substitution, and refused when a
  shell would read it as text (``shell: true``, ssh); no input goes into a command's ``stdin`` (a script);
- reach anything but text: values are one line, without control characters (C1 and U+2028 too) or invisible and
  bidi formatting characters, at most ``MAX_VALUE_CHARS``;
- hang the submit: a ``pattern`` is an RE2 expression, matched in time linear in the value (Python's ``re``
  backtracks: ``(a+)+$`` on 30 characters takes seconds, on 1024 forever), so backreferences and lookaround
  are refused where the input is declared.

Pure: no database. An ``asset`` input is checked against the tenant's inventory by the submit
(core/usecases/intake.py), from ``Bound.assets``. Imports the action registry and the credential patterns only.
"""

from __future__ import annotations

import re
import shlex
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.actions import registry
from core.errors import InvalidInput
from core.safety.credentials import SECRET_REF, find_literal_credentials

INPUT_REF = re.compile(r"\{\{\s*input:\s*([A-Za-z_][A-Za-z0-9_]{0,63})\s*\}\}")
_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
_SECRET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$")
_FENCE = re.compile(r"\x00([0-9]+)\x00")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_INPUTS = 50
MAX_VALUE_CHARS = 1024
_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


class InputType(StrEnum):
    STRING = "string"
    INT = "int"
    BOOL = "bool"
    CHOICE = "choice"
    ASSET = "asset"
    SECRET_REF = "secret_ref"  # noqa: S105  (a type's name, not a password)


class InputSpec(BaseModel):
    """One declared input. ``required`` (default true): it must have a value, given or its default."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(pattern=_NAME)
    type: InputType = InputType.STRING
    required: bool = True
    default: str | int | bool | None = None
    pattern: str | None = Field(default=None, max_length=512)
    description: str = Field(default="", max_length=1000)
    choices: list[str | int] | None = Field(default=None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _consistent(self) -> InputSpec:
        if (self.type is InputType.CHOICE) != (self.choices is not None):
            raise ValueError("choices: a choice input lists its choices; other types have none")
        if self.choices is not None and len({str(c) for c in self.choices}) != len(self.choices):
            raise ValueError("choices: each choice once")
        if self.pattern is not None:
            if self.type not in (InputType.STRING, InputType.ASSET):
                raise ValueError("pattern: only string and asset inputs take a pattern")
            _pattern(self.pattern)  # a ValueError naming what RE2 refuses
        if not self.required and self.default is None and self.type is not InputType.STRING:
            raise ValueError(f"default: an optional {self.type} input needs a default")
        return self


@dataclass(frozen=True)
class Bound:
    """What binding recorded: the values (secret_ref ones as references), the asset inputs, the templated steps."""

    values: dict[str, Any]
    assets: tuple[tuple[str, str], ...]  # (path, asset name) of each asset input, checked by the submit
    templated: frozenset[int]  # indices of the steps that referenced an input


def declared(data: Mapping[str, Any]) -> list[InputSpec]:
    """The plan's declared inputs (``inputs:`` of its decoded mapping; none: []).

    Raises:
        InvalidInput: ``inputs[1].type: …``, a duplicate name, too many.
    """
    raw = data.get("inputs")
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InvalidInput("a list of inputs, each with a name and a type", path="inputs")
    if len(raw) > MAX_INPUTS:
        raise InvalidInput(f"{len(raw)} inputs; a plan may declare at most {MAX_INPUTS}", path="inputs")
    specs: list[InputSpec] = []
    issues: list[tuple[str, str]] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(raw):
        try:
            spec = InputSpec.model_validate(item)
        except ValidationError as exc:
            issues.extend(_spec_issues(exc, f"inputs[{i}]"))
            continue
        if spec.name in seen:
            issues.append((f"inputs[{i}].name", f"duplicate of inputs[{seen[spec.name]}].name ({spec.name!r})"))
            continue
        seen[spec.name] = i
        # The declaration leaves the plan before its literals are checked: check it here (a default, a choice
        # or a description that looks like a credential is refused as anywhere in a plan).
        issues.extend(find_literal_credentials(item, f"inputs[{i}]"))
        if spec.default is not None:
            try:
                _value(spec, spec.default)
            except ValueError as exc:
                issues.append((f"inputs[{i}].default", str(exc)))
        specs.append(spec)
    if issues:
        raise InvalidInput(issues)
    return specs


def bind(
    data: Mapping[str, Any], given: Mapping[str, Any] | None, *, template: bool = False, max_bytes: int = 256 * 1024
) -> tuple[dict[str, Any], Bound]:
    """``data`` without ``inputs:`` and with every ``{{ input:NAME }}`` replaced (``data`` is not mutated).

    Args:
        given: the values by name (strings from a command line are converted to the declared type).
        template: validate the plan as a template (a runbook being saved): missing values take a sample.
        max_bytes: what the values may add to the plan (a value used a thousand times must not make a plan
            of 256 KB into one of 256 MB).

    Raises:
        InvalidInput: every issue, with its path (``inputs.port: must be an integer``,
            ``steps[0].params.command: …``).
    """
    specs = declared(data)
    values, issues = _values(specs, given or {}, template=template)
    by_name = {s.name: s for s in specs}
    out = {k: v for k, v in data.items() if k != "inputs"}
    templated: set[int] = set()
    if not issues:
        sub = _Substitution(by_name, values)
        for key in ("name", "description"):
            if isinstance(out.get(key), str):
                before = out[key]
                out[key] = sub.text(before, key)
                if len(SECRET_REF.findall(out[key])) > len(SECRET_REF.findall(before)):
                    # Only params are checked for references (tenant, asset limits) and resolved: here one would
                    # be neither, and would name any secret, another tenant's too, in the execution's name.
                    sub.issues.append((key, "a secret_ref input goes only into a step's params"))
        offset = 0  # a rollback step's index follows the main steps' (core/plan_phases.py)
        for key in _STEP_LISTS:
            steps = out.get(key)
            if isinstance(steps, list):
                out[key] = [sub.step(step, offset + i, where=f"{key}[{i}]") for i, step in enumerate(steps)]
                offset += len(steps)
        issues.extend(sub.issues)
        templated = sub.templated
        if sub.added > max_bytes:
            issues.append(("inputs", f"the values add {sub.added} characters to the plan; the limit is {max_bytes}"))
        for key, value in out.items():
            if key not in ("name", "description", *_STEP_LISTS):
                issues.extend(sub.stray(value, key))
    if issues:
        raise InvalidInput(issues)
    assets = tuple((f"inputs.{s.name}", values[s.name]) for s in specs if s.type is InputType.ASSET and not template)
    record = {s.name: values[s.name] for s in specs}
    return out, Bound(values=record, assets=assets, templated=frozenset(templated))


def _values(
    specs: list[InputSpec], given: Mapping[str, Any], *, template: bool
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Each declared input's value (given, default, or a template's sample), and the issues at ``inputs.NAME``."""
    issues: list[tuple[str, str]] = []
    names = {s.name for s in specs}
    if len(given) > MAX_INPUTS:
        # One issue, not one per name: 64 KB of ``k1: x`` lines made a 24 MB error, each listing the declared.
        return {}, [("inputs", f"{len(given)} values given; a plan declares at most {MAX_INPUTS} inputs")]
    for name in given:
        if name not in names:
            known = ", ".join(sorted(names)) if names else "the plan declares none"
            shown = name if len(name) <= 64 else f"{name[:64]}…"  # no declared name is longer
            issues.append((f"inputs.{shown}", f"unknown input (declared: {known})"))
    values: dict[str, Any] = {}
    for spec in specs:
        path = f"inputs.{spec.name}"
        raw = given.get(spec.name)
        if raw is None:
            if spec.default is not None:
                raw = spec.default
            elif template:
                values[spec.name] = _sample(spec)
                continue
            elif spec.required:
                issues.append((path, "required"))
                continue
            else:
                values[spec.name] = ""
                continue
        try:
            values[spec.name] = _value(spec, raw)
        except ValueError as exc:
            issues.append((path, str(exc)))
            continue
        if spec.type in (InputType.STRING, InputType.ASSET, InputType.CHOICE):
            issues.extend(find_literal_credentials(values[spec.name], path))
    return values, issues


def _value(spec: InputSpec, raw: Any) -> Any:
    """``raw`` as the declared type (a secret_ref as its reference). Raises ValueError with what is wrong."""
    kind = spec.type
    if kind is InputType.INT:
        if isinstance(raw, bool) or not isinstance(raw, int | str):
            raise ValueError("must be an integer")
        if isinstance(raw, str):
            if not re.fullmatch(r"[+-]?[0-9]{1,18}", raw.strip()):
                raise ValueError("must be an integer")
            return int(raw.strip())
        return raw
    if kind is InputType.BOOL:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.strip().lower() in _TRUE | _FALSE:
            return raw.strip().lower() in _TRUE
        raise ValueError("must be true or false")
    if kind is InputType.CHOICE:
        choices = spec.choices or []
        if isinstance(raw, bool):  # True == 1 in Python: ``yes`` in an inputs file must not pick the choice 1
            raise ValueError(f"must be one of {', '.join(str(c) for c in choices)}")
        for choice in choices:
            if raw == choice or (isinstance(raw, str | int) and not isinstance(raw, bool) and str(raw) == str(choice)):
                return choice
        raise ValueError(f"must be one of {', '.join(str(c) for c in choices)}")
    if isinstance(raw, int) and not isinstance(raw, bool) and kind in (InputType.STRING, InputType.ASSET):
        raw = str(raw)  # `version: 12` in an inputs file is the text 12
    if not isinstance(raw, str):
        raise ValueError("must be a string")
    if kind is InputType.SECRET_REF:
        found = SECRET_REF.fullmatch(raw.strip())  # the name, or its reference written out
        name = found.group(1) if found else raw.strip()
        if not _SECRET_NAME.match(name):
            raise ValueError("must be a secret's name (letters, digits, _ . -)")
        return f"{{{{ secret:{name} }}}}"
    text = _text(raw)
    if kind is InputType.ASSET and not text:
        raise ValueError("must name an asset")
    if spec.pattern is not None and _pattern(spec.pattern).fullmatch(text) is None:
        raise ValueError(f"does not match the pattern {spec.pattern}")
    return text


@lru_cache(maxsize=256)
def _pattern(pattern: str) -> Any:
    """``pattern`` compiled by RE2 (linear-time matching). Raises ValueError with RE2's reason."""
    import re2  # here: only plans with a pattern pay for it (5 ms), not every process that imports core

    options = re2.Options()
    options.log_errors = False  # a refused pattern is the caller's InvalidInput, not a line on stderr
    options.max_mem = 1 << 22  # 4 MiB of automaton: ``(x{100}){100}``-style blow-ups fail to compile
    try:
        return re2.compile(pattern, options=options)
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise ValueError(
            f"pattern: not accepted ({reason}); an RE2 expression, without backreferences or lookaround"
        ) from None


def _text(raw: str) -> str:
    """A text value as substituted: one line, no control characters, no reference syntax, bounded."""
    if len(raw) > MAX_VALUE_CHARS:
        raise ValueError(f"{len(raw)} characters; at most {MAX_VALUE_CHARS}")
    if _CONTROL.search(raw):
        raise ValueError("must be one line without control characters")
    for char in raw:
        # Beyond ASCII: C1 controls (NEL breaks a line, CSI drives a terminal), the line and paragraph
        # separators, and format characters (bidi overrides and isolates, zero-width ones) that make what
        # the approver reads differ from what runs.
        category = unicodedata.category(char)
        if category in ("Cc", "Zl", "Zp"):
            raise ValueError("must be one line without control characters")
        if category == "Cf":
            raise ValueError(f"must not contain invisible or reordering characters (U+{ord(char):04X})")
    if "{{" in raw or "}}" in raw:
        raise ValueError("must not contain {{ or }} (a value is text, never a reference)")
    return raw


def _sample(spec: InputSpec) -> Any:
    """A value standing in for a missing one while a template is validated (never submitted)."""
    return {
        InputType.INT: 1,
        InputType.BOOL: False,
        InputType.CHOICE: (spec.choices or [""])[0],
        InputType.SECRET_REF: f"{{{{ secret:{spec.name} }}}}",
    }.get(spec.type, spec.name)


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# The plan's step lists, in step_index order: inputs fill rollback steps as they fill the main ones.
_STEP_LISTS = ("steps", "on_failure", "on_cancel")


class _Substitution:
    """Replaces references in one plan, collecting issues and the steps that had any."""

    def __init__(self, specs: Mapping[str, InputSpec], values: Mapping[str, Any]) -> None:
        self.specs = specs
        self.values = values
        self.issues: list[tuple[str, str]] = []
        self.templated: set[int] = set()
        self.added = 0  # characters the values added: bounded like the plan's own size (``bind``)
        self._used = False

    def text(self, value: str, path: str, *, typed: bool = False) -> Any:
        """``value`` with its references replaced; with ``typed``, a value that is one reference keeps its type."""
        if "{{" not in value:
            return value
        if re.search(r"\{\{\s*inputs?\s*:", value) and not _all_well_formed(value):
            self.issues.append((path, "malformed input reference; write {{ input:NAME }} (letters, digits, _)"))
            return value
        found = INPUT_REF.findall(value)
        if not found:
            return value
        for name in found:
            if name not in self.specs:
                self.issues.append((path, f"unknown input {name!r} (declare it under inputs:)"))
                return value
        self._used = True
        whole = INPUT_REF.fullmatch(value.strip())
        if typed and whole is not None:
            typed_value = self.values[whole.group(1)]
            self.added += len(_as_text(typed_value))
            return typed_value
        filled = INPUT_REF.sub(lambda m: _as_text(self.values[m.group(1)]), value)
        self.added += max(0, len(filled) - len(value))
        return filled

    def step(self, step: Any, index: int, *, where: str) -> Any:
        if not isinstance(step, Mapping):
            return step
        self._used = False
        out = dict(step)
        for key, value in step.items():
            if key == "target" and isinstance(value, str):
                out[key] = self.text(value, f"{where}.target")
            elif key == "params" and isinstance(value, Mapping):
                out[key] = self._params(value, step.get("action"), f"{where}.params")
            else:
                self.issues.extend(self.stray(value, f"{where}.{key}"))
        if self._used:
            self.templated.add(index)
        return out

    def _params(self, params: Mapping[str, Any], action_name: Any, path: str) -> dict[str, Any]:
        action = registry.get_action(action_name) if isinstance(action_name, str) else None
        command_key = action.command_param if action is not None else None
        out: dict[str, Any] = {}
        for key, value in params.items():
            where = f"{path}.{key}"
            if _mentions(key):
                self.issues.append((where, "inputs are substituted into values, not keys"))
            if key == command_key:
                out[key] = self._command(value, where, shell=action is not None and action.shell_reads(params))
            elif command_key is not None and key == "stdin" and _mentions(value):
                self.issues.append((where, "inputs are not substituted into stdin (it may be a script)"))
                out[key] = value
            else:
                out[key] = self._tree(value, where)
        return out

    def _command(self, value: Any, path: str, *, shell: bool) -> Any:
        """A command: in a list, each element stays one; a string is split into words first (or refused)."""
        if isinstance(value, list):
            return [self._word(part, f"{path}[{i}]") for i, part in enumerate(value)]
        if not isinstance(value, str) or not _mentions(value):
            return self._tree(value, path)
        if shell:
            self.issues.append(
                (path, "an input may not go into a command a shell reads as text; write the command as a list")
            )
            return value
        if "\x00" in value:
            return value  # refused by the action's own validation
        if not _all_well_formed(value):
            self.issues.append((path, "malformed input reference; write {{ input:NAME }} (letters, digits, _)"))
            return value
        # Each reference stands in as one NUL-fenced token while shlex splits (its spaces must not split it),
        # so quoting around it keeps working and its value lands inside the word it was written in.
        refs: list[str] = []

        def fence(match: re.Match[str]) -> str:
            refs.append(match.group(0))
            return f"\x00{len(refs) - 1}\x00"

        try:
            words = shlex.split(INPUT_REF.sub(fence, value))
        except ValueError as exc:
            self.issues.append((path, f"cannot split the command into words: {exc}"))
            return value
        unfenced = [_FENCE.sub(lambda m: refs[int(m.group(1))], word) for word in words]
        return [self._word(word, f"{path}[{i}]") for i, word in enumerate(unfenced)]

    def _word(self, part: Any, path: str) -> Any:
        return self.text(part, path) if isinstance(part, str) else self._tree(part, path)

    def _tree(self, value: Any, path: str) -> Any:
        if isinstance(value, str):
            return self.text(value, path, typed=True)
        if isinstance(value, Mapping):
            for key in value:
                if isinstance(key, str) and _mentions(key):
                    self.issues.append((f"{path}.{key}", "inputs are substituted into values, not keys"))
            return {k: self._tree(v, f"{path}.{k}") for k, v in value.items()}
        if isinstance(value, list):
            return [self._tree(v, f"{path}[{i}]") for i, v in enumerate(value)]
        return value

    def stray(self, value: Any, path: str) -> list[tuple[str, str]]:
        """An issue for each reference where inputs are not substituted (a step's name, action, class…)."""
        stack: list[tuple[Any, str]] = [(value, path)]
        found: list[tuple[str, str]] = []
        while stack:
            item, where = stack.pop()
            if isinstance(item, str) and _mentions(item):
                found.append((where, _STRAY))
            elif isinstance(item, Mapping):
                stack.extend((v, f"{where}.{k}") for k, v in item.items())
            elif isinstance(item, list):
                stack.extend((v, f"{where}[{i}]") for i, v in enumerate(item))
        return found


_STRAY = "inputs are substituted only into params, target, and the plan's name and description"


def _mentions(value: Any) -> bool:
    return isinstance(value, str) and re.search(r"\{\{\s*inputs?\s*:", value) is not None


def _all_well_formed(value: str) -> bool:
    """True if every ``{{ input…`` in ``value`` is a well-formed reference."""
    return all(
        INPUT_REF.fullmatch(candidate.strip()) for candidate in re.findall(r"\{\{\s*inputs?\s*:[^}]*\}?\}?", value)
    )


def _spec_issues(exc: ValidationError, prefix: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for err in exc.errors(include_url=False, include_input=False):
        parts = [p for p in err["loc"] if p not in {"str", "int", "bool"}]
        path = prefix + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)
        message = {"missing": "required", "extra_forbidden": "unknown field"}.get(err["type"], err["msg"])
        if message.startswith("Value error, "):
            message = message.removeprefix("Value error, ")
            field_name, sep, rest = message.partition(": ")
            if sep and field_name in InputSpec.model_fields:
                path, message = f"{path}.{field_name}", rest
        out.append((path, message[0].lower() + message[1:] if message else err["type"]))
    return out
