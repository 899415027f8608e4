"""Fan-out (DESIGN §14): a step written with ``targets:`` becomes one step per asset, before the plan is hashed.

A fan-out step::

    - name: restart
      action: shell
      targets: {tags: [web], names: [db-01]}   # assets carrying every tag listed, and those named
      max_concurrency: 2                        # or "25%" of the targets (at least 1); default 1
      max_errors: 1                             # or "10%"; default 0: the first failure stops it
      params: {command: [systemctl, restart, nginx]}

is expanded, in the tenant's inventory, into one step per selected asset (sorted by name), each named
``restart[web-01]``, with its own row, lock, attempts, output and status, and a ``fanout`` record
(``FanOut``: the written step, its place, the resolved limits) that the hash covers, so what the approver
sees is the concrete list of assets that runs. The worker runs up to ``max_concurrency`` of them at once and
starts no new one once more than ``max_errors`` have failed (core/engine/fanout.py).

Blast radius: a plan that fans out to ``fanout_approval_targets`` assets or more (a tenant setting, default 10)
needs one level more than its action class asks, up to 2 (two approvers).

Pure: the caller (core/usecases/intake.py) passes the tenant's assets and their tags.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace

from core.errors import InvalidInput
from core.plans import FanOut, Plan, PlannedStep

MAX_TARGETS = 200  # targets of one fan-out step: each is a step row, a lock and a line in the approval
MAX_EXPANDED_STEPS = 1000  # every step of a plan once expanded, rollback included
DEFAULT_APPROVAL_TARGETS = 10
_PERCENT = re.compile(r"^\s*(\d{1,3})\s*%\s*$")


def fans_out(plan: Plan) -> bool:
    """Whether any step of ``plan`` is written with ``targets:``."""
    return any(s.spec.targets is not None for s in plan.all_steps)


def expanded(plan: Plan) -> bool:
    """Whether ``plan`` (after ``expand``) has steps from a fan-out."""
    return any(s.fanout is not None for s in plan.all_steps)


def named_assets(plan: Plan) -> list[str]:
    """The asset names the plan's fan-out steps list by name (to look up with the plain targets)."""
    return [name for s in plan.all_steps if s.spec.targets is not None for name in s.spec.targets.names]


def needs_tags(plan: Plan) -> bool:
    """Whether a fan-out step selects by tag (the caller must pass every asset's tags)."""
    return any(s.spec.targets is not None and s.spec.targets.tags for s in plan.all_steps)


def expand(
    plan: Plan,
    inventory: Mapping[str, frozenset[str]],
    *,
    tenant: str,
    approval_targets: int = DEFAULT_APPROVAL_TARGETS,
) -> Plan:
    """``plan`` with each fan-out step replaced by one step per selected asset, its indices renumbered.

    Args:
        inventory: the tenant's assets by name, with their tags (every asset when a step selects by tag).
        approval_targets: the target count from which the plan's level rises (``0``: never).

    Raises:
        InvalidInput: a listed asset is unknown, a selection is empty or too large, a limit is malformed, or
            an expanded step's name is already taken; each issue with the written step's path.
    """
    if not fans_out(plan):
        return plan
    issues: list[tuple[str, str]] = []
    expanded: list[PlannedStep] = []
    widest = 0
    for step in plan.steps:
        if step.spec.targets is None:
            expanded.append(step)
            continue
        found = _select(step, inventory, tenant, issues)
        if not found:
            continue
        concurrency = _limit(step.spec.max_concurrency, len(found), f"{step.path}.max_concurrency", issues, default=1)
        # No more slots than targets: a worker starts one thread per slot (core/engine/fanout.py).
        concurrency = min(concurrency, len(found))
        errors = _limit(step.spec.max_errors, len(found), f"{step.path}.max_errors", issues, default=0)
        widest = max(widest, len(found))
        for position, name in enumerate(found):
            spec = step.spec.model_copy(update={"name": f"{step.spec.name}[{name}]", "target": name, "targets": None})
            fan = FanOut(step.spec.name, position, len(found), max(1, concurrency), errors)
            expanded.append(replace(step, spec=spec, fanout=fan))
    issues.extend(_name_clashes(expanded + list(plan.rollback)))
    if len(expanded) + len(plan.rollback) > MAX_EXPANDED_STEPS:
        count = len(expanded) + len(plan.rollback)
        issues.append(("steps", f"{count} steps once fanned out; a plan may have at most {MAX_EXPANDED_STEPS}"))
    if issues:
        raise InvalidInput(issues)
    steps = tuple(replace(s, index=i) for i, s in enumerate(expanded))
    rollback = tuple(replace(s, index=len(steps) + i) for i, s in enumerate(plan.rollback))
    wide = plan.wide or (approval_targets > 0 and widest >= approval_targets)
    return replace(plan, steps=steps, rollback=rollback, wide=wide)


def _select(
    step: PlannedStep, inventory: Mapping[str, frozenset[str]], tenant: str, issues: list[tuple[str, str]]
) -> list[str]:
    """The step's assets by name (sorted), or [] with the reason added to ``issues``."""
    selector = step.spec.targets
    assert selector is not None
    where = f"{step.path}.targets"
    unknown = [(i, n) for i, n in enumerate(selector.names) if n not in inventory]
    issues.extend((f"{where}.names[{i}]", f"unknown asset {n!r} in tenant {tenant}") for i, n in unknown)
    if unknown:
        return []
    wanted = set(selector.tags)
    chosen = set(selector.names)
    if wanted:
        chosen |= {name for name, tags in inventory.items() if wanted <= tags}
    if not chosen:
        issues.append((where, f"no asset of tenant {tenant} has every tag of {sorted(wanted)}"))
        return []
    if len(chosen) > MAX_TARGETS:
        issues.append((where, f"selects {len(chosen)} assets; a fan-out step may have at most {MAX_TARGETS}"))
        return []
    return sorted(chosen)


def _limit(value: int | str | None, count: int, path: str, issues: list[tuple[str, str]], *, default: int) -> int:
    """A count, or a percentage of ``count`` (rounded down), as a number of targets."""
    if value is None:
        return default
    if isinstance(value, int):
        if not 0 <= value <= MAX_TARGETS:
            issues.append((path, f"must be from 0 to {MAX_TARGETS} (or a percentage like '25%')"))
        return max(0, value)
    match = _PERCENT.match(value)
    if match is None or int(match.group(1)) > 100:
        issues.append((path, f"must be a number of targets or a percentage like '25%', not {value!r}"))
        return default
    return count * int(match.group(1)) // 100


def _name_clashes(steps: list[PlannedStep]) -> list[tuple[str, str]]:
    """An expanded name (``restart[web-01]``) that another step already has."""
    seen: dict[str, PlannedStep] = {}
    issues: list[tuple[str, str]] = []
    for step in steps:
        other = seen.setdefault(step.spec.name, step)
        if other is not step and (step.fanout is not None or other.fanout is not None):
            issues.append((f"{step.path}.name", f"{step.spec.name!r} is taken by {other.path}.name"))
    return issues
