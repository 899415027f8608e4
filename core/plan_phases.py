"""Where each step of a hashed plan sits (DESIGN §14): its main steps, then ``on_failure``, then ``on_cancel``.

One numbering for all of them: a plan's rollback steps follow its main steps in ``step_index`` (the step rows,
the queue row, the claim), ``on_failure`` first. A canonical plan without rollback has neither key, so its
hash is what it was before rollback existed.

Pure (no database, no parser): the claim, the plan review and ``show`` read a stored plan through it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from db.enums import StepPhase

# The plan's keys of each phase, in step_index order.
PHASE_KEYS: tuple[tuple[StepPhase, str], ...] = (
    (StepPhase.MAIN, "steps"),
    (StepPhase.ON_FAILURE, "on_failure"),
    (StepPhase.ON_CANCEL, "on_cancel"),
)
ROLLBACK_KEYS = ("on_failure", "on_cancel")


def phase_steps(plan: Mapping[str, Any], phase: StepPhase) -> list[Any]:
    """The plan's steps of ``phase`` ([] when it has none, or the value is not a list)."""
    key = dict(PHASE_KEYS)[phase]
    steps = plan.get(key)
    return steps if isinstance(steps, list) else []


def flat_steps(plan: Mapping[str, Any]) -> list[tuple[StepPhase, Any]]:
    """Every step of the plan with its phase, in step_index order."""
    return [(phase, step) for phase, _key in PHASE_KEYS for step in phase_steps(plan, phase)]


def phase_range(plan: Mapping[str, Any], phase: StepPhase) -> range:
    """The step indices of ``phase`` in the plan."""
    start = 0
    for each, _key in PHASE_KEYS:
        count = len(phase_steps(plan, each))
        if each is phase:
            return range(start, start + count)
        start += count
    raise AssertionError(phase)  # every phase is in PHASE_KEYS


def step_at(plan: Mapping[str, Any], index: int) -> tuple[StepPhase, Any] | None:
    """The phase and step at ``index`` (None: no such step in the plan)."""
    steps = flat_steps(plan)
    return steps[index] if 0 <= index < len(steps) else None


@dataclass(frozen=True)
class FanoutGroup:
    """The steps one fan-out step was expanded into (core/plan_fanout.py): indices ``start`` to ``stop - 1``,
    run ``max_concurrency`` at a time, no new one started once more than ``max_errors`` failed."""

    step: str
    start: int
    stop: int
    max_concurrency: int
    max_errors: int

    @property
    def indices(self) -> range:
        return range(self.start, self.stop)


def fanout_group(plan: Mapping[str, Any], index: int) -> FanoutGroup | None:
    """The fan-out the step at ``index`` belongs to (None: a one-target step, or no such step).

    Read from the hashed plan: each expanded step records its written step, its place and the limits.
    """
    found = step_at(plan, index)
    if found is None or not isinstance(fan := found[1].get("fanout"), Mapping):
        return None
    start = index - int(fan["position"])
    return FanoutGroup(
        step=str(fan["step"]),
        start=start,
        stop=start + int(fan["of"]),
        max_concurrency=max(1, int(fan["max_concurrency"])),
        max_errors=int(fan["max_errors"]),
    )
